//! What a PostgreSQL restart leaves behind: every pooled connection's session ended by the
//! server, each answering its next statement with SQLSTATE 57P01. Calls safe to run again are
//! run again on a live connection, and no later call meets a dead one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use support::{System, default_room};
use ticketing_proto::reservation::v1 as pb;

/// Ends every client session on the reservation database but the caller's, as a restart does,
/// and waits until each has gone; answers how many there were. (Only this test's own database:
/// the server is shared.)
async fn end_every_session(db: &sqlx::PgPool) -> usize {
    let mut admin = db.acquire().await.unwrap();
    // Once every session is idle: the service has put each connection back in its pool.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (busy,): (i64,) = sqlx::query_as(
            "select count(*) from pg_stat_activity where datname = current_database() \
             and backend_type = 'client backend' and pid <> pg_backend_pid() and state <> 'idle'",
        )
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if busy == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "{busy} sessions stay busy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let sessions: Vec<(i32,)> = sqlx::query_as(
        "select pid from pg_stat_activity where datname = current_database() \
         and backend_type = 'client backend' and pid <> pg_backend_pid()",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    for (pid,) in &sessions {
        let (ended,): (bool,) = sqlx::query_as("select pg_terminate_backend($1, 10000)")
            .bind(pid)
            .fetch_one(&mut *admin)
            .await
            .unwrap();
        assert!(ended, "session {pid} ended");
    }
    sessions.len()
}

#[tokio::test]
async fn after_the_server_ends_every_session_reads_holds_and_keyed_writes_all_succeed() {
    let system = System::start(4).await;
    // Rounds of: several connections in the service's pool, each with its own session; the
    // server ends them all; reads then all succeed.
    for round in 0..4 {
        let calls: Vec<_> = (1..=8).map(|user| system.balance(user)).collect();
        futures::future::join_all(calls).await;
        let ended = end_every_session(&system.db).await;
        assert!(
            ended >= 1,
            "round {round}: the service's sessions were ended"
        );
        for user in 1..=8 {
            assert_eq!(
                system.balance(user).await,
                0,
                "round {round}: a read after it"
            );
        }
    }
    let mut client = system.client.clone();
    end_every_session(&system.db).await;
    let held = system
        .hold(9, 1, 1, default_room())
        .await
        .expect("a hold after the restart");
    let charged = client
        .charge_wallet(pb::ChargeWalletRequest {
            user_id: 9,
            amount_minor: held.price_minor,
            idempotency_key: Some("restart-charge".into()),
        })
        .await
        .expect("a keyed charge after the restart")
        .into_inner();
    assert_eq!(charged.balance_minor, held.price_minor);
    let paid = system
        .pay(held.id, 9, default_room(), Some("restart-pay".into()))
        .await
        .expect("a keyed payment after the restart");
    assert_eq!(paid.reservation_id, held.id);
    assert_eq!(system.balance(9).await, 0);
}
