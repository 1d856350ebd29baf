//! [`Session`]: one lease shared by many locks and waits (`docs/api.md`), kept alive in the
//! background at about a third of its TTL and closed when dropped. Locks acquired with
//! [`AcquireOptions::session`](crate::AcquireOptions::session) end with it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::ClientError;
use crate::lease;

impl Client {
    /// Opens a session with lease `ttl`, kept alive in the background until it is closed
    /// or dropped.
    pub async fn open_session(&self, ttl: Duration) -> Result<Session, ClientError> {
        let opened_at = tokio::time::Instant::now();
        let id = self.create_session(ttl).await?;
        Ok(Session::start(self.clone(), id, ttl, opened_at))
    }
}

/// An open session. Dropping it closes the session, which releases its locks and ends its
/// waits; like a [`crate::LockGuard`]'s, the drop blocks until that is answered, at most
/// [`crate::DROP_WAIT`]. In async code, prefer [`Session::close`].
pub struct Session {
    client: Client,
    id: String,
    ttl: Duration,
    ended: watch::Receiver<bool>,
    keeper: JoinHandle<()>,
    closed: bool,
}

impl Session {
    pub(crate) fn start(client: Client, id: String, ttl: Duration, opened_at: Instant) -> Self {
        let (ended_tx, ended) = watch::channel(false);
        let keeper = tokio::spawn({
            let (client, id) = (client.clone(), id.clone());
            async move {
                lease::keep(ttl, opened_at, ended_tx, |left| {
                    let (client, id) = (&client, &id);
                    async move { client.keepalive_within(id, left).await.map(|_| ()) }
                })
                .await;
            }
        });
        Self {
            client,
            id,
            ttl,
            ended,
            keeper,
            closed: false,
        }
    }

    /// The session id, for [`AcquireOptions::session`](crate::AcquireOptions::session).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session's TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// True once the session can no longer be trusted to be alive.
    pub fn is_ended(&self) -> bool {
        *self.ended.borrow()
    }

    /// Completes when the session can no longer be trusted to be alive (a keepalive was
    /// refused, or none was acknowledged in time): its locks are to be treated as lost.
    pub async fn ended(&self) {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(|ended| *ended).await;
    }

    /// Stops the keepalives and closes the session: its locks are released.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.closed = true;
        self.keeper.abort();
        self.client.close_session(&self.id).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keeper.abort();
        if self.closed {
            return;
        }
        self.client.close_from_drop(&self.id);
    }
}
