//! The waiting room against a real Redis: each test has its own key prefix, and a manual clock
//! so time moves without sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::{collections::HashSet, time::Duration};

use futures::StreamExt;
use queue::{
    Policy, QueueStore,
    admission::Admission,
    domain::{QueueEntry, Room, TokenStatus, UserId, Verdict},
    error::QueueError,
    store::Connections,
};
use support::{Rooms, START_MS, policy};

/// Most tests here use the default room only.
impl Rooms {
    async fn issue_default(&self, user: i64) -> QueueEntry {
        self.issue(user, Room::Default).await
    }

    async fn admit_default(&self) -> Admission {
        self.admit(Room::Default).await
    }
}

fn position(entry: &QueueEntry) -> u64 {
    match entry.status {
        TokenStatus::Waiting { position, .. } | TokenStatus::SoldOut { position, .. } => position,
        TokenStatus::Active { .. } | TokenStatus::Prequeue { .. } => 0,
    }
}

#[tokio::test]
async fn a_second_issue_returns_the_same_token_even_concurrently_and_another_room_another() {
    let room = Rooms::new(policy(1.0, 0));
    let first = room.issue_default(7).await;
    assert_eq!(position(&first), 1);
    let again = futures::future::join_all((0..50).map(|_| room.issue_default(7))).await;
    assert!(
        again
            .iter()
            .all(|s| s.token == first.token && position(s) == 1)
    );
    // The same user in another concert's room holds another token there.
    let other = room
        .store
        .issue(UserId::new(7).expect("user"), Room::Concert(3))
        .await
        .expect("issue");
    assert_ne!(other.token, first.token);
    assert_eq!(other.room, Room::Concert(3));
}

#[tokio::test]
async fn concurrent_arrivals_get_distinct_fifo_positions_and_are_admitted_in_that_order() {
    let room = Rooms::new(policy(1000.0, 0));
    let entries = futures::future::join_all((1..=200).map(|user| room.issue_default(user))).await;
    let positions: HashSet<u64> = entries.iter().map(position).collect();
    assert_eq!(positions, (1..=200).collect::<HashSet<u64>>());

    // 1000/s with a one-second burst: after 50 ms, 50 may enter — exactly the first 50 in line.
    room.admit_default().await; // starts the bucket
    room.advance(50);
    assert_eq!(room.admit_default().await.admitted, 50);
    for entry in &entries {
        let verdict = room.validate(entry).await;
        if position(entry) <= 50 {
            assert!(
                matches!(verdict, Verdict::Valid { .. }),
                "{entry:?} -> {verdict:?}"
            );
        } else {
            assert_eq!(verdict, Verdict::NotAdmitted, "{entry:?}");
        }
    }
    // Everyone still waiting moved up by exactly 50.
    for entry in entries.iter().filter(|e| position(e) > 50) {
        let now = room.store.status(entry.token).await.expect("status");
        assert_eq!(position(&now), position(entry) - 50);
    }
}

#[tokio::test]
async fn admission_follows_the_configured_rate_in_whole_tokens_from_an_empty_bucket() {
    let room = Rooms::new(policy(5.0, 0));
    for user in 1..=40 {
        room.issue_default(user).await;
    }
    assert_eq!(
        room.admit_default().await.admitted,
        0,
        "the bucket starts empty"
    );
    room.advance(1_000);
    assert_eq!(room.admit_default().await.admitted, 5, "one second at 5/s");
    room.advance(200);
    assert_eq!(
        room.admit_default().await.admitted,
        1,
        "a fifth of a second at 5/s"
    );
    // Four more seconds in steps of 100 ms: half a token per step, so one admission every
    // second step, 5/s throughout (well inside the waiters' grace, so nobody needs to poll).
    let mut steps = Vec::new();
    for _ in 0..40 {
        room.advance(100);
        steps.push(room.admit_default().await.admitted);
    }
    assert_eq!(steps.iter().sum::<u64>(), 20, "4 s at 5/s: {steps:?}");
    assert!(steps.iter().all(|n| *n <= 1), "never a burst: {steps:?}");
}

#[tokio::test]
async fn paused_admission_accumulates_at_most_one_second_of_rate() {
    let room = Rooms::new(policy(5.0, 0));
    let entries: Vec<_> = futures::future::join_all((1..=40).map(|u| room.issue_default(u))).await;
    assert_eq!(
        room.admit_default().await.admitted,
        0,
        "the bucket starts empty"
    );
    // 30 s without a step, the waiters polling throughout: one second's worth, not 150.
    room.advance(30_000);
    for entry in &entries {
        room.store.status(entry.token).await.expect("poll");
    }
    assert_eq!(room.admit_default().await.admitted, 5);
}

#[tokio::test]
async fn the_active_cap_holds_and_a_release_frees_a_slot_at_once() {
    let room = Rooms::new(policy(0.0, 3));
    let entries: Vec<_> = futures::future::join_all((1..=5).map(|u| room.issue_default(u))).await;
    let admission = room.admit_default().await;
    assert_eq!(
        (admission.admitted, admission.active, admission.waiting),
        (3, 3, 2)
    );
    assert_eq!(room.admit_default().await.admitted, 0, "cap reached");

    let first = entries.iter().find(|e| position(e) == 1).expect("first");
    assert!(room.store.release(first.token).await.expect("release"));
    assert!(
        !room
            .store
            .release(first.token)
            .await
            .expect("release twice")
    );
    assert_eq!(room.validate(first).await, Verdict::NotFound);

    assert_eq!(room.admit_default().await.admitted, 1);
    let fourth = entries.iter().find(|e| position(e) == 4).expect("fourth");
    assert!(matches!(room.validate(fourth).await, Verdict::Valid { .. }));
    let fifth = entries.iter().find(|e| position(e) == 5).expect("fifth");
    assert_eq!(room.validate(fifth).await, Verdict::NotAdmitted);
}

#[tokio::test]
async fn waiters_who_stop_polling_are_dropped_and_stop_counting() {
    let room = Rooms::new(policy(1.0, 0));
    let a = room.issue_default(1).await;
    let b = room.issue_default(2).await;
    let c = room.issue_default(3).await;
    assert_eq!(position(&c), 3);
    room.advance(30_000);
    room.store.status(c.token).await.expect("c polls");
    room.advance(31_000);
    // a and b last polled 61 s ago: past the 60 s grace.
    let admission = room.admit_default().await;
    assert_eq!(admission.dropped, 2);
    let c_now = room.store.status(c.token).await.expect("c polls again");
    assert_eq!(position(&c_now), 1);
    assert!(matches!(
        room.store.status(a.token).await,
        Err(QueueError::TokenNotFound)
    ));
    // b asks for a token again: it is new and at the back.
    let b_again = room.issue_default(2).await;
    assert_ne!(b_again.token, b.token);
    assert_eq!(position(&b_again), 2);
}

#[tokio::test]
async fn while_a_drop_batch_comes_back_full_nobody_is_admitted_so_silent_waiters_never_are() {
    let room = Rooms::new(policy(0.0, 10));
    // 1,500 silent waiters at the head (more than one batch of 1,000), one live one behind.
    futures::stream::iter(1..=1_500)
        .map(|user| room.issue_default(user))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    room.advance(61_000);
    let live = room.issue_default(1_501).await;

    let first = room.admit_default().await;
    assert_eq!((first.dropped, first.admitted), (1_000, 0), "{first:?}");
    assert!(first.batch_full());
    let second = room.admit_default().await;
    assert_eq!((second.dropped, second.admitted), (500, 1), "{second:?}");
    assert!(!second.batch_full());
    assert!(matches!(room.validate(&live).await, Verdict::Valid { .. }));
}

#[tokio::test]
async fn a_late_poll_is_refused_even_before_the_sweeper_runs() {
    let room = Rooms::new(policy(1.0, 0));
    let a = room.issue_default(1).await;
    room.advance(60_001);
    assert!(matches!(
        room.store.status(a.token).await,
        Err(QueueError::TokenExpired)
    ));
}

#[tokio::test]
async fn active_tokens_expire_after_their_ttl() {
    let room = Rooms::new(policy(0.0, 10));
    let a = room.issue_default(1).await;
    assert_eq!(room.admit_default().await.admitted, 1);
    let active = room.store.status(a.token).await.expect("status");
    assert_eq!(
        active.status,
        TokenStatus::Active {
            until_unix_ms: START_MS + 600_000,
            // No idle limit in these tests.
            choose_by_unix_ms: None,
        }
    );
    // Issuing again while active returns the active token.
    assert_eq!(room.issue_default(1).await.token, a.token);

    room.advance(600_000);
    assert_eq!(room.validate(&a).await, Verdict::Expired);
    assert!(room.store.status(a.token).await.is_err());
    let again = room.issue_default(1).await;
    assert_ne!(again.token, a.token);
    assert!(matches!(
        again.status,
        TokenStatus::Waiting { position: 1, .. }
    ));
}

#[tokio::test]
async fn expired_active_tokens_free_their_slots_for_the_next_waiters() {
    let room = Rooms::new(policy(0.0, 1));
    let a = room.issue_default(1).await;
    let b = room.issue_default(2).await;
    assert_eq!(room.admit_default().await.admitted, 1);
    // b keeps polling every 30 s while a's 600 s run out.
    for _ in 0..20 {
        room.advance(30_000);
        room.store.status(b.token).await.expect("b polls");
    }
    let admission = room.admit_default().await;
    assert_eq!((admission.expired, admission.admitted), (1, 1));
    assert_eq!(room.validate(&a).await, Verdict::NotFound);
    assert!(matches!(room.validate(&b).await, Verdict::Valid { .. }));
}

#[tokio::test]
async fn validation_tells_valid_wrong_user_not_admitted_and_unknown_tokens_apart() {
    let room = Rooms::new(policy(0.0, 1));
    let a = room.issue_default(1).await;
    let b = room.issue_default(2).await;
    room.admit_default().await;
    assert!(matches!(room.validate(&a).await, Verdict::Valid { .. }));
    assert_eq!(
        room.store
            .validate(a.token, UserId::new(2).expect("user"))
            .await
            .expect("validate"),
        Verdict::WrongUser
    );
    assert_eq!(room.validate(&b).await, Verdict::NotAdmitted);
    assert_eq!(
        room.store
            .validate(
                queue::domain::Token::random(Room::Default),
                UserId::new(1).expect("user")
            )
            .await
            .expect("validate"),
        Verdict::NotFound
    );
}

#[tokio::test]
async fn eta_follows_the_configured_rate_then_the_measured_outflow() {
    // Rate 10/s but a cap of 2 active users who each stay 1 s: the real outflow is ~2/s.
    let room = Rooms::new(Policy {
        admission_rate: 10.0,
        active_cap: 2,
        active_ttl: Duration::from_secs(1),
        waiting_grace: Duration::from_secs(60),
        admitted_idle: Duration::ZERO,
    });
    let entries: Vec<_> = futures::future::join_all((1..=100).map(|u| room.issue_default(u))).await;
    let last = entries.iter().find(|e| position(e) == 100).expect("last");
    assert_eq!(
        last.status,
        TokenStatus::Waiting {
            position: 100,
            eta_seconds: 10,
            paused: false,
        }
    );

    room.admit_default().await;
    for _ in 0..300 {
        room.advance(100);
        room.admit_default().await;
    }
    let now = room.store.status(last.token).await.expect("status");
    let TokenStatus::Waiting {
        position,
        eta_seconds,
        ..
    } = now.status
    else {
        panic!("still waiting expected, got {now:?}");
    };
    // 30 s at ~2/s admitted ~60; the rest at ~2/s need ~position/2 seconds.
    let expected = position as f64 / 2.0;
    assert!(
        (eta_seconds as f64 - expected).abs() <= expected * 0.25 + 1.0,
        "position {position}: eta {eta_seconds}s, expected about {expected}s"
    );
}

#[tokio::test]
async fn a_line_that_has_all_but_stopped_estimates_a_day_at_most() {
    // Two admitted who stay for hours: after the first admissions nobody moves, and the
    // measured outflow decays towards zero.
    let room = Rooms::new(Policy {
        admission_rate: 10.0,
        active_cap: 2,
        active_ttl: Duration::from_secs(6 * 3600),
        waiting_grace: Duration::from_secs(6 * 3600),
        admitted_idle: Duration::ZERO,
    });
    let entries: Vec<_> = futures::future::join_all((1..=50).map(|u| room.issue_default(u))).await;
    let last = entries.iter().find(|e| position(e) == 50).expect("last");
    for _ in 0..20 {
        room.admit_default().await;
        room.advance(100);
    }
    room.advance(10 * 60 * 1000);
    room.admit_default().await;
    let now = room.store.status(last.token).await.expect("status");
    let TokenStatus::Waiting { eta_seconds, .. } = now.status else {
        panic!("still waiting expected, got {now:?}");
    };
    assert_eq!(eta_seconds, 86_400, "a day at most");
}

#[tokio::test]
async fn only_one_replica_holds_the_admission_lease_and_the_rate_is_shared() {
    let room = Rooms::new(policy(4.0, 0));
    let replica = room.another_store();
    let lease = Duration::from_secs(2);
    let (a, b) = tokio::join!(
        room.store.hold_lease("a", lease),
        replica.hold_lease("b", lease)
    );
    assert!(
        a.expect("lease a") ^ b.expect("lease b"),
        "exactly one holder"
    );

    // Even if both replicas step (a lease hand-over overlap), the bucket in Redis keeps the
    // total at the configured rate: 10 s at 4/s.
    futures::future::join_all((1..=200).map(|u| room.issue_default(u))).await;
    assert_eq!(
        room.admit_default().await.admitted,
        0,
        "the bucket starts empty"
    );
    let mut admitted = 0;
    // 10 simulated seconds: within the waiters' grace, so nobody needs to poll.
    for _ in 0..100 {
        room.advance(100);
        let (x, y) = tokio::join!(
            room.store.admit(Room::Default),
            replica.admit(Room::Default)
        );
        admitted += x.expect("admit").admitted + y.expect("admit").admitted;
    }
    assert_eq!(admitted, 40);
}

#[tokio::test]
async fn the_room_set_lists_rooms_with_waiters_or_active_tokens_and_forgets_emptied_ones() {
    let room = Rooms::new(policy(0.0, 10));
    let in_default = room.issue_default(1).await;
    let in_concert = room
        .store
        .issue(UserId::new(2).expect("user"), Room::Concert(3))
        .await
        .expect("issue");
    let listed = |rooms: Vec<Room>| rooms.into_iter().collect::<HashSet<_>>();
    assert_eq!(
        listed(room.store.rooms().await.expect("rooms")),
        HashSet::from([Room::Default, Room::Concert(3)])
    );
    // Admitted, the default room's only token is active: the room stays listed.
    assert_eq!(room.admit_default().await.admitted, 1);
    assert!(matches!(
        room.validate(&in_default).await,
        Verdict::Valid { .. }
    ));
    // The concert room's only waiter leaves: its next step finds it empty and forgets it.
    assert!(room.store.release(in_concert.token).await.expect("release"));
    let emptied = room.store.admit(Room::Concert(3)).await.expect("admit");
    assert_eq!((emptied.waiting, emptied.active), (0, 0));
    assert_eq!(
        listed(room.store.rooms().await.expect("rooms")),
        HashSet::from([Room::Default])
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_an_unavailable_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let store = QueueStore::connect(
        &format!("redis://127.0.0.1:{port}"),
        2,
        "test:unreachable",
        policy(1.0, 0),
        Duration::from_millis(300),
    )
    .expect("store");
    let error = store
        .issue(UserId::new(1).expect("user"), Room::Default)
        .await
        .expect_err("no redis there");
    let status = tonic::Status::from(error);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(!store.ping().await);
}

#[tokio::test]
async fn a_redis_that_never_answers_is_an_unavailable_error_within_the_deadline() {
    unanswered_calls_fail_within_the_deadline(|url, deadline| {
        Connections::pooled(url, 2, deadline).expect("pool")
    })
    .await;
}

#[tokio::test]
async fn a_redis_cluster_that_never_answers_is_an_unavailable_error_within_the_deadline() {
    unanswered_calls_fail_within_the_deadline(|url, deadline| {
        Connections::cluster(url, deadline).expect("cluster client")
    })
    .await;
}

/// A store on `connect`ions to a Redis that accepts connections (they complete in the
/// listener's backlog) and never reads or answers: each call ends with Unavailable when the
/// store's deadline does, and so does its ping.
async fn unanswered_calls_fail_within_the_deadline(
    connect: impl FnOnce(&str, Duration) -> Connections,
) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let deadline = Duration::from_millis(300);
    let redis = connect(&format!("redis://127.0.0.1:{port}"), deadline);
    let store = QueueStore::on(redis, "test:silent", policy(1.0, 0), deadline);
    let started = tokio::time::Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        store.issue(UserId::new(1).expect("user"), Room::Default),
    )
    .await
    .expect("the store's own deadline ends the call, not this test's");
    let elapsed = started.elapsed();
    let status = tonic::Status::from(outcome.expect_err("nobody answers"));
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        elapsed >= deadline && elapsed < deadline + Duration::from_secs(1),
        "answered after {elapsed:?} with a {deadline:?} deadline"
    );
    let started = tokio::time::Instant::now();
    assert!(!store.ping().await);
    assert!(started.elapsed() < deadline + Duration::from_secs(1));
    drop(silent);
}

async fn pttl(key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut support::admin().await)
        .await
        .expect("pttl")
}

async fn pexpire(key: &str, ms: i64) {
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(ms)
        .query_async(&mut support::admin().await)
        .await
        .expect("pexpire");
}

/// A waiter's keys live for the grace plus a minute's slack; a poll refreshes them only on the
/// token's first poll in each half-slack period (30 s): a poll later in the same period leaves
/// them alone, the first in the next renews them. Their TTL is shortened by hand to stand for the
/// time that has passed (Redis expires on its own clock, not the test's).
#[tokio::test]
async fn polls_renew_a_waiters_keys_on_its_first_poll_of_each_half_slack_period_only() {
    let rooms = Rooms::new(policy(0.0, 10));
    let room = Room::Concert(5);
    let entry = rooms.issue(1, room).await;
    let token_key = rooms.concert_key(5, &format!("tok:{}", entry.token));
    let user_key = rooms.concert_key(5, "user:1");
    let full = 120_000; // grace 60 s + slack 60 s
    for key in [&token_key, &user_key] {
        let ttl = pttl(key).await;
        assert!(
            ttl > full - 5_000 && ttl <= full,
            "a new waiter's {key}: {ttl}"
        );
        pexpire(key, 5_000).await;
    }
    // START_MS is on a 30 s boundary: 29 s later is the same period.
    rooms.advance(29_000);
    rooms.store.status(entry.token).await.expect("status");
    for key in [&token_key, &user_key] {
        assert!(pttl(key).await <= 5_000, "renewed within the period: {key}");
    }
    rooms.advance(2_000);
    rooms.store.status(entry.token).await.expect("status");
    for key in [&token_key, &user_key] {
        let ttl = pttl(key).await;
        assert!(
            ttl > full - 5_000,
            "not renewed in the next period: {key}: {ttl}"
        );
    }
}

/// A room that fell out of the room set (the store adds it after the script, and may fail to) is
/// added again by a waiter's first poll in each 10 s period: within 10 s and one poll.
#[tokio::test]
async fn a_room_missing_from_the_room_set_is_listed_again_by_a_waiters_first_poll_of_a_period() {
    let rooms = Rooms::new(policy(0.0, 10));
    let room = Room::Concert(6);
    let entry = rooms.issue(1, room).await;
    let drop_listing = || async {
        let _: i64 = redis::cmd("SREM")
            .arg(format!("{}:queues", rooms.prefix))
            .arg("6")
            .query_async(&mut support::admin().await)
            .await
            .expect("srem");
        let _: i64 = redis::cmd("DEL")
            .arg(rooms.concert_key(6, "listed"))
            .query_async(&mut support::admin().await)
            .await
            .expect("del");
    };
    let listed = || async { rooms.store.rooms().await.expect("rooms").contains(&room) };
    assert!(listed().await);
    drop_listing().await;
    rooms.advance(9_000);
    rooms.store.status(entry.token).await.expect("status");
    assert!(!listed().await, "the same period: the poll does not ask");
    rooms.advance(1_000);
    rooms.store.status(entry.token).await.expect("status");
    assert!(
        listed().await,
        "the next period's first poll lists it again"
    );
}
