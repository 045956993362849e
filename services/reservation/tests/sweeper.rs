//! The hold sweeper's lease on a real database: of two sweepers (two replicas) only the lease
//! holder sweeps, and the other takes over when the holder stops (at once) or dies (once the
//! lease has run out).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::time::Duration;

use reservation::sweeper::{SweepReport, Sweeper};
use support::migrated_database;

const EVERY: Duration = Duration::from_millis(20);

/// Holds `ids` of option 1, seat = id, run out a minute ago and not yet swept.
async fn run_out_holds(pool: &sqlx::PgPool, ids: std::ops::RangeInclusive<i64>) {
    let mut transaction = pool.begin().await.unwrap();
    sqlx::query(
        "insert into reservations (id, user_id, concert_option_id, seat_no, status, price_minor, \
                                   grade, expires_at, concert_id) \
         select n, n, 1, n, 'HELD', 1000, 'S', now() - interval '1 minute', 1 \
         from generate_series($1::bigint, $2::bigint) n",
    )
    .bind(ids.start())
    .bind(ids.end())
    .execute(&mut *transaction)
    .await
    .expect("run-out holds");
    sqlx::query(
        "insert into seat_claims (concert_option_id, seat_no, reservation_id, held_until) \
         select 1, n, n, now() - interval '1 minute' from generate_series($1::bigint, $2::bigint) n",
    )
    .bind(ids.start())
    .bind(ids.end())
    .execute(&mut *transaction)
    .await
    .expect("their claims");
    transaction.commit().await.unwrap();
}

async fn expired(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from reservations where status = 'EXPIRED'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A sweeper whose lease outlasts the test unless it is given up.
fn sweeper(pool: &sqlx::PgPool) -> Sweeper {
    Sweeper::new(pool.clone(), EVERY, 24).with_lease(Duration::from_secs(600))
}

/// Ticks both at once; their reports.
async fn tick_both(a: &mut Sweeper, b: &mut Sweeper) -> (SweepReport, SweepReport) {
    let (a, b) = tokio::join!(a.tick(), b.tick());
    (a.unwrap(), b.unwrap())
}

#[tokio::test]
async fn of_two_sweepers_on_one_database_only_the_lease_holder_sweeps() {
    let pool = migrated_database().await;
    let (mut a, mut b) = (sweeper(&pool), sweeper(&pool));
    let mut leader = None;
    let mut marked = 0;
    for round in 0..5_i64 {
        run_out_holds(&pool, round * 30 + 1..=round * 30 + 30).await;
        let (of_a, of_b) = tick_both(&mut a, &mut b).await;
        assert!(
            of_a.leading != of_b.leading,
            "round {round}: {of_a:?} {of_b:?}"
        );
        let (holder, other) = if of_a.leading {
            (of_a, of_b)
        } else {
            (of_b, of_a)
        };
        assert_eq!(
            *leader.get_or_insert(of_a.leading),
            of_a.leading,
            "the same one leads"
        );
        assert_eq!(other, SweepReport::default(), "the other does nothing");
        assert_eq!(holder.marked, 30, "round {round}");
        marked += holder.marked;
    }
    assert_eq!(marked, 150);
    assert_eq!(expired(&pool).await, 150, "each hold expired once");
}

#[tokio::test]
async fn a_sweeper_that_stops_gives_its_lease_up_and_the_other_takes_over_at_once() {
    let pool = migrated_database().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reservation::sweeper::run(sweeper(&pool), EVERY, async {
        let _ = stopped.await;
    }));
    // Once the running one holds the lease, the other does not get it.
    let mut other = sweeper(&pool);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut interval = tokio::time::interval(EVERY);
    loop {
        interval.tick().await;
        let held: i64 = sqlx::query_scalar("select count(*) from leases")
            .fetch_one(&pool)
            .await
            .unwrap();
        if held == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never took the lease"
        );
    }
    assert!(!other.tick().await.unwrap().leading);

    stop.send(()).unwrap();
    running.await.unwrap();
    run_out_holds(&pool, 1..=10).await;
    // Its lease had ten minutes to run: only giving it up lets the other take it now.
    assert_eq!(
        other.tick().await.unwrap(),
        SweepReport {
            leading: true,
            marked: 10
        }
    );
}

#[tokio::test]
async fn a_dead_sweepers_lease_runs_out_and_then_the_other_takes_over() {
    let pool = migrated_database().await;
    let lease = Duration::from_secs(1);
    let mut dead = Sweeper::new(pool.clone(), EVERY, 24).with_lease(lease);
    let mut other = Sweeper::new(pool.clone(), EVERY, 24).with_lease(lease);
    assert!(dead.tick().await.unwrap().leading);
    let died = tokio::time::Instant::now();
    drop(dead); // without giving the lease up, as a killed process does
    run_out_holds(&pool, 1..=10).await;

    let mut interval = tokio::time::interval(Duration::from_millis(50));
    let taken = loop {
        interval.tick().await;
        let report = other.tick().await.unwrap();
        if report.leading {
            break report;
        }
        assert_eq!(report.marked, 0);
        assert!(died.elapsed() < Duration::from_secs(20), "never took over");
    };
    assert!(
        died.elapsed() >= lease,
        "taken over before the lease ran out"
    );
    assert_eq!(taken.marked, 10);
}
