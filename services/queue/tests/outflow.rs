//! What holds admission back, on a real Redis: a concert with no free seat (SOLD_OUT, told to
//! every waiter, lifted when seats come back), the free seats themselves, no-shows giving their
//! slot back, and the pace the reservation service's load sets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::time::Duration;

use futures::future::join_all;
use queue::{
    admitter::{Admitter, Limits},
    domain::{QueueEntry, Room, RoomSeats, TokenStatus, Verdict},
    outflow::{OutflowLimit, Pace, Targets},
    reservation::Reservation,
};
use support::{Rooms, policy};

const CONCERT: Room = Room::Concert(11);

fn seats(free: u32, held: u32, sold: u32) -> Option<RoomSeats> {
    Some(RoomSeats { free, held, sold })
}

/// Users `users` join `CONCERT` one after another (so in this order), and a first step starts
/// the room's token bucket (it fills from then on).
async fn line_up(rooms: &Rooms, users: std::ops::RangeInclusive<i64>) -> Vec<QueueEntry> {
    let mut entries = Vec::new();
    for user in users {
        entries.push(rooms.issue(user, CONCERT).await);
    }
    rooms.admit(CONCERT).await;
    entries
}

async fn status(rooms: &Rooms, entry: &QueueEntry) -> TokenStatus {
    rooms
        .store
        .status(entry.token)
        .await
        .expect("status")
        .status
}

#[tokio::test]
async fn a_sold_out_room_stops_admitting_at_once_tells_every_waiter_and_resumes_when_a_seat_comes_back()
 {
    let rooms = Rooms::new(policy(1_000.0, 0));
    let waiters = line_up(&rooms, 1..=20).await;
    rooms.advance(1_000);
    let step = rooms
        .store
        .admit_with(CONCERT, &Pace::ceiling(), seats(0, 2, 48))
        .await
        .expect("admit");
    assert_eq!(step.admitted, 0, "admitted with no seat free");
    for (place, entry) in waiters.iter().enumerate() {
        assert_eq!(
            status(&rooms, entry).await,
            TokenStatus::SoldOut {
                position: place as u64 + 1,
                seats_may_return: true
            }
        );
    }
    // A joiner now is told at once, at the back.
    let late = rooms.issue(99, CONCERT).await;
    assert_eq!(
        late.status,
        TokenStatus::SoldOut {
            position: 21,
            seats_may_return: true
        }
    );
    let figures = rooms.store.room_figures(CONCERT).await.expect("figures");
    assert_eq!(figures.in_effect.limit, OutflowLimit::SoldOut);
    assert_eq!(figures.in_effect.admission_rate, 0.0);
    assert_eq!(figures.seats, seats(0, 2, 48));

    // Steps that learn nothing new keep the last known stand.
    rooms.advance(1_000);
    let step = rooms.admit(CONCERT).await;
    assert_eq!(step.admitted, 0);

    // Two holds ran out: two seats free, two admitted, the rest waiting again.
    rooms.advance(1_000);
    let step = rooms
        .store
        .admit_with(CONCERT, &Pace::ceiling(), seats(2, 0, 48))
        .await
        .expect("admit");
    assert_eq!(step.admitted, 2);
    assert!(matches!(
        status(&rooms, &waiters[0]).await,
        TokenStatus::Active { .. }
    ));
    assert!(matches!(
        status(&rooms, &waiters[2]).await,
        TokenStatus::Waiting { position: 1, .. }
    ));

    // Every seat sold: the line is told nothing will come back.
    rooms.advance(1_000);
    rooms
        .store
        .admit_with(CONCERT, &Pace::ceiling(), seats(0, 0, 50))
        .await
        .expect("admit");
    assert_eq!(
        status(&rooms, &waiters[2]).await,
        TokenStatus::SoldOut {
            position: 1,
            seats_may_return: false
        }
    );
}

#[tokio::test]
async fn the_room_never_admits_more_at_once_than_the_free_seats_admitted_users_are_not_yet_choosing()
 {
    let rooms = Rooms::new(policy(1_000.0, 0));
    let waiters = line_up(&rooms, 1..=20).await;
    let admit = |free| {
        let rooms = &rooms;
        async move {
            rooms.advance(1_000);
            rooms
                .store
                .admit_with(CONCERT, &Pace::ceiling(), seats(free, 0, 0))
                .await
                .expect("admit")
                .admitted
        }
    };
    assert_eq!(admit(5).await, 5);
    assert_eq!(admit(5).await, 0, "the five admitted are still choosing");
    // Two of them make a reservation call (and hold a seat each): three free, three choosing.
    for entry in &waiters[..2] {
        assert!(matches!(rooms.validate(entry).await, Verdict::Valid { .. }));
    }
    assert_eq!(admit(3).await, 0);
    // Another seat comes back: one more fan may come in.
    assert_eq!(admit(4).await, 1);
}

#[tokio::test]
async fn an_admitted_user_who_makes_no_reservation_call_within_the_idle_limit_gives_the_slot_back()
{
    let mut idle_policy = policy(1_000.0, 2);
    idle_policy.admitted_idle = Duration::from_secs(120);
    let rooms = Rooms::new(idle_policy);
    let [shopper, no_show, next]: [QueueEntry; 3] =
        line_up(&rooms, 1..=3).await.try_into().expect("three");
    rooms.advance(1_000);
    assert_eq!(rooms.admit(CONCERT).await.admitted, 2, "the cap of two");
    // Both are told until when they may choose.
    let admitted_at = rooms.now_ms();
    assert_eq!(
        status(&rooms, &no_show).await,
        TokenStatus::Active {
            until_unix_ms: admitted_at + 600_000,
            choose_by_unix_ms: Some(admitted_at + 120_000)
        }
    );
    // The shopper holds a seat at once; the no-show never comes.
    assert!(matches!(
        rooms.validate(&shopper).await,
        Verdict::Valid { .. }
    ));
    // The next fan keeps polling (the heartbeat) while the two are in.
    for _ in 0..4 {
        rooms.advance(29_750);
        assert!(matches!(
            status(&rooms, &next).await,
            TokenStatus::Waiting { .. }
        ));
    }
    assert_eq!(rooms.admit(CONCERT).await.idled, 0, "inside the limit");
    rooms.advance(1_000);
    let step = rooms.admit(CONCERT).await;
    assert_eq!(
        (step.idled, step.admitted),
        (1, 1),
        "the slot went to the next fan"
    );
    assert_eq!(rooms.validate(&no_show).await, Verdict::NotFound);
    assert!(matches!(
        status(&rooms, &next).await,
        TokenStatus::Active { .. }
    ));
    // The shopper is between hold and pay: no longer subject to the limit. The next fan,
    // who never came either, is.
    rooms.advance(200_000);
    assert!(matches!(
        rooms.validate(&shopper).await,
        Verdict::Valid { .. }
    ));
    assert_eq!(rooms.validate(&next).await, Verdict::Expired);
    let figures = rooms.store.room_figures(CONCERT).await.expect("figures");
    assert_eq!(figures.idled_total, 1);
}

#[tokio::test]
async fn a_no_show_past_the_limit_gets_a_new_place_at_the_back_even_before_the_admitter_sweeps() {
    let mut idle_policy = policy(1_000.0, 0);
    idle_policy.admitted_idle = Duration::from_secs(60);
    let rooms = Rooms::new(idle_policy);
    let [entry]: [QueueEntry; 1] = line_up(&rooms, 1..=1).await.try_into().expect("one");
    rooms.advance(1_000);
    assert_eq!(rooms.admit(CONCERT).await.admitted, 1);
    rooms.advance(60_000);
    // Asking for a token again starts at the back, with a new one.
    let again = rooms.issue(1, CONCERT).await;
    assert_ne!(again.token, entry.token);
    assert!(matches!(
        again.status,
        TokenStatus::Waiting { position: 1, .. }
    ));
    assert_eq!(rooms.validate(&entry).await, Verdict::NotFound);
}

#[tokio::test]
async fn a_no_show_polling_its_token_past_the_limit_is_told_it_expired() {
    let mut idle_policy = policy(1_000.0, 0);
    idle_policy.admitted_idle = Duration::from_secs(60);
    let rooms = Rooms::new(idle_policy);
    let [entry]: [QueueEntry; 1] = line_up(&rooms, 1..=1).await.try_into().expect("one");
    rooms.advance(1_000);
    assert_eq!(rooms.admit(CONCERT).await.admitted, 1);
    rooms.advance(60_000);
    assert!(matches!(
        rooms.store.status(entry.token).await,
        Err(queue::error::QueueError::TokenExpired)
    ));
    assert_eq!(rooms.validate(&entry).await, Verdict::NotFound);
}

#[tokio::test]
async fn the_pace_scales_the_rate_and_the_console_sees_the_rate_in_effect_and_why() {
    let rooms = Rooms::new(policy(10.0, 0));
    line_up(&rooms, 1..=100).await;
    let slow = Pace {
        share: 0.5,
        limit: OutflowLimit::HoldLatency,
        detail: "hold latency 400 ms over the 250 ms target: 50% of the ceiling".into(),
    };
    let mut admitted = 0;
    for _ in 0..40 {
        rooms.advance(250);
        admitted += rooms
            .store
            .admit_with(CONCERT, &slow, None)
            .await
            .expect("admit")
            .admitted;
    }
    // Ten seconds at half of 10/s.
    assert!((49..=50).contains(&admitted), "{admitted} admitted");
    let figures = rooms.store.room_figures(CONCERT).await.expect("figures");
    assert_eq!(figures.settings.admission_rate, 10.0);
    assert_eq!(figures.in_effect.admission_rate, 5.0);
    assert_eq!(figures.in_effect.limit, OutflowLimit::HoldLatency);
    assert_eq!(figures.in_effect.detail, slow.detail);
}

#[tokio::test]
async fn a_cap_only_room_scales_its_cap_with_the_pace() {
    let rooms = Rooms::new(policy(0.0, 10));
    join_all((1..=100).map(|user| rooms.issue(user, CONCERT))).await;
    let slow = Pace {
        share: 0.3,
        limit: OutflowLimit::HoldsInFlight,
        detail: String::new(),
    };
    let step = rooms
        .store
        .admit_with(CONCERT, &slow, None)
        .await
        .expect("admit");
    assert_eq!(step.admitted, 3);
    let figures = rooms.store.room_figures(CONCERT).await.expect("figures");
    assert_eq!(figures.in_effect.active_cap, 3);
}

#[tokio::test]
async fn an_unreachable_reservation_service_slows_the_admitter_and_says_so() {
    let rooms = Rooms::new(policy(10.0, 0));
    join_all((1..=50).map(|user| rooms.issue(user, CONCERT))).await;
    // Nothing listens on port 9: every call fails fast.
    let reservation =
        Reservation::connect("http://127.0.0.1:9", Duration::from_millis(200)).expect("client");
    let targets = Targets {
        hold_latency: Duration::from_millis(250),
        holds_in_flight: 64,
    };
    let limits = Limits {
        rooms_per_tick: 16,
        concurrency: 2,
        budget: Duration::from_secs(5),
    };
    let mut admitter = Admitter::new(rooms.store.clone(), Duration::from_millis(100), limits)
        .with_reservation(reservation, targets);
    let mut last = None;
    for _ in 0..3 {
        rooms.advance(1_000);
        let report = admitter.tick().await.expect("tick");
        last = report.pace;
    }
    let pace = last.expect("a leading tick has a pace");
    assert_eq!(pace.limit, OutflowLimit::ReservationUnreachable);
    assert!(pace.share < 1.0, "{pace:?}");
    let figures = rooms.store.room_figures(CONCERT).await.expect("figures");
    assert_eq!(
        figures.in_effect.limit,
        OutflowLimit::ReservationUnreachable
    );
    assert!(figures.in_effect.admission_rate < 10.0);
}
