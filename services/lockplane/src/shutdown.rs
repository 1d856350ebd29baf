//! When a server (`dev`, `node`, `gateway`, `cluster up`) stops: on Ctrl-C or SIGTERM, or
//! when standard input closes (for children of `cluster up`). The handlers are installed
//! when [`signal`] is called, before the server says it serves, so that a signal sent as
//! soon as it has said so stops it cleanly instead of killing it.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal as handler};

/// Installs the handlers now; the future completes on Ctrl-C or SIGTERM, or when standard
/// input closes if `on_stdin_eof`. Call it inside the runtime.
pub fn signal(on_stdin_eof: bool) -> impl Future<Output = ()> {
    let mut interrupt = handler(SignalKind::interrupt()).ok();
    let mut terminate = handler(SignalKind::terminate()).ok();
    let stdin_closed = on_stdin_eof.then(|| {
        let (closed, on_closed) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok(1..) = std::io::Read::read(&mut std::io::stdin(), &mut buf) {}
            let _ = closed.send(());
        });
        on_closed
    });
    async move {
        let interrupted = async {
            match interrupt.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let terminated = async {
            match terminate.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let closed = async {
            match stdin_closed {
                Some(closed) => {
                    let _ = closed.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = interrupted => {}
            () = terminated => {}
            () = closed => {}
        }
    }
}
