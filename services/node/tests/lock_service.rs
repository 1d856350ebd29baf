//! The client-facing `LockService` over real gRPC on a 3-node cluster: leader redirects,
//! every operation and error code, blocking waits (grant, timeout, caller gone), sessions
//! and their event streams, reads of both consistencies, and a cut-off minority that
//! answers `UNAVAILABLE` within the deadline.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lockplane_proto::RpcError;
use lockplane_proto::lock::lock_service_client::LockServiceClient;
use lockplane_proto::lock::{self as pb, ErrorCode, event::Kind, watch_request::Target};
use tokio::time::Instant;
use tonic::transport::Channel;

use common::grpc_cluster::GrpcCluster;
use common::runtime;

const TENANT: u64 = 7;

fn key(name: &str) -> Option<pb::Key> {
    Some(pb::Key {
        tenant: TENANT,
        name: name.into(),
    })
}

async fn client(addr: &str) -> LockServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    LockServiceClient::new(channel)
}

fn with_deadline<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// The leader's client for group 1, found by following `NOT_LEADER` hints from node 1.
async fn leader_client(cluster: &GrpcCluster) -> LockServiceClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut addr = cluster.addr(1).to_string();
    loop {
        let mut c = client(&addr).await;
        let probe = pb::GetRequest {
            group: 1,
            key: key("probe"),
            consistency: pb::Consistency::Linearizable as i32,
        };
        match c.get(probe).await.map_err(RpcError::from) {
            Ok(_) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "no leader: {e}");
                if let Some(leader) = e.detail().leader_addr.clone() {
                    addr = leader;
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

fn acquire(name: &str, owner: &str, wait_ms: u64) -> pb::AcquireRequest {
    pb::AcquireRequest {
        group: 1,
        key: key(name),
        owner: owner.into(),
        ttl_ms: 600_000,
        wait_ms,
        ..Default::default()
    }
}

fn release(name: &str, owner: &str, fencing_token: u64) -> pb::ReleaseRequest {
    pb::ReleaseRequest {
        group: 1,
        key: key(name),
        owner: owner.into(),
        fencing_token,
    }
}

fn code(result: Result<impl std::fmt::Debug, tonic::Status>) -> RpcError {
    RpcError::from(result.expect_err("the call must fail"))
}

#[test]
fn a_follower_names_the_leader_and_the_leader_serves_every_operation() {
    runtime().block_on(async {
        let cluster = GrpcCluster::start("svc-ops", 1, |_| {}).await;
        let mut leader = leader_client(&cluster).await;
        let leader_id = cluster.leader().await;
        let follower = (1..=3).find(|id| *id != leader_id).unwrap();
        let mut follower = client(cluster.addr(follower)).await;

        let redirected = code(follower.acquire(acquire("a", "alice", 0)).await);
        assert_eq!(redirected.code(), ErrorCode::NotLeader);
        assert!(matches!(redirected, RpcError::Retryable(_)));
        assert_eq!(redirected.detail().leader_id, Some(leader_id));
        assert_eq!(
            redirected.detail().leader_addr.as_deref(),
            Some(cluster.addr(leader_id))
        );

        let granted = leader
            .acquire(acquire("a", "alice", 0))
            .await
            .unwrap()
            .into_inner();
        assert!(granted.fencing_token > 0 && !granted.waited);

        let held = code(leader.acquire(acquire("a", "bob", 0)).await);
        assert_eq!(held.code(), ErrorCode::Held);
        assert!(matches!(held, RpcError::Rejected(_)));
        let holder = held.detail().holder.clone().unwrap();
        assert_eq!(
            (holder.owner.as_str(), holder.fencing_token),
            ("alice", granted.fencing_token)
        );

        let renewed = leader
            .renew(pb::RenewRequest {
                group: 1,
                key: key("a"),
                owner: "alice".into(),
                fencing_token: granted.fencing_token,
                ttl_ms: 30_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (renewed.fencing_token, renewed.ttl_ms),
            (granted.fencing_token, 30_000)
        );
        let stale = code(
            leader
                .renew(pb::RenewRequest {
                    group: 1,
                    key: key("a"),
                    owner: "alice".into(),
                    fencing_token: granted.fencing_token - 1,
                    ttl_ms: 30_000,
                })
                .await,
        );
        assert_eq!(stale.code(), ErrorCode::NotHolder);

        for consistency in [pb::Consistency::LeaderLocal, pb::Consistency::Linearizable] {
            let read = leader
                .get(pb::GetRequest {
                    group: 1,
                    key: key("a"),
                    consistency: consistency as i32,
                })
                .await
                .unwrap()
                .into_inner();
            let status = read.status.unwrap();
            assert_eq!(status.holder.unwrap().owner, "alice");
            assert!(status.ttl_remaining_ms.unwrap() <= 30_000);
            assert!(read.applied_index > 0);
        }
        let from_follower = code(
            follower
                .get(pb::GetRequest {
                    group: 1,
                    key: key("a"),
                    consistency: pb::Consistency::LeaderLocal as i32,
                })
                .await,
        );
        assert_eq!(from_follower.code(), ErrorCode::NotLeader);

        leader.acquire(acquire("a/b", "alice", 0)).await.unwrap();
        leader.acquire(acquire("z", "alice", 0)).await.unwrap();
        let listed = leader
            .list(pb::ListRequest {
                group: 1,
                tenant: TENANT,
                prefix: "a".into(),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let names: Vec<_> = listed.locks.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "a/b"]);
        let other_tenant = leader
            .list(pb::ListRequest {
                group: 1,
                tenant: TENANT + 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(other_tenant.locks.is_empty());

        leader
            .release(release("a", "alice", granted.fencing_token))
            .await
            .unwrap();
        let not_held = code(
            leader
                .release(release("a", "alice", granted.fencing_token))
                .await,
        );
        assert_eq!(not_held.code(), ErrorCode::NotHeld);
        let next = leader
            .acquire(acquire("a", "bob", 0))
            .await
            .unwrap()
            .into_inner();
        assert!(next.fencing_token > granted.fencing_token);

        let mut bad = acquire("", "alice", 0);
        bad.ttl_ms = 1;
        let invalid = code(leader.acquire(bad).await);
        assert_eq!(invalid.code(), ErrorCode::InvalidArgument);
        assert_eq!(invalid.detail().field.as_deref(), Some("key"));
        let mut unknown = acquire("a", "alice", 0);
        unknown.group = 99;
        assert_eq!(
            code(leader.acquire(unknown).await).code(),
            ErrorCode::UnknownGroup
        );
        cluster.shutdown().await;
    });
}

#[test]
fn a_queued_acquire_blocks_until_granted_times_out_or_leaves_with_its_caller() {
    runtime().block_on(async {
        let cluster = GrpcCluster::start("svc-wait", 1, |_| {}).await;
        let mut leader = leader_client(&cluster).await;
        let first = leader
            .acquire(acquire("k", "alice", 0))
            .await
            .unwrap()
            .into_inner();

        let timed_out = code(leader.acquire(acquire("k", "late", 200)).await);
        assert_eq!(timed_out.code(), ErrorCode::WaitTimedOut);

        let mut gone = leader.clone();
        let abandoned =
            tokio::spawn(async move { gone.acquire(acquire("k", "gone", 60_000)).await });
        wait_for_waiters(&mut leader, "k", 1).await;
        abandoned.abort();
        wait_for_waiters(&mut leader, "k", 0).await;

        let mut short = leader.clone();
        let cut = short
            .acquire(with_deadline(
                acquire("k", "short", 60_000),
                Duration::from_millis(300),
            ))
            .await;
        assert_eq!(code(cut).code(), ErrorCode::WaitTimedOut);
        wait_for_waiters(&mut leader, "k", 0).await;

        let mut next = leader.clone();
        let waiting = tokio::spawn(async move { next.acquire(acquire("k", "bob", 60_000)).await });
        wait_for_waiters(&mut leader, "k", 1).await;
        leader
            .release(release("k", "alice", first.fencing_token))
            .await
            .unwrap();
        let granted = waiting.await.unwrap().unwrap().into_inner();
        assert!(granted.waited);
        assert!(granted.fencing_token > first.fencing_token);
        let status = leader
            .get(pb::GetRequest {
                group: 1,
                key: key("k"),
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        assert_eq!(
            status.holder.unwrap().owner,
            "bob",
            "no ghost waiter got it"
        );
        cluster.shutdown().await;
    });
}

/// A client that waits longer than one call may renews its wait with a new call (same
/// request id) before the old call's deadline: the old call then answers `WAIT_RENEWED`
/// (it decided nothing), the wait keeps its place ahead of later waiters, and the new call
/// gets the grant.
#[test]
fn a_renewed_wait_keeps_its_place_across_calls() {
    runtime().block_on(async {
        let cluster = GrpcCluster::start("svc-renew", 1, |_| {}).await;
        let mut leader = leader_client(&cluster).await;
        let alice = leader
            .acquire(acquire("r", "alice", 0))
            .await
            .unwrap()
            .into_inner();
        let bob = || pb::AcquireRequest {
            request_id: Some("bob-1".into()),
            ..acquire("r", "bob", 60_000)
        };

        let mut first = leader.clone();
        let first_call = tokio::spawn(async move {
            first
                .acquire(with_deadline(bob(), Duration::from_millis(1_500)))
                .await
        });
        wait_for_waiters(&mut leader, "r", 1).await;
        let mut carol = leader.clone();
        let carol_call =
            tokio::spawn(async move { carol.acquire(acquire("r", "carol", 60_000)).await });
        wait_for_waiters(&mut leader, "r", 2).await;
        let mut second = leader.clone();
        let second_call = tokio::spawn(async move {
            second
                .acquire(with_deadline(bob(), Duration::from_secs(30)))
                .await
        });

        let renewed = code(first_call.await.unwrap());
        assert_eq!(renewed.code(), ErrorCode::WaitRenewed, "{renewed}");
        assert!(
            matches!(renewed, RpcError::Rejected(_)),
            "callers do not retry it"
        );
        wait_for_waiters(&mut leader, "r", 2).await;

        leader
            .release(release("r", "alice", alice.fencing_token))
            .await
            .unwrap();
        let granted = second_call.await.unwrap().unwrap().into_inner();
        assert!(granted.waited && granted.fencing_token > alice.fencing_token);
        wait_for_waiters(&mut leader, "r", 1).await;
        carol_call.abort();
        cluster.shutdown().await;
    });
}

async fn wait_for_waiters(client: &mut LockServiceClient<Channel>, name: &str, waiters: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client
            .get(pb::GetRequest {
                group: 1,
                key: key(name),
                consistency: pb::Consistency::Linearizable as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        if status.waiters == waiters {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} has {} waiters, expected {waiters}",
            status.waiters
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_session_streams_its_grants_and_lost_locks() {
    runtime().block_on(async {
        let cluster = GrpcCluster::start("svc-session", 1, |_| {}).await;
        let mut leader = leader_client(&cluster).await;
        let session = 0xfeed;
        let created = leader
            .create_session(pb::CreateSessionRequest {
                group: 1,
                tenant: TENANT,
                session,
                ttl_ms: 10_000,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((created.session, created.ttl_ms), (session, 10_000));
        let kept = leader
            .keep_alive(pb::KeepAliveRequest {
                group: 1,
                tenant: TENANT,
                session,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(kept.ttl_ms, 10_000);
        let foreign = code(
            leader
                .keep_alive(pb::KeepAliveRequest {
                    group: 1,
                    tenant: TENANT + 1,
                    session,
                })
                .await,
        );
        assert_eq!(foreign.code(), ErrorCode::SessionNotFound);

        let mut events = leader
            .watch(pb::WatchRequest {
                group: 1,
                tenant: TENANT,
                target: Some(Target::Session(session)),
            })
            .await
            .unwrap()
            .into_inner();

        let held = leader
            .acquire(acquire("s", "alice", 0))
            .await
            .unwrap()
            .into_inner();
        let mut queued = acquire("s", "worker", 60_000);
        queued.session = Some(session);
        let mut waiter = leader.clone();
        let waiting = tokio::spawn(async move { waiter.acquire(queued).await });
        wait_for_waiters(&mut leader, "s", 1).await;
        leader
            .release(release("s", "alice", held.fencing_token))
            .await
            .unwrap();
        let granted = waiting.await.unwrap().unwrap().into_inner();
        assert_eq!(granted.session, Some(session));

        let next = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match next.kind.unwrap() {
            Kind::Granted(g) => {
                assert_eq!((g.key.as_str(), g.owner.as_str()), ("s", "worker"));
                assert_eq!(g.fencing_token, granted.fencing_token);
            }
            other => panic!("expected a grant, got {other:?}"),
        }

        leader
            .close_session(pb::CloseSessionRequest {
                group: 1,
                tenant: TENANT,
                session,
            })
            .await
            .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match next.kind.unwrap() {
            Kind::Lost(lost) => {
                assert_eq!(lost.key, "s");
                assert_eq!(lost.fencing_token, granted.fencing_token);
                assert_eq!(lost.reason, pb::LostReason::SessionClosed as i32);
            }
            other => panic!("expected a lost lock, got {other:?}"),
        }
        let closed = code(
            leader
                .keep_alive(pb::KeepAliveRequest {
                    group: 1,
                    tenant: TENANT,
                    session,
                })
                .await,
        );
        assert_eq!(closed.code(), ErrorCode::SessionNotFound);
        cluster.shutdown().await;
    });
}

#[test]
fn a_cut_off_minority_answers_unavailable_within_the_deadline() {
    runtime().block_on(async {
        let mut cluster = GrpcCluster::start("svc-minority", 1, |_| {}).await;
        let leader_id = cluster.leader().await;
        let mut leader = leader_client(&cluster).await;
        leader.acquire(acquire("m", "alice", 0)).await.unwrap();
        stop_all_but(&mut cluster, leader_id).await;
        let asked = Instant::now();
        let refused = leader
            .acquire(with_deadline(
                acquire("n", "bob", 0),
                Duration::from_millis(500),
            ))
            .await;
        let refused = code(refused);
        assert!(matches!(refused, RpcError::Retryable(_)), "{refused:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "answered after {:?}",
            asked.elapsed()
        );
        cluster.shutdown().await;
    });
}

/// Stops every node of the cluster but `keep`.
async fn stop_all_but(cluster: &mut GrpcCluster, keep: u64) {
    for id in 1..=3 {
        if id != keep {
            cluster.stop(id).await;
        }
    }
}

#[test]
fn a_leader_that_lost_its_quorum_refuses_at_once_instead_of_holding_calls_to_their_deadline() {
    runtime().block_on(async {
        let mut cluster = GrpcCluster::start("svc-check-quorum", 1, |_| {}).await;
        let leader_id = cluster.leader().await;
        let mut leader = leader_client(&cluster).await;
        leader.acquire(acquire("q", "alice", 0)).await.unwrap();
        stop_all_but(&mut cluster, leader_id).await;
        // Past the check-quorum limit (the middle of the 300-600 ms election timeouts).
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let deadline = Duration::from_secs(20);
        for request in [acquire("r", "bob", 0), acquire("q", "alice", 0)] {
            let asked = Instant::now();
            let refused = code(leader.acquire(with_deadline(request, deadline)).await);
            assert_eq!(refused.code(), ErrorCode::Unavailable, "{refused:?}");
            assert!(refused.detail().retry_after_ms.is_some(), "{refused:?}");
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "a cut-off leader held the call {:?}",
                asked.elapsed()
            );
        }
        let read = pb::GetRequest {
            group: 1,
            key: key("q"),
            consistency: pb::Consistency::LeaderLocal as i32,
        };
        let refused = code(leader.get(with_deadline(read, deadline)).await);
        assert_eq!(refused.code(), ErrorCode::Unavailable, "{refused:?}");
        cluster.shutdown().await;
    });
}

#[test]
fn a_proposal_in_flight_when_the_leader_is_cut_off_ends_unknown_within_an_election_timeout() {
    runtime().block_on(async {
        let mut cluster = GrpcCluster::start("svc-cut-in-flight", 1, |_| {}).await;
        let leader_id = cluster.leader().await;
        let mut leader = leader_client(&cluster).await;
        leader.acquire(acquire("warm", "alice", 0)).await.unwrap();
        stop_all_but(&mut cluster, leader_id).await;
        let asked = Instant::now();
        let unknown = code(
            leader
                .acquire(with_deadline(
                    acquire("s", "bob", 0),
                    Duration::from_secs(20),
                ))
                .await,
        );
        assert!(matches!(unknown, RpcError::Retryable(_)), "{unknown:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "answered after {:?} of a 20 s deadline",
            asked.elapsed()
        );
        cluster.shutdown().await;
    });
}

#[test]
fn a_queued_acquire_at_a_leader_that_is_cut_off_is_told_unavailable_not_timed_out() {
    runtime().block_on(async {
        let mut cluster = GrpcCluster::start("svc-cut-queued", 1, |_| {}).await;
        let leader_id = cluster.leader().await;
        let mut leader = leader_client(&cluster).await;
        leader.acquire(acquire("w", "alice", 0)).await.unwrap();
        let mut waiter = leader.clone();
        let queued = tokio::spawn(async move {
            let mut request = acquire("w", "bob", 60_000);
            request.request_id = Some("bob-1".into());
            let asked = Instant::now();
            let answer = waiter
                .acquire(with_deadline(request, Duration::from_secs(20)))
                .await;
            (answer, asked.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cut_at = Instant::now();
        stop_all_but(&mut cluster, leader_id).await;
        let (answer, _) = queued.await.unwrap();
        let answer = code(answer);
        // Not 408 (`WAIT_TIMED_OUT`): the wait is in the log, and a new majority may grant
        // it; only a retry with the same request id can tell.
        assert_eq!(answer.code(), ErrorCode::Unavailable, "{answer:?}");
        assert!(
            cut_at.elapsed() < Duration::from_secs(3),
            "answered {:?} after the cut",
            cut_at.elapsed()
        );
        cluster.shutdown().await;
    });
}

/// The change feed of group 1 at `leader`, after `after` when given.
async fn changes(
    leader: &mut LockServiceClient<Channel>,
    after: Option<u64>,
) -> tonic::Streaming<pb::ChangeBatch> {
    let request = pb::WatchChangesRequest { group: 1, after };
    leader.watch_changes(request).await.unwrap().into_inner()
}

/// The batches of `stream` until one names `name`; the last `through` seen.
async fn until_changed(
    stream: &mut tonic::Streaming<pb::ChangeBatch>,
    name: &str,
) -> (pb::ChangeBatch, u64) {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let left = give_up.saturating_duration_since(Instant::now());
        let batch = tokio::time::timeout(left, stream.message())
            .await
            .expect("a batch naming the key within 5 s")
            .unwrap()
            .expect("the stream goes on");
        let through = batch.through;
        if batch
            .changes
            .iter()
            .any(|c| c.status.as_ref().is_some_and(|s| s.name == name))
        {
            return (batch, through);
        }
    }
}

#[test]
fn a_reopened_change_feed_replays_what_changed_since_it_broke() {
    runtime().block_on(async {
        let cluster = GrpcCluster::start("svc-changes", 1, |_| {}).await;
        let mut leader = leader_client(&cluster).await;
        leader.acquire(acquire("early", "eve", 0)).await.unwrap();
        let mut feed = changes(&mut leader, None).await;
        let granted = leader
            .acquire(acquire("a", "alice", 0))
            .await
            .unwrap()
            .into_inner();
        let (batch, through) = until_changed(&mut feed, "a").await;
        assert!(!batch.not_replayed);
        assert!(through > 0 && batch.version >= through, "{batch:?}");
        drop(feed);
        // While no feed is open: "a" is released and "b" taken.
        leader
            .release(release("a", "alice", granted.fencing_token))
            .await
            .unwrap();
        leader.acquire(acquire("b", "bob", 0)).await.unwrap();
        let mut reopened = changes(&mut leader, Some(through)).await;
        let (first, _) = until_changed(&mut reopened, "a").await;
        assert!(!first.not_replayed, "{first:?}");
        let names: Vec<(&str, bool)> = first
            .changes
            .iter()
            .filter_map(|c| c.status.as_ref())
            .map(|s| (s.name.as_str(), s.holder.is_some()))
            .collect();
        assert!(names.contains(&("a", false)), "{names:?}");
        assert!(names.contains(&("b", true)), "{names:?}");
        assert!(
            !names.iter().any(|(name, _)| *name == "early"),
            "replayed from before `after`: {names:?}"
        );
        // A position this group never reached is not replayed, and the stream says so.
        let mut bogus = changes(&mut leader, Some(u64::MAX / 2)).await;
        let first = tokio::time::timeout(Duration::from_secs(5), bogus.message())
            .await
            .expect("a first batch (a heartbeat at the latest) within 5 s")
            .unwrap()
            .unwrap();
        assert!(first.not_replayed, "{first:?}");
        assert!(first.through < u64::MAX / 2, "{first:?}");
        cluster.shutdown().await;
    });
}
