//! The Rust SDK (`lockplane-client`) against a real gateway and node: a guard keeps its
//! lock alive past the TTL by renewing, reports it lost once renewals are refused, releases
//! on drop; typed errors for conflicts and bad keys; blocking acquire; sessions kept alive,
//! ended when refused, closed with their locks.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lockplane_client::{AcquireOptions, Client, ClientError};

use common::{ALICE, runtime, serve_http, start};

#[test]
fn a_guard_renews_reports_loss_and_releases_on_drop() {
    runtime().block_on(async {
        let (app, node, _dir) = start("sdk").await;
        let url = serve_http(app).await;
        let client = Client::new(&url, ALICE);

        let guard = client
            .acquire(
                "renewed",
                AcquireOptions::new("a", Duration::from_millis(600)),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(!guard.is_lost());
        let info = client.status("renewed", true).await.unwrap();
        assert_eq!(
            (info.held, info.fencing_token),
            (true, Some(guard.fencing_token())),
            "renewals kept the lock past its TTL"
        );

        match client
            .try_acquire("renewed", &AcquireOptions::new("b", Duration::from_secs(5)))
            .await
        {
            Err(ClientError::Held(holder)) => {
                assert_eq!(
                    (holder.owner.as_str(), holder.fencing_token),
                    ("a", guard.fencing_token())
                );
            }
            other => panic!("expected Held, got {other:?}"),
        }

        client
            .release("renewed", "a", guard.fencing_token())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(3), guard.lost())
            .await
            .expect("the guard notices that its lock is gone");
        drop(guard);

        let dropped = client
            .acquire("dropped", AcquireOptions::new("a", Duration::from_secs(30)))
            .await
            .unwrap();
        drop(dropped);
        let mut free = false;
        for _ in 0..100 {
            if !client.status("dropped", true).await.unwrap().held {
                free = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(free, "dropping a guard releases its lock");

        let holder = client
            .acquire("queue", AcquireOptions::new("a", Duration::from_secs(30)))
            .await
            .unwrap();
        let waiter = {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .acquire(
                        "queue",
                        AcquireOptions::new("b", Duration::from_secs(30))
                            .wait(Duration::from_secs(10)),
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let first = holder.fencing_token();
        holder.release().await.unwrap();
        let next = waiter.await.unwrap().unwrap();
        assert!(next.fencing_token() > first);

        match client
            .try_acquire(
                "bad\u{7}key",
                &AcquireOptions::new("a", Duration::from_secs(1)),
            )
            .await
        {
            Err(ClientError::Invalid { field, .. }) => assert_eq!(field, "key"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        let stranger = Client::new(&url, "not-a-key");
        assert!(matches!(
            stranger.status("x", false).await,
            Err(ClientError::Unauthenticated(_))
        ));
        node.shutdown().await;
    });
}

#[test]
fn a_session_keeps_its_locks_alive_ends_when_refused_and_releases_them_on_close() {
    runtime().block_on(async {
        let (app, node, _dir) = start("sdk-session").await;
        let url = serve_http(app).await;
        let client = Client::new(&url, ALICE);

        let session = client
            .open_session(Duration::from_millis(600))
            .await
            .unwrap();
        let options = AcquireOptions::new("a", Duration::from_secs(60)).session(session.id());
        let grant = client.try_acquire("in-session", &options).await.unwrap();
        assert_eq!(grant.session.as_deref(), Some(session.id()));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(
            !session.is_ended(),
            "keepalives kept the session past its TTL"
        );
        assert!(client.status("in-session", true).await.unwrap().held);
        session.close().await.unwrap();
        assert!(!client.status("in-session", true).await.unwrap().held);

        let doomed = client
            .open_session(Duration::from_millis(600))
            .await
            .unwrap();
        client.close_session(doomed.id()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), doomed.ended())
            .await
            .expect("a refused keepalive ends the session");
        match client.keepalive(doomed.id()).await {
            Err(ClientError::NotFound(_)) => {}
            other => panic!("expected session not found, got {other:?}"),
        }
        node.shutdown().await;
    });
}
