//! GetOutlook over gRPC against a real catalog and real PostgreSQL: seats per concert as holds,
//! payments and expiries move them, the catalog's option lists cached for a bounded time, the
//! request's limits, and the hold load as holds blocked in the database pile up and finish.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use support::{
    DEFAULT_ROOM_CONCERT, OWN_ROOM_CONCERT, SEATS_PER_OPTION, System, default_room, failure,
    room_of, seat_taken, server_url,
};
use ticketing_proto::reservation::v1 as pb;

/// Seats of each seeded concert: two options of `SEATS_PER_OPTION`.
const CONCERT_SEATS: u32 = 2 * SEATS_PER_OPTION as u32;
/// A concert the catalog does not know.
const UNKNOWN_CONCERT: i64 = 999;
/// How long a condition polled for may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

async fn outlook(system: &System, concert_ids: &[i64]) -> Result<pb::Outlook, tonic::Status> {
    system
        .client
        .clone()
        .get_outlook(pb::GetOutlookRequest {
            concert_ids: concert_ids.to_vec(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The hold load alone (an empty request: no SQL, so it answers while seat_claims is locked).
async fn hold_load(system: &System) -> pb::HoldLoad {
    outlook(system, &[]).await.unwrap().holds.unwrap()
}

fn seats(free: u32, held: u32, sold: u32) -> pb::SeatCounts {
    pb::SeatCounts { free, held, sold }
}

/// The seats GetOutlook answers for `concert_id`, checked to add up to the concert's seats.
async fn seats_of(system: &System, concert_id: i64) -> pb::SeatCounts {
    let answer = outlook(system, &[concert_id]).await.unwrap();
    let counts = answer.seats[&concert_id];
    assert_eq!(counts.free + counts.held + counts.sold, CONCERT_SEATS);
    counts
}

/// Polls `probe` (every 5 ms) until it yields a value; fails naming `what` after `PATIENCE`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let give_up = Instant::now() + PATIENCE;
    let mut every = tokio::time::interval(Duration::from_millis(5));
    loop {
        every.tick().await;
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < give_up, "gave up waiting until {what}");
    }
}

/// Takes `seat_claims` from a connection of its own, so every hold's statement waits on it
/// (and so does any count of the claims) until the returned transaction ends.
async fn lock_seat_claims(system: &System) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = system.db.begin().await.unwrap();
    sqlx::query("lock table seat_claims in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

#[tokio::test]
async fn seat_counts_follow_holds_payments_and_expired_holds() {
    let system = System::start(4).await;
    assert_eq!(
        outlook(&system, &[DEFAULT_ROOM_CONCERT, OWN_ROOM_CONCERT])
            .await
            .unwrap()
            .seats,
        [
            (DEFAULT_ROOM_CONCERT, seats(CONCERT_SEATS, 0, 0)),
            (OWN_ROOM_CONCERT, seats(CONCERT_SEATS, 0, 0)),
        ]
        .into()
    );

    // Three holds over concert 1's two options, one in concert 2.
    let paid = system.hold(7, 1, 1, default_room()).await.unwrap();
    let expiring = system.hold(7, 1, 2, default_room()).await.unwrap();
    system.hold(8, 2, 1, default_room()).await.unwrap();
    system
        .hold(9, 3, 1, room_of(OWN_ROOM_CONCERT))
        .await
        .unwrap();
    // A refused hold takes nothing.
    assert_eq!(
        failure(system.hold(8, 1, 1, default_room()).await),
        seat_taken()
    );
    assert_eq!(
        seats_of(&system, DEFAULT_ROOM_CONCERT).await,
        seats(CONCERT_SEATS - 3, 3, 0)
    );
    assert_eq!(
        seats_of(&system, OWN_ROOM_CONCERT).await,
        seats(CONCERT_SEATS - 1, 1, 0)
    );

    // Paid: held becomes sold.
    system.charge(7, 10_000_000).await;
    system.pay(paid.id, 7, default_room(), None).await.unwrap();
    assert_eq!(
        seats_of(&system, DEFAULT_ROOM_CONCERT).await,
        seats(CONCERT_SEATS - 3, 2, 1)
    );

    // Run out but not yet swept: free at once; swept: still free.
    system.expire(expiring.id).await;
    assert_eq!(
        seats_of(&system, DEFAULT_ROOM_CONCERT).await,
        seats(CONCERT_SEATS - 2, 1, 1)
    );
    reservation::store::holds::sweep(&system.db, 1_000)
        .await
        .unwrap();
    assert_eq!(
        seats_of(&system, DEFAULT_ROOM_CONCERT).await,
        seats(CONCERT_SEATS - 2, 1, 1)
    );
    // A repeated id is answered once; the other concert is untouched by all of it.
    let both = outlook(
        &system,
        &[OWN_ROOM_CONCERT, DEFAULT_ROOM_CONCERT, OWN_ROOM_CONCERT],
    )
    .await
    .unwrap();
    assert_eq!(both.seats.len(), 2);
    assert_eq!(
        both.seats[&OWN_ROOM_CONCERT],
        seats(CONCERT_SEATS - 1, 1, 0)
    );
}

#[tokio::test]
async fn a_sold_out_concert_has_no_free_seat() {
    let seed = catalog::seed::SeedArgs {
        concerts: 1,
        options_per_concert: 2,
        seats_per_option: 3,
    };
    let database = kit::postgres::fresh_database(&server_url()).await.unwrap();
    let system = System::start_seeded(seed, 0, &database, &[]).await;
    system.charge(7, 10_000_000).await;
    for (option, seat) in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)] {
        let held = system.hold(7, option, seat, default_room()).await.unwrap();
        if seat == 1 {
            system.pay(held.id, 7, default_room(), None).await.unwrap();
        }
    }
    let answer = outlook(&system, &[DEFAULT_ROOM_CONCERT]).await.unwrap();
    assert_eq!(answer.seats[&DEFAULT_ROOM_CONCERT], seats(0, 4, 2));
}

#[tokio::test]
async fn an_unknown_concert_is_absent_not_an_error_and_an_empty_call_answers_the_load_only() {
    let system = System::start(4).await;
    let answer = outlook(&system, &[UNKNOWN_CONCERT, DEFAULT_ROOM_CONCERT])
        .await
        .unwrap();
    assert_eq!(
        answer.seats,
        [(DEFAULT_ROOM_CONCERT, seats(CONCERT_SEATS, 0, 0))].into()
    );
    assert!(
        outlook(&system, &[UNKNOWN_CONCERT])
            .await
            .unwrap()
            .seats
            .is_empty()
    );

    let empty = outlook(&system, &[]).await.unwrap();
    assert!(empty.seats.is_empty());
    assert_eq!(
        empty.holds,
        Some(pb::HoldLoad {
            in_flight: 0,
            latency_ms: 0.0,
            completed: 0,
            window_ms: 2_000,
        })
    );
}

#[tokio::test]
async fn bad_concert_ids_and_too_many_ids_are_invalid_arguments_with_their_codes() {
    let system = System::start(4).await;
    let invalid = |code: &str| (tonic::Code::InvalidArgument, code.to_owned());
    for bad in [vec![0], vec![DEFAULT_ROOM_CONCERT, -3]] {
        assert_eq!(
            failure(outlook(&system, &bad).await),
            invalid("INVALID_CONCERT_ID")
        );
    }
    assert_eq!(
        failure(outlook(&system, &[DEFAULT_ROOM_CONCERT; 1_025]).await),
        invalid("TOO_MANY_CONCERTS")
    );
    // The limit itself, duplicates and all, is answered.
    let answer = outlook(&system, &[DEFAULT_ROOM_CONCERT; 1_024])
        .await
        .unwrap();
    assert_eq!(answer.seats.len(), 1);
}

#[tokio::test]
async fn each_outlook_counts_in_one_store_call_and_one_without_known_options_in_none() {
    let system = System::start(4).await;
    let outlook_calls = || async {
        kit::metrics::scrape(system.metrics_addr)
            .await
            .unwrap()
            .sum(
                "store_operation_duration_seconds_count",
                &[("store", "postgres"), ("operation", "outlook")],
            )
            .unwrap_or(0.0)
    };
    for _ in 0..3 {
        outlook(
            &system,
            &[DEFAULT_ROOM_CONCERT, OWN_ROOM_CONCERT, UNKNOWN_CONCERT],
        )
        .await
        .unwrap();
    }
    assert_eq!(outlook_calls().await, 3.0);
    // Nothing to count: no statement at all.
    outlook(&system, &[]).await.unwrap();
    outlook(&system, &[UNKNOWN_CONCERT]).await.unwrap();
    assert_eq!(outlook_calls().await, 3.0);
}

#[tokio::test]
async fn options_and_concerts_added_in_the_catalog_are_counted_once_the_cached_lists_are_stale() {
    let database = kit::postgres::fresh_database(&server_url()).await.unwrap();
    let system = System::start_with(4, &database, &["--concert-options-stale-ms=2000"]).await;
    assert_eq!(
        seats_of(&system, DEFAULT_ROOM_CONCERT).await.free,
        CONCERT_SEATS
    );
    assert!(
        outlook(&system, &[UNKNOWN_CONCERT])
            .await
            .unwrap()
            .seats
            .is_empty()
    );

    // An operator adds a 10-seat option to concert 1, and the concert that was unknown.
    sqlx::query(
        "insert into concert_options (concert_id, starts_at, venue, sale_opens_at, seat_count) \
         values ($1, now() + interval '60 days', 'Annex', now(), 10)",
    )
    .bind(DEFAULT_ROOM_CONCERT)
    .execute(&system.catalog_db)
    .await
    .unwrap();
    sqlx::query(
        "insert into concerts (id, title, artist, description, shared_room) \
         values ($1, 'Late', 'Artist', 'Added later', true)",
    )
    .bind(UNKNOWN_CONCERT)
    .execute(&system.catalog_db)
    .await
    .unwrap();

    // Within the staleness the cached lists answer: the catalog is not asked on every call.
    let answer = outlook(&system, &[DEFAULT_ROOM_CONCERT, UNKNOWN_CONCERT])
        .await
        .unwrap();
    assert_eq!(answer.seats.len(), 1);
    assert_eq!(answer.seats[&DEFAULT_ROOM_CONCERT].free, CONCERT_SEATS);

    // Past it, both show.
    let answer = eventually("the new option and concert are counted", || async {
        let answer = outlook(&system, &[DEFAULT_ROOM_CONCERT, UNKNOWN_CONCERT])
            .await
            .unwrap();
        (answer.seats.len() == 2 && answer.seats[&DEFAULT_ROOM_CONCERT].free == CONCERT_SEATS + 10)
            .then_some(answer)
    })
    .await;
    assert_eq!(answer.seats[&UNKNOWN_CONCERT], seats(0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_blocked_in_the_database_show_in_flight_and_raise_the_latency() {
    const HOLDS: u32 = 8;
    let database = kit::postgres::fresh_database(&server_url()).await.unwrap();
    // Statements wait on the lock far longer than this test holds it.
    let system = Arc::new(System::start_with(0, &database, &["--db-timeout-ms=30000"]).await);
    let lock = lock_seat_claims(&system).await;

    let holds: Vec<_> = (0..HOLDS)
        .map(|n| {
            let system = Arc::clone(&system);
            tokio::spawn(async move {
                let seat = i32::try_from(n).unwrap() + 1;
                system
                    .hold(100 + i64::from(n), 1, seat, default_room())
                    .await
            })
        })
        .collect();

    eventually("every hold is in flight", || async {
        (hold_load(&system).await.in_flight == HOLDS).then_some(())
    })
    .await;
    let all_in_flight = Instant::now();
    let scraped = kit::metrics::scrape(system.metrics_addr).await.unwrap();
    assert_eq!(
        scraped.sum("reservation_holds_in_flight", &[]),
        Some(f64::from(HOLDS))
    );
    // Held for a while, every poll sees them all still in flight and none decided.
    let held_for = Duration::from_millis(300);
    let mut polls = 0;
    while all_in_flight.elapsed() < held_for {
        let load = hold_load(&system).await;
        assert_eq!((load.in_flight, load.completed), (HOLDS, 0));
        polls += 1;
        tokio::task::yield_now().await;
    }
    let released = Instant::now();
    lock.rollback().await.unwrap();
    let blocked_for = released - all_in_flight;

    for hold in holds {
        hold.await.unwrap().unwrap();
    }
    let load = hold_load(&system).await;
    assert_eq!(load.in_flight, 0);
    assert!(load.completed >= HOLDS, "{load:?}");
    // Each hold started before `all_in_flight` and finished after `released`.
    assert!(
        load.latency_ms >= blocked_for.as_secs_f64() * 1_000.0,
        "{load:?} after holds were blocked for {blocked_for:?} ({polls} polls)"
    );
    assert_eq!(
        seats_of(&system, DEFAULT_ROOM_CONCERT).await,
        seats(CONCERT_SEATS - HOLDS, HOLDS, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_given_up_by_its_caller_leaves_in_flight_and_counts_with_the_time_it_took() {
    let database = kit::postgres::fresh_database(&server_url()).await.unwrap();
    let system = System::start_with(0, &database, &["--db-timeout-ms=30000"]).await;
    let lock = lock_seat_claims(&system).await;

    // The caller's deadline travels as grpc-timeout: the server drops the call at it.
    let deadline = Duration::from_millis(300);
    let request = kit::grpc::request(
        pb::HoldSeatRequest {
            user_id: 7,
            concert_option_id: 1,
            seat_no: 1,
            idempotency_key: None,
            admitted_by: default_room(),
        },
        deadline,
    );
    let mut client = system.client.clone();
    let given_up = tokio::spawn(async move { client.hold_seat(request).await });
    eventually("the hold is in flight", || async {
        (hold_load(&system).await.in_flight == 1).then_some(())
    })
    .await;
    assert!(given_up.await.unwrap().is_err());
    // With seat_claims still locked, the abandoned call is no longer counted in flight.
    let load = eventually("the abandoned hold leaves in flight", || async {
        let load = hold_load(&system).await;
        (load.in_flight == 0).then_some(load)
    })
    .await;
    assert_eq!(load.completed, 1);
    assert!(load.latency_ms >= 250.0, "{load:?}");
    lock.rollback().await.unwrap();
}
