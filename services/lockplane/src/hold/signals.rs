//! The signals `hold` handles and what each means for CMD's process group:
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT end it (forwarded, then SIGKILL after the grace);
//! SIGUSR1 and SIGUSR2 are forwarded as they are; SIGTSTP (Ctrl-Z) stops the group and
//! then `hold` itself, and SIGCONT (`fg`, `bg`) continues the group. While `hold` still
//! waits for the lock, an ending signal ends the wait.

use std::future::poll_fn;
use std::task::Poll;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

/// What a signal asks of CMD's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// Stop running: forward it, SIGKILL after the grace.
    End,
    /// Pass it on; it means something to CMD only.
    Forward,
    /// Ctrl-Z: stop the group, then stop `hold`.
    Suspend,
    /// Continue the group.
    Resume,
}

/// The signals handled.
const HANDLED: [(Signal, Meaning); 8] = [
    (Signal::SIGINT, Meaning::End),
    (Signal::SIGTERM, Meaning::End),
    (Signal::SIGHUP, Meaning::End),
    (Signal::SIGQUIT, Meaning::End),
    (Signal::SIGUSR1, Meaning::Forward),
    (Signal::SIGUSR2, Meaning::Forward),
    (Signal::SIGTSTP, Meaning::Suspend),
    (Signal::SIGCONT, Meaning::Resume),
];

/// The handlers of every signal `hold` handles, installed once.
pub struct Signals {
    handlers: Vec<(Signal, Meaning, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs the handlers (from now on these signals no longer act by default).
    pub fn new() -> std::io::Result<Self> {
        let handlers = HANDLED
            .iter()
            .map(|(sig, meaning)| Ok((*sig, *meaning, signal(SignalKind::from_raw(*sig as i32))?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Self { handlers })
    }

    /// The next signal that arrives, and what it means.
    pub async fn next(&mut self) -> (Signal, Meaning) {
        poll_fn(|cx| {
            for (sig, meaning, handler) in &mut self.handlers {
                if handler.poll_recv(cx).is_ready() {
                    return Poll::Ready((*sig, *meaning));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Stops this process as Ctrl-Z would have without a handler.
pub fn stop_self() {
    let _ = nix::sys::signal::raise(Signal::SIGSTOP);
}
