//! Releasing from `Drop` in a way that cannot be lost. A guard or session dropped without
//! an explicit `release().await` / `close().await` must still give its lock up, also when
//! the caller's runtime is shutting down or the process exits right after: a task spawned
//! on that runtime would be dropped with it. So the release runs on one process-wide
//! thread with its own runtime and its own connections, and the dropping thread waits for
//! the answer, at most [`DROP_WAIT`]. Past that bound (the gateway unreachable), the lock
//! ends with its lease as it would after a crash.

use std::sync::OnceLock;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use hyper::Method;
use serde_json::Value;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::mpsc;

use crate::http::Http;

/// The longest a drop blocks its thread waiting for the release to be answered.
pub const DROP_WAIT: Duration = Duration::from_secs(2);

/// One release (or session close) to send.
struct Job {
    http: Http,
    method: Method,
    path: String,
    body: Option<Value>,
    answered: std_mpsc::SyncSender<()>,
}

/// The release thread's queue, started on first use; `None` if the thread cannot start.
fn queue() -> Option<&'static mpsc::UnboundedSender<Job>> {
    static QUEUE: OnceLock<Option<mpsc::UnboundedSender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let (tx, mut jobs) = mpsc::unbounded_channel::<Job>();
            std::thread::Builder::new()
                .name("lockplane-release".into())
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some(job) = jobs.recv().await {
                            tokio::spawn(async move {
                                let _ = job
                                    .http
                                    .call(job.method, &job.path, job.body.as_ref(), DROP_WAIT)
                                    .await;
                                let _ = job.answered.send(());
                            });
                        }
                    });
                })
                .ok()?;
            Some(tx)
        })
        .as_ref()
}

/// Sends `method path body` through `http` (a pool owned by the release thread) and blocks
/// until it is answered or [`DROP_WAIT`] passes; true when it was answered.
pub(crate) fn send_and_wait(
    http: &Http,
    method: Method,
    path: String,
    body: Option<Value>,
) -> bool {
    let Some(queue) = queue() else {
        return false;
    };
    let (answered, answer) = std_mpsc::sync_channel(1);
    let job = Job {
        http: http.clone(),
        method,
        path,
        body,
        answered,
    };
    if queue.send(job).is_err() {
        return false;
    }
    let wait = || answer.recv_timeout(DROP_WAIT).is_ok();
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}
