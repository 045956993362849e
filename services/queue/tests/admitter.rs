//! The admission ticker against a real Redis, one tick at a time: each test has its own key
//! prefix and a manual clock, and drives `Admitter::tick` itself (no timers, no sleeps).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::time::Duration;

use futures::StreamExt;
use queue::{
    Policy,
    admitter::{Admitter, Limits, TickReport},
    domain::{QueueEntry, Room, Verdict},
};
use support::{Rooms, TICK, limits};

/// Admission by the cap only: every waiter the cap allows is admitted in one step, so a room
/// with a waiter admits it the first time it is stepped.
fn cap_only(cap: u32) -> Policy {
    support::policy(0.0, cap)
}

/// What the admitter's tests add to the shared rooms: many arrivals, and Redis itself.
impl Rooms {
    /// Issues tokens for `users` in `room`, 64 at a time.
    async fn issue_many(
        &self,
        users: std::ops::RangeInclusive<i64>,
        room: Room,
    ) -> Vec<QueueEntry> {
        futures::stream::iter(users)
            .map(|user| self.issue(user, room))
            .buffer_unordered(64)
            .collect()
            .await
    }

    async fn is_active(&self, entry: &QueueEntry) -> bool {
        matches!(self.validate(entry).await, Verdict::Valid { .. })
    }

    async fn count_active(&self, entries: &[QueueEntry]) -> usize {
        let mut active = 0;
        for entry in entries {
            if self.is_active(entry).await {
                active += 1;
            }
        }
        active
    }

    /// Overwrites one of concert room `concert`'s keys (layout in `lua/common.lua`) with a
    /// string, so every script touching it fails with WRONGTYPE.
    async fn break_key(&self, concert: i64, key: &str) {
        let _: () = redis::cmd("SET")
            .arg(self.concert_key(concert, key))
            .arg("not a sorted set")
            .query_async(&mut support::admin().await)
            .await
            .expect("set");
    }

    /// How Redis encodes the room set (`intset`: small, integers only, kept in ascending order).
    async fn room_set_encoding(&self) -> String {
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(format!("{}:queues", self.prefix))
            .query_async(&mut support::admin().await)
            .await
            .expect("object encoding")
    }
}

async fn tick(admitter: &mut Admitter) -> TickReport {
    admitter.tick().await.expect("tick")
}

#[tokio::test]
async fn a_broken_room_does_not_stop_admission_in_the_healthy_rooms_of_the_same_tick() {
    let rooms = Rooms::new(cap_only(10));
    // Rooms 1 and 2 are broken, 3 to 10 healthy.
    let broken = [Room::Concert(1), Room::Concert(2)];
    for (user, room) in broken.iter().enumerate() {
        rooms.issue(user as i64 + 1, *room).await;
    }
    rooms.break_key(1, "seen").await;
    rooms.break_key(2, "wait").await;
    let mut healthy = Vec::new();
    for concert in 3..=10 {
        healthy.extend(rooms.issue_many(1..=2, Room::Concert(concert)).await);
    }
    // A small set of integers comes back in ascending order, so with one script at a time the
    // broken rooms are stepped first, before every healthy one.
    assert_eq!(rooms.room_set_encoding().await, "intset");

    let mut admitter = rooms.admitter(limits(64, 1));
    let report = tick(&mut admitter).await;
    let mut failed = report.failed.clone();
    failed.sort_by_key(|room| room.concert_id());
    assert_eq!(failed, broken, "{report:?}");
    assert_eq!(report.rooms, 10);
    assert_eq!(report.admission.admitted, 16, "{report:?}");
    assert_eq!(rooms.count_active(&healthy).await, healthy.len());

    // Still broken next pass: reported again, and the tick still succeeds.
    let again = tick(&mut admitter).await;
    assert_eq!(again.failed.len(), 2, "{again:?}");
}

async fn every_room_is_admitted_after_ceil_rooms_over_bound_ticks(room_count: i64, bound: usize) {
    let rooms = Rooms::new(cap_only(10));
    let mut waiters = Vec::new();
    for concert in 1..=room_count {
        waiters.push(rooms.issue(concert, Room::Concert(concert)).await);
    }
    let mut admitter = rooms.admitter(limits(bound, 4));
    let ticks = (room_count as usize).div_ceil(bound);
    let mut admitted = 0;
    for done in 1..=ticks {
        let report = tick(&mut admitter).await;
        assert!(report.rooms <= bound, "{report:?}");
        assert!(report.failed.is_empty(), "{report:?}");
        admitted += report.admission.admitted as usize;
        if done < ticks {
            assert!(
                admitted <= bound * done,
                "tick {done} of {ticks}: {admitted} admitted, bound {bound}"
            );
        }
    }
    assert_eq!(admitted, room_count as usize, "after {ticks} ticks");
    assert_eq!(rooms.count_active(&waiters).await, waiters.len());

    // The walk goes on in the next pass: a new waiter in the first room is admitted within
    // another ceil(rooms / bound) ticks.
    let late = rooms.issue(room_count + 1, Room::Concert(1)).await;
    for _ in 0..ticks {
        tick(&mut admitter).await;
    }
    assert!(rooms.is_active(&late).await);
}

#[tokio::test]
async fn with_more_rooms_than_the_bound_all_are_admitted_after_ceil_rooms_over_bound_ticks() {
    // 10 rooms fit one SSCAN page (a small set comes back whole): the admitter keeps the rest.
    every_room_is_admitted_after_ceil_rooms_over_bound_ticks(10, 3).await;
}

#[tokio::test]
async fn with_many_more_rooms_than_the_bound_the_cursor_pages_through_them_all() {
    // 600 rooms are past Redis's small-set encoding: SSCAN pages through a hash table.
    every_room_is_admitted_after_ceil_rooms_over_bound_ticks(600, 256).await;
}

#[tokio::test]
async fn a_backlog_of_five_thousand_silent_waiters_is_dropped_in_one_tick_and_none_is_admitted() {
    let rooms = Rooms::new(cap_only(100));
    let room = Room::Concert(1);
    let silent = rooms.issue_many(1..=5_000, room).await;
    rooms.advance(61_000);
    // Three live waiters behind them: the only ones who may be admitted.
    let live = rooms.issue_many(5_001..=5_003, room).await;

    let mut admitter = rooms.admitter(limits(256, 4));
    let report = tick(&mut admitter).await;
    assert_eq!(report.admission.dropped, 5_000, "{report:?}");
    assert_eq!(report.admission.admitted, 3, "{report:?}");
    // Five full batches of drops, then the step that admits.
    assert_eq!(report.scripts, 6, "{report:?}");
    assert_eq!(rooms.count_active(&live).await, 3);
    assert_eq!(rooms.count_active(&silent).await, 0);
    for entry in silent.iter().step_by(500) {
        assert_eq!(rooms.validate(entry).await, Verdict::NotFound);
    }
}

#[tokio::test]
async fn past_its_time_budget_a_tick_starts_no_new_room_and_the_next_tick_starts_with_the_rest() {
    let rooms = Rooms::new(cap_only(10));
    let mut waiters = Vec::new();
    for concert in 1..=3 {
        waiters.push(rooms.issue(concert, Room::Concert(concert)).await);
    }
    // A zero budget is spent before the first room: each tick steps only the one room a tick
    // always gets, and leaves the others at the front of the line.
    let mut admitter = rooms.admitter(Limits {
        rooms_per_tick: 10,
        concurrency: 4,
        budget: Duration::ZERO,
    });
    let first = tick(&mut admitter).await;
    assert_eq!((first.rooms, first.deferred), (1, 2), "{first:?}");
    assert_eq!(first.admission.admitted, 1);
    // The deferred rooms go first: one new admission per tick, none stepped twice meanwhile.
    for done in 2..=3 {
        let report = tick(&mut admitter).await;
        assert_eq!(
            (report.rooms, report.admission.admitted),
            (1, 1),
            "tick {done}: {report:?}"
        );
    }
    assert_eq!(rooms.count_active(&waiters).await, 3);
}

#[tokio::test]
async fn an_admitter_without_the_lease_steps_no_room() {
    let rooms = Rooms::new(cap_only(10));
    let waiter = rooms.issue(1, Room::Default).await;
    let mut leader = rooms.admitter(limits(16, 2));
    let mut other = rooms.admitter(limits(16, 2));
    assert!(tick(&mut leader).await.leading);
    let report = tick(&mut other).await;
    assert_eq!(report, TickReport::default());
    assert!(rooms.is_active(&waiter).await, "the leader admitted");
}

#[tokio::test]
async fn a_room_that_appears_after_ticks_over_an_empty_set_is_admitted_on_the_next_tick() {
    let rooms = Rooms::new(cap_only(10));
    let mut admitter = rooms.admitter(limits(256, 4));
    for _ in 0..3 {
        let report = tick(&mut admitter).await;
        assert!(report.leading, "{report:?}");
        assert_eq!(report.rooms, 0, "{report:?}");
    }
    let waiter = rooms.issue(1, Room::Default).await;
    let report = tick(&mut admitter).await;
    assert_eq!(
        (report.rooms, report.admission.admitted),
        (1, 1),
        "{report:?}"
    );
    assert!(rooms.is_active(&waiter).await);
}

#[tokio::test]
async fn two_admitters_on_one_redis_admit_at_the_rate_nobody_twice_and_the_standby_takes_over() {
    // Two replicas' admitters on one Redis and one manual clock, ticking at the same time.
    let rooms = Rooms::new(support::policy(10.0, 0));
    let limits = Limits {
        rooms_per_tick: 16,
        concurrency: 2,
        budget: TICK,
    };
    let mut first = Admitter::new(rooms.store.clone(), TICK, limits);
    let mut second = Admitter::new(rooms.another_store(), TICK, limits);
    let waiters = rooms.issue_many(1..=200, Room::Default).await;

    let mut admitted = 0;
    let mut leaders = Vec::new();
    // The first round starts the bucket (empty); then 5 s of the clock in 100 ms ticks,
    // within the waiters' grace.
    for round in 0..=50 {
        if round > 0 {
            rooms.advance(100);
        }
        let (a, b) = tokio::join!(first.tick(), second.tick());
        let (a, b) = (a.expect("tick"), b.expect("tick"));
        assert!(a.leading ^ b.leading, "exactly one leads: {a:?} {b:?}");
        leaders.push(a.leading);
        admitted += a.admission.admitted + b.admission.admitted;
    }
    assert!(
        leaders.iter().all(|l| *l == leaders[0]),
        "the lease stays put"
    );
    assert_eq!(admitted, 50, "5 s at 10/s");
    assert_eq!(
        rooms.count_active(&waiters).await,
        50,
        "as many admitted as admissions counted: nobody twice"
    );

    // The leader stops ticking (its replica died): the standby leads once the lease has run
    // out (real time: the lease lives in Redis), and admission goes on at the rate.
    let (mut standby, stopped) = if leaders[0] {
        (second, first)
    } else {
        (first, second)
    };
    drop(stopped);
    let died = std::time::Instant::now();
    let mut interval = tokio::time::interval(TICK);
    loop {
        interval.tick().await;
        let report = tick(&mut standby).await;
        if report.leading {
            admitted += report.admission.admitted;
            break;
        }
        assert!(
            died.elapsed() < Duration::from_secs(20),
            "the standby never took over"
        );
    }
    for _ in 0..20 {
        rooms.advance(100);
        let report = tick(&mut standby).await;
        assert!(report.leading);
        admitted += report.admission.admitted;
    }
    assert_eq!(admitted, 70, "7 s of the clock at 10/s");
    assert_eq!(rooms.count_active(&waiters).await, 70);
}
