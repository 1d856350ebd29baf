//! The run's clients, all through the gateway: clients that contend for one hot key with
//! blocking acquires and write to the fencing resource while they hold it; clients that
//! take, renew, read and release keys of their own (spread over the lock groups); and a
//! reader of the hot key. A call whose outcome is unknown (503, no answer) is sent again
//! with the same request id, or, for a release, until its answer is known or the lease
//! is over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shard_map::ShardRing;
use testkit::linear::{Answer, Call};
use testkit::rng::Rng;

use crate::client::{COMMIT_BUDGET, Gateway, Reply};
use crate::fence::Fence;
use crate::record::Recorder;

/// The key every hot client contends for.
pub const HOT_KEY: &str = "hot";

/// Leases of every client.
pub const TTL: Duration = Duration::from_secs(3);

/// How long a hot client waits in the queue per call.
const WAIT: Duration = Duration::from_secs(2);

/// How often an unknown acquire is sent again with the same request id.
const RETRIES: u32 = 5;

/// What every client shares.
#[derive(Clone)]
pub struct Shared {
    /// The gateway.
    pub gateway: Gateway,
    /// Where calls are recorded.
    pub recorder: Arc<Recorder>,
    /// The fencing resource.
    pub fence: Arc<Fence>,
    /// Maps keys to groups (for per-group figures).
    pub ring: Arc<ShardRing>,
    /// The clients' tenant.
    pub tenant: u64,
    /// Set when the clients should stop.
    pub stop: Arc<AtomicBool>,
}

impl Shared {
    fn group(&self, key: &str) -> u32 {
        self.ring.group_of(self.tenant, key)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Acquires `key`, sending the call again with the same request id while its outcome
    /// is unknown. The token and when the (first) call was sent, if granted.
    pub async fn acquire(
        &self,
        key: &str,
        owner: &str,
        wait: Duration,
        request_id: &str,
    ) -> Option<(u64, Duration)> {
        let group = self.group(key);
        let first = self.recorder.now();
        for _ in 0..RETRIES {
            let called = self.recorder.now();
            let reply = self
                .gateway
                .acquire(key, owner, TTL, wait, request_id)
                .await;
            let call = Call::Acquire {
                owner: owner.to_string(),
                ttl: TTL,
            };
            self.recorder
                .push(key, group, call, called, wait + COMMIT_BUDGET, &reply);
            match reply.answer {
                Answer::Granted(token) => return Some((token, first)),
                Answer::Unknown => pause_after(&reply).await,
                _ => return None,
            }
        }
        None
    }

    /// Releases `owner`'s grant `token` of `key`, sending it again while its outcome is
    /// unknown and the lease (from `since`) may still be running.
    pub async fn release(&self, key: &str, owner: &str, token: u64, since: Duration) {
        let group = self.group(key);
        loop {
            let called = self.recorder.now();
            let reply = self.gateway.release(key, owner, token).await;
            let call = Call::Release {
                owner: owner.to_string(),
                token,
            };
            self.recorder
                .push(key, group, call, called, COMMIT_BUDGET, &reply);
            if reply.answer != Answer::Unknown || self.recorder.now() > since + TTL {
                return;
            }
            pause_after(&reply).await;
        }
    }

    async fn renew(&self, key: &str, owner: &str, token: u64) -> bool {
        let called = self.recorder.now();
        let reply = self.gateway.renew(key, owner, token, TTL).await;
        let call = Call::Renew {
            owner: owner.to_string(),
            token,
            ttl: TTL,
        };
        self.recorder
            .push(key, self.group(key), call, called, COMMIT_BUDGET, &reply);
        reply.answer == Answer::Renewed
    }

    async fn status(&self, key: &str) {
        let called = self.recorder.now();
        let reply = self.gateway.status(key).await;
        self.recorder.push(
            key,
            self.group(key),
            Call::Status,
            called,
            COMMIT_BUDGET,
            &reply,
        );
    }

    /// Writes to the fencing resource as `owner` holding `key` with `token`, granted by a
    /// call sent at `since`.
    fn write(&self, key: &str, owner: &str, token: u64, since: Duration) {
        let lease_valid = self.recorder.now() + Duration::from_millis(50) < since + TTL;
        self.fence.write(key, token, owner, lease_valid);
    }
}

/// Waits as a 503's `Retry-After` asks, at most 200 ms (the run wants to see recovery).
async fn pause_after(reply: &Reply) {
    let asked = reply.retry_after.map_or(100, |s| s * 1_000);
    tokio::time::sleep(Duration::from_millis(asked.clamp(20, 200))).await;
}

/// A client contending for the hot key: blocking acquire, two writes while holding it,
/// release.
pub async fn hot_client(shared: Shared, owner: String, mut rng: Rng) {
    let mut n = 0u64;
    while !shared.stopped() {
        n += 1;
        let request_id = format!("{owner}-{n}");
        let Some((token, since)) = shared.acquire(HOT_KEY, &owner, WAIT, &request_id).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        shared.write(HOT_KEY, &owner, token, since);
        tokio::time::sleep(Duration::from_millis(5 + rng.below(40))).await;
        shared.write(HOT_KEY, &owner, token, since);
        shared.release(HOT_KEY, &owner, token, since).await;
    }
}

/// A client of keys of its own (`own-<client>-<k>`): acquire, renew, status, release, one
/// key after another.
pub async fn own_client(shared: Shared, owner: String, keys: u32, mut rng: Rng) {
    let mut n = 0u64;
    while !shared.stopped() {
        n += 1;
        let key = format!("own-{owner}-{}", rng.below(u64::from(keys)));
        let request_id = format!("{owner}-{n}");
        let Some((token, since)) = shared
            .acquire(&key, &owner, Duration::ZERO, &request_id)
            .await
        else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        shared.write(&key, &owner, token, since);
        let renewed_at = shared.recorder.now();
        let since = if shared.renew(&key, &owner, token).await {
            renewed_at
        } else {
            since
        };
        shared.status(&key).await;
        shared.release(&key, &owner, token, since).await;
    }
}

/// Reads the hot key's status (linearizable) every 50 ms.
pub async fn reader(shared: Shared) {
    while !shared.stopped() {
        shared.status(HOT_KEY).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A key of `group`: the first `probe-<group>-<n>` the ring places there.
pub fn probe_key(ring: &ShardRing, tenant: u64, group: u32) -> String {
    (0..)
        .map(|n| format!("probe-{group}-{n}"))
        .find(|key| ring.group_of(tenant, key) == group)
        .unwrap_or_default()
}

/// How often each group's prober reads its key.
pub const PROBE_EVERY: Duration = Duration::from_millis(200);

/// Reads a key of one group (linearizable: the group's leader confirms it still leads)
/// every [`PROBE_EVERY`], so each group's outages are seen however the other clients'
/// keys fall.
pub async fn prober(shared: Shared, key: String) {
    while !shared.stopped() {
        let asked = tokio::time::Instant::now();
        shared.status(&key).await;
        tokio::time::sleep_until(asked + PROBE_EVERY).await;
    }
}
