//! The Rust SDK (`lockplane-client`) against a real gateway and node: a guard keeps its
//! lock alive past the TTL by renewing, reports it lost once renewals are refused, releases
//! on drop (also in a process that exits right after); typed errors for conflicts and bad
//! keys; blocking acquire, also longer than one call may wait, keeping its place; sessions
//! kept alive, ended when refused, closed with their locks.
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
        assert!(
            !client.status("dropped", true).await.unwrap().held,
            "dropping a guard has released its lock when the drop returns"
        );

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

/// The program `a_program_that_drops_a_guard_and_exits_leaves_the_key_free` runs: this test
/// binary again, running only this function, which takes a lock, drops its guard and exits
/// at once (no graceful shutdown of anything).
#[test]
#[ignore = "a child process of another test"]
fn drop_guard_and_exit() {
    let (Ok(url), Ok(key)) = (
        std::env::var("DROP_CHILD_URL"),
        std::env::var("DROP_CHILD_KEY"),
    ) else {
        panic!("run by a_program_that_drops_a_guard_and_exits_leaves_the_key_free");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::new(&url, ALICE);
        let guard = client
            .acquire(&key, AcquireOptions::new("child", Duration::from_secs(60)))
            .await
            .unwrap();
        println!("acquired with token {}", guard.fencing_token());
        let session = client.open_session(Duration::from_secs(60)).await.unwrap();
        let in_session =
            AcquireOptions::new("child", Duration::from_secs(60)).session(session.id());
        client
            .try_acquire(&format!("{key}-session"), &in_session)
            .await
            .unwrap();
        drop(guard);
        drop(session);
    });
    std::process::exit(0);
}

#[test]
fn a_program_that_drops_a_guard_and_exits_leaves_the_key_free() {
    runtime().block_on(async {
        let (app, node, _dir) = start("sdk-exit").await;
        let url = serve_http(app).await;
        let client = Client::new(&url, ALICE);
        let child_url = url.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["drop_guard_and_exit", "--exact", "--ignored", "--nocapture"])
                .env("DROP_CHILD_URL", child_url)
                .env("DROP_CHILD_KEY", "exit-drop")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("acquired with token"),
            "child: {:?}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let info = client.status("exit-drop", true).await.unwrap();
        assert!(
            !info.held,
            "the lock was released before the program exited: {info:?}"
        );
        node.shutdown().await;
    });
}

/// A wait longer than one call (here, steps of 1 s) is renewed call after call and keeps
/// its place: a waiter queued behind it stays behind it, whether the wait is bounded or
/// for ever.
#[test]
fn a_wait_longer_than_one_call_keeps_its_place() {
    runtime().block_on(async {
        let (app, node, _dir) = start("sdk-long-wait").await;
        let url = serve_http(app).await;
        let client = Client::new(&url, ALICE);
        let long = |owner: &str| {
            AcquireOptions::new(owner, Duration::from_secs(60)).wait_step(Duration::from_secs(1))
        };
        for (name, options) in [
            ("bounded", long("first").wait(Duration::from_secs(20))),
            ("forever", long("first").wait_forever()),
        ] {
            let holder = client
                .acquire(name, AcquireOptions::new("holder", Duration::from_secs(60)))
                .await
                .unwrap();
            let first = {
                let (client, name) = (client.clone(), name.to_string());
                tokio::spawn(async move { client.try_acquire(&name, &options).await })
            };
            wait_for_waiters(&client, name, 1).await;
            let second = {
                let (client, name) = (client.clone(), name.to_string());
                let options = AcquireOptions::new("second", Duration::from_secs(60))
                    .wait(Duration::from_secs(60));
                tokio::spawn(async move { client.try_acquire(&name, &options).await })
            };
            wait_for_waiters(&client, name, 2).await;
            tokio::time::sleep(Duration::from_millis(3_500)).await;
            assert_eq!(
                client.status(name, true).await.unwrap().waiters,
                2,
                "{name}: the renewed wait is still queued after several steps"
            );
            let holder_token = holder.fencing_token();
            holder.release().await.unwrap();
            let granted = first.await.unwrap().unwrap();
            assert_eq!(
                granted.owner, "first",
                "{name}: the first waiter went first"
            );
            assert!(granted.fencing_token > holder_token);
            client
                .release(name, "first", granted.fencing_token)
                .await
                .unwrap();
            let next = second.await.unwrap().unwrap();
            assert_eq!(next.owner, "second");
        }
        node.shutdown().await;
    });
}

async fn wait_for_waiters(client: &Client, name: &str, waiters: u64) {
    for _ in 0..500 {
        if client.status(name, true).await.unwrap().waiters == waiters {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} never had {waiters} waiters");
}
