//! Holding seats over gRPC against a real catalog and real PostgreSQL: the waiting room that
//! admitted the caller, a holder's own retries, and the per-user, per-concert seat limit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::sync::Arc;

use support::{
    DEFAULT_ROOM_CONCERT, OWN_ROOM_CONCERT, System, default_room, failure, room_of,
    seat_limit_reached, seat_taken, wrong_room,
};
use ticketing_proto::reservation::v1 as pb;
use tokio::sync::Barrier;

/// Options of the default-room concert (1) and of the own-room concert (2).
const DEFAULT_ROOM_OPTION: i64 = 1;
const DEFAULT_ROOM_OTHER_OPTION: i64 = 2;
const OWN_ROOM_OPTION: i64 = 3;

/// One hold request of a concurrent batch.
struct Hold {
    user: i64,
    option: i64,
    seat: i32,
    room: Option<pb::Room>,
    key: Option<String>,
}

/// Runs `holds` all at once (each task waits at one barrier, then sends its hold) and returns
/// every answer.
async fn at_once(
    system: &Arc<System>,
    holds: Vec<Hold>,
) -> Vec<Result<pb::Reservation, tonic::Status>> {
    let barrier = Arc::new(Barrier::new(holds.len()));
    let tasks: Vec<_> = holds
        .into_iter()
        .map(|hold| {
            let system = Arc::clone(system);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                system
                    .hold_with_key(hold.user, hold.option, hold.seat, hold.room, hold.key)
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

#[tokio::test]
async fn only_a_token_from_the_concerts_own_room_holds_its_seats() {
    let system = System::start(4).await;
    // Concert 1 is admitted by the default room only, even with a room named after it.
    assert_eq!(
        failure(
            system
                .hold(7, DEFAULT_ROOM_OPTION, 1, room_of(DEFAULT_ROOM_CONCERT))
                .await
        ),
        wrong_room()
    );
    let held = system
        .hold(7, DEFAULT_ROOM_OPTION, 1, default_room())
        .await
        .unwrap();
    assert_eq!(held.status(), pb::ReservationStatus::Held);

    // Concert 2 has its own room: neither the default room nor another concert's admits to it.
    assert_eq!(
        failure(system.hold(7, OWN_ROOM_OPTION, 1, default_room()).await),
        wrong_room()
    );
    assert_eq!(
        failure(
            system
                .hold(7, OWN_ROOM_OPTION, 1, room_of(DEFAULT_ROOM_CONCERT))
                .await
        ),
        wrong_room()
    );
    assert_eq!(
        failure(system.hold(7, OWN_ROOM_OPTION, 1, room_of(99)).await),
        wrong_room()
    );
    let held = system
        .hold(7, OWN_ROOM_OPTION, 1, room_of(OWN_ROOM_CONCERT))
        .await
        .unwrap();
    assert_eq!((held.concert_option_id, held.seat_no), (OWN_ROOM_OPTION, 1));

    // A refused hold takes nothing: the seat is still free for a caller from the right room.
    assert_eq!(system.rows_of(7).await, 2);
    let (room,): (Option<i64>,) =
        sqlx::query_as("select waiting_room_concert_id from reservations where id = $1")
            .bind(held.id)
            .fetch_one(&system.db)
            .await
            .unwrap();
    assert_eq!(room, Some(OWN_ROOM_CONCERT));
}

#[tokio::test]
async fn a_hold_without_a_valid_room_is_an_invalid_argument() {
    let system = System::start(4).await;
    let invalid_room = (tonic::Code::InvalidArgument, "INVALID_ROOM".to_owned());
    assert_eq!(
        failure(system.hold(7, DEFAULT_ROOM_OPTION, 1, None).await),
        invalid_room
    );
    assert_eq!(
        failure(system.hold(7, DEFAULT_ROOM_OPTION, 1, room_of(0)).await),
        invalid_room
    );
    assert_eq!(
        failure(system.hold(7, DEFAULT_ROOM_OPTION, 1, room_of(-2)).await),
        invalid_room
    );
    assert_eq!(system.rows_of(7).await, 0);
}

#[tokio::test]
async fn a_holders_retry_gets_its_own_hold_back_and_anyone_else_seat_taken() {
    let system = System::start(4).await;
    let first = system
        .hold(7, DEFAULT_ROOM_OPTION, 5, default_room())
        .await
        .unwrap();
    let retry = system
        .hold(7, DEFAULT_ROOM_OPTION, 5, default_room())
        .await
        .unwrap();
    assert_eq!(retry, first);
    assert_eq!(
        failure(system.hold(8, DEFAULT_ROOM_OPTION, 5, default_room()).await),
        seat_taken()
    );
    assert_eq!(system.rows_of(7).await, 1);

    // Once the hold has run out, a retry is a new hold, not the stale one.
    system.expire(first.id).await;
    let again = system
        .hold(7, DEFAULT_ROOM_OPTION, 5, default_room())
        .await
        .unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(again.status(), pb::ReservationStatus::Held);

    // A paid seat is no longer a hold to hand back: the holder's retry is SEAT_TAKEN too.
    system.charge(7, 1_000_000).await;
    system.pay(again.id, 7, default_room(), None).await.unwrap();
    assert_eq!(
        failure(system.hold(7, DEFAULT_ROOM_OPTION, 5, default_room()).await),
        seat_taken()
    );
}

/// Ten simultaneous holds of one free seat by one user (a client retrying before its first
/// answer arrived): all get the same reservation, and one row exists.
async fn simultaneous_retries_share_one_hold(max_seats: u32) {
    let system = Arc::new(System::start(max_seats).await);
    for round in 0..10 {
        let user = 100 + round;
        let seat = i32::try_from(round).unwrap() + 1;
        let answers = at_once(
            &system,
            (0..10)
                .map(|_| Hold {
                    user,
                    option: DEFAULT_ROOM_OPTION,
                    seat,
                    room: default_room(),
                    key: None,
                })
                .collect(),
        )
        .await;
        let ids: Vec<i64> = answers.into_iter().map(|a| a.unwrap().id).collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(system.rows_of(user).await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_retries_of_one_seat_by_its_user_all_get_the_one_hold() {
    simultaneous_retries_share_one_hold(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_retries_of_one_seat_get_the_one_hold_without_a_limit_too() {
    simultaneous_retries_share_one_hold(0).await;
}

/// Two users at once, each sending twenty simultaneous holds of twenty distinct free seats of
/// one concert (spread over its two options): each gets exactly the limit, the rest
/// SEAT_LIMIT_REACHED. Ten rounds, each with fresh users, the previous round's holds run out.
async fn twenty_at_once_get_exactly_four(with_keys: bool) {
    let system = Arc::new(System::start(4).await);
    for round in 0..10_i64 {
        let users = [1_000 + 2 * round, 1_001 + 2 * round];
        let holds = users
            .iter()
            .enumerate()
            .flat_map(|(u, &user)| {
                (0..20_i32).map(move |n| {
                    let option = if n % 2 == 0 {
                        DEFAULT_ROOM_OPTION
                    } else {
                        DEFAULT_ROOM_OTHER_OPTION
                    };
                    let seat = i32::try_from(u).unwrap() * 10 + n / 2 + 1;
                    let key = with_keys.then(|| format!("hold-{n}"));
                    Hold {
                        user,
                        option,
                        seat,
                        room: default_room(),
                        key,
                    }
                })
            })
            .collect();
        let answers = at_once(&system, holds).await;
        for (u, &user) in users.iter().enumerate() {
            let theirs = &answers[u * 20..(u + 1) * 20];
            let held: Vec<_> = theirs.iter().filter_map(|a| a.as_ref().ok()).collect();
            let refused: Vec<_> = theirs
                .iter()
                .filter_map(|a| a.as_ref().err())
                .map(|status| failure::<()>(Err(status.clone())))
                .collect();
            assert_eq!(held.len(), 4, "round {round}, user {user}: {refused:?}");
            assert!(held.iter().all(|r| r.user_id == user));
            assert_eq!(refused, vec![seat_limit_reached(); 16], "round {round}");
            assert_eq!(system.rows_of(user).await, 4);
        }
        reservation::testing::run_out_holds(&system.db, None)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_holds_by_each_of_two_users_get_exactly_the_limit() {
    twenty_at_once_get_exactly_four(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_holds_by_each_of_two_users_with_idempotency_keys_get_exactly_the_limit()
 {
    twenty_at_once_get_exactly_four(true).await;
}

#[tokio::test]
async fn the_limit_counts_per_concert_across_its_options() {
    let system = System::start(4).await;
    for (option, seat) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
        system.hold(7, option, seat, default_room()).await.unwrap();
    }
    assert_eq!(
        failure(system.hold(7, DEFAULT_ROOM_OPTION, 3, default_room()).await),
        seat_limit_reached()
    );
    assert_eq!(
        failure(
            system
                .hold(7, DEFAULT_ROOM_OTHER_OPTION, 3, default_room())
                .await
        ),
        seat_limit_reached()
    );
    // A fifth seat in another concert is the first of that concert.
    system
        .hold(7, OWN_ROOM_OPTION, 1, room_of(OWN_ROOM_CONCERT))
        .await
        .unwrap();
    // And another user is not limited by this one.
    system
        .hold(8, DEFAULT_ROOM_OPTION, 3, default_room())
        .await
        .unwrap();
    assert_eq!(system.rows_of(7).await, 5);
}

#[tokio::test]
async fn a_retry_at_the_limit_gets_its_hold_back_instead_of_being_counted_again() {
    let system = System::start(4).await;
    let mut held = Vec::new();
    for seat in 1..=4 {
        held.push(
            system
                .hold(7, DEFAULT_ROOM_OPTION, seat, default_room())
                .await
                .unwrap(),
        );
    }
    for (seat, first) in (1..=4).zip(&held) {
        let retry = system
            .hold(7, DEFAULT_ROOM_OPTION, seat, default_room())
            .await
            .unwrap();
        assert_eq!(&retry, first);
    }
    assert_eq!(
        failure(system.hold(7, DEFAULT_ROOM_OPTION, 5, default_room()).await),
        seat_limit_reached()
    );
    assert_eq!(system.rows_of(7).await, 4);
}

#[tokio::test]
async fn an_expired_hold_frees_its_slot() {
    let system = System::start(4).await;
    let mut held = Vec::new();
    for seat in 1..=4 {
        held.push(
            system
                .hold(7, DEFAULT_ROOM_OPTION, seat, default_room())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        failure(system.hold(7, DEFAULT_ROOM_OPTION, 5, default_room()).await),
        seat_limit_reached()
    );
    // Run out, but not yet swept: still HELD in its row, no longer counted.
    system.expire(held[0].id).await;
    system
        .hold(7, DEFAULT_ROOM_OPTION, 5, default_room())
        .await
        .unwrap();
    assert_eq!(
        failure(system.hold(7, DEFAULT_ROOM_OPTION, 6, default_room()).await),
        seat_limit_reached()
    );
    // Swept (marked EXPIRED), likewise.
    system.expire(held[1].id).await;
    reservation::store::holds::sweep(&system.db, 1_000)
        .await
        .unwrap();
    assert_eq!(
        system.reservation(held[1].id).await.status(),
        pb::ReservationStatus::Expired
    );
    system
        .hold(7, DEFAULT_ROOM_OPTION, 6, default_room())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_paid_seat_counts_against_the_limit() {
    let system = System::start(4).await;
    system.charge(7, 10_000_000).await;
    let mut held = Vec::new();
    for seat in 1..=4 {
        held.push(
            system
                .hold(7, DEFAULT_ROOM_OPTION, seat, default_room())
                .await
                .unwrap(),
        );
    }
    for reservation in &held[..2] {
        system
            .pay(reservation.id, 7, default_room(), None)
            .await
            .unwrap();
    }
    // The two unpaid holds run out; the two paid seats stay counted.
    for reservation in &held[2..] {
        system.expire(reservation.id).await;
    }
    system
        .hold(7, DEFAULT_ROOM_OPTION, 10, default_room())
        .await
        .unwrap();
    system
        .hold(7, DEFAULT_ROOM_OTHER_OPTION, 10, default_room())
        .await
        .unwrap();
    assert_eq!(
        failure(
            system
                .hold(7, DEFAULT_ROOM_OPTION, 11, default_room())
                .await
        ),
        seat_limit_reached()
    );
}

#[tokio::test]
async fn a_limit_of_zero_holds_any_number_of_seats() {
    let system = System::start(0).await;
    for seat in 1..=support::SEATS_PER_OPTION {
        system
            .hold(7, DEFAULT_ROOM_OPTION, seat, default_room())
            .await
            .unwrap();
    }
    assert_eq!(system.rows_of(7).await, 30);
}

#[tokio::test]
async fn an_idempotency_key_refused_at_the_limit_is_not_used_up() {
    let system = System::start(2).await;
    let key = |k: &str| Some(k.to_owned());
    let first = system
        .hold_with_key(7, DEFAULT_ROOM_OPTION, 1, default_room(), key("a"))
        .await
        .unwrap();
    system
        .hold_with_key(7, DEFAULT_ROOM_OPTION, 2, default_room(), key("b"))
        .await
        .unwrap();
    assert_eq!(
        failure(
            system
                .hold_with_key(7, DEFAULT_ROOM_OPTION, 3, default_room(), key("c"))
                .await
        ),
        seat_limit_reached()
    );
    // The first answer replays, even at the limit.
    let replayed = system
        .hold_with_key(7, DEFAULT_ROOM_OPTION, 1, default_room(), key("a"))
        .await
        .unwrap();
    assert_eq!(replayed, first);
    // The refused key left no answer behind: once a slot is free, its retry holds.
    system.expire(first.id).await;
    let third = system
        .hold_with_key(7, DEFAULT_ROOM_OPTION, 3, default_room(), key("c"))
        .await
        .unwrap();
    assert_eq!(third.seat_no, 3);
    assert_eq!(
        system
            .hold_with_key(7, DEFAULT_ROOM_OPTION, 3, default_room(), key("c"))
            .await
            .unwrap(),
        third
    );
}

#[tokio::test]
async fn a_reservation_reads_back_in_the_status_its_row_has() {
    let system = System::start(4).await;
    let cases = [
        ("HELD", 5, pb::ReservationStatus::Held),
        ("CONFIRMED", -5, pb::ReservationStatus::Confirmed),
        ("EXPIRED", -5, pb::ReservationStatus::Expired),
        ("CANCELLED", 5, pb::ReservationStatus::Cancelled),
        // Run out but not yet swept: EXPIRED at once.
        ("HELD", -5, pb::ReservationStatus::Expired),
    ];
    for (seat_no, (status, minutes_left, expected)) in (1..).zip(cases) {
        let (id,): (i64,) = sqlx::query_as(
            "insert into reservations (user_id, concert_option_id, seat_no, status, price_minor, \
                                       grade, expires_at, concert_id) \
             values (7, 1, $1, $2, 1000, 'S', now() + make_interval(mins => $3), 1) returning id",
        )
        .bind(seat_no)
        .bind(status)
        .bind(minutes_left)
        .fetch_one(&system.db)
        .await
        .unwrap();
        let read = system.reservation(id).await;
        assert_eq!(read.status(), expected, "{status}, {minutes_left} min left");
        assert_eq!((read.seat_no, read.price_minor), (seat_no, 1000));
    }
}
