//! A scheduled opening on a real Redis: the pre-queue's draw is fair, late joiners never
//! overtake it, nobody is admitted twice or skipped, and nobody joins before the pre-queue opens.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::collections::HashSet;

use futures::future::join_all;
use queue::{
    QueueStore,
    domain::{QueueEntry, Room, TokenStatus, UserId, Verdict},
    error::QueueError,
    schedule::{RoomPhase, SchedulePatch},
    settings::{Actor, SettingsPatch},
};
use support::{Rooms, START_MS, policy};

fn actor() -> Actor {
    Actor::new("test").expect("actor")
}

/// Schedules `room`: the pre-queue from `prequeue_at` (none: open now), the draw at `opens_at`.
async fn schedule(store: &QueueStore, room: Room, prequeue_at: Option<i64>, opens_at: i64) {
    let patch = SettingsPatch::with_schedule(
        None,
        None,
        None,
        SchedulePatch {
            prequeue_opens_at_ms: Some(prequeue_at),
            opens_at_ms: Some(Some(opens_at)),
        },
    )
    .expect("patch");
    store
        .update_settings(room, &patch, &actor())
        .await
        .expect("schedule");
}

async fn status(store: &QueueStore, entry: &QueueEntry) -> TokenStatus {
    store.status(entry.token).await.expect("status").status
}

fn position(status: TokenStatus) -> u64 {
    match status {
        TokenStatus::Waiting { position, .. } => position,
        other => panic!("not waiting: {other:?}"),
    }
}

/// Over many small draws, the place each arrival position lands in is uniform: Pearson's
/// chi-square over the arrival × place table, scaled by (k − 1)/k, follows a chi-square with
/// (k − 1)² = 16 degrees of freedom for k = 5 entrants, and stays under 45.92, its critical value
/// at a significance of 0.0001 (a fair draw fails this test once in ten thousand runs; first-come
/// order, or any order that leans on arrival, fails it always: 1,000 draws put ~200 per cell).
/// The scaling is there because each draw is a permutation, not five independent observations:
/// a cell's count varies as Binomial(1000, 1/5), so the unscaled sum averages 25 × 0.8 = 20, not
/// 16, and would fail a fair draw about one run in a hundred (simulated: 1.2% at 0.001).
#[tokio::test]
async fn the_prequeue_is_a_fair_draw_every_arrival_position_lands_in_every_place_equally_often() {
    const ENTRANTS: usize = 5;
    const DRAWS: i64 = 1_000;
    let rooms = Rooms::new(policy(10.0, 0));
    let opens_at = START_MS + 60_000;
    let mut counts = [[0u64; ENTRANTS]; ENTRANTS];
    let mut joined: Vec<Vec<QueueEntry>> = Vec::new();
    for chunk in (1..=DRAWS).collect::<Vec<_>>().chunks(100) {
        let draws = chunk.iter().map(|&concert| {
            let rooms = &rooms;
            async move {
                let room = Room::Concert(concert);
                schedule(&rooms.store, room, None, opens_at).await;
                // One after another, so arrival order is the order of the script runs.
                let mut entrants = Vec::new();
                for arrival in 0..ENTRANTS {
                    let user = concert * 10 + arrival as i64;
                    let entry = rooms.issue(user, room).await;
                    assert!(
                        matches!(entry.status, TokenStatus::Prequeue { opens_at_unix_ms, .. } if opens_at_unix_ms == opens_at),
                        "{entry:?}"
                    );
                    entrants.push(entry);
                }
                entrants
            }
        });
        // Places are read after the opening, below.
        joined.extend(join_all(draws).await);
    }
    rooms
        .now
        .store(opens_at, std::sync::atomic::Ordering::SeqCst);
    let draws = joined;
    assert_eq!(draws.len(), DRAWS as usize);
    for chunk in draws.chunks(100) {
        let places = join_all(chunk.iter().map(|entrants| {
            let store = &rooms.store;
            async move {
                let mut places = Vec::new();
                for entry in entrants {
                    places.push(position(status(store, entry).await));
                }
                places
            }
        }))
        .await;
        for places in places {
            let mut seen: Vec<u64> = places.clone();
            seen.sort_unstable();
            assert_eq!(seen, [1, 2, 3, 4, 5], "every place taken exactly once");
            for (arrival, place) in places.into_iter().enumerate() {
                counts[arrival][place as usize - 1] += 1;
            }
        }
    }
    let expected = DRAWS as f64 / ENTRANTS as f64;
    let pearson: f64 = counts
        .iter()
        .flatten()
        .map(|&observed| (observed as f64 - expected).powi(2) / expected)
        .sum();
    let chi_square = pearson * (ENTRANTS - 1) as f64 / ENTRANTS as f64;
    assert!(
        chi_square < 45.92,
        "chi-square {chi_square:.1} over 16 degrees of freedom: arrival × place {counts:?}"
    );
}

#[tokio::test]
async fn late_joiners_never_overtake_the_prequeue_and_everyone_is_admitted_once_in_draw_order() {
    let rooms = Rooms::new(policy(20.0, 0));
    let room = Room::Concert(7);
    let opens_at = START_MS + 30_000;
    schedule(&rooms.store, room, Some(START_MS), opens_at).await;
    let early: Vec<QueueEntry> = join_all((1..=200).map(|user| rooms.issue(user, room))).await;
    // Before the opening nobody is admitted, however long the line has waited.
    for _ in 0..10 {
        rooms.advance(2_000);
        assert_eq!(rooms.admit(room).await.admitted, 0);
        // The heartbeat: pre-queue entrants poll too.
        for entry in &early {
            assert!(matches!(
                status(&rooms.store, entry).await,
                TokenStatus::Prequeue { .. }
            ));
        }
    }
    rooms
        .now
        .store(opens_at, std::sync::atomic::Ordering::SeqCst);
    let mut late = Vec::new();
    for user in 1_001..=1_100 {
        late.push(rooms.issue(user, room).await);
    }
    let mut place = std::collections::HashMap::new();
    for entry in &early {
        let at = position(status(&rooms.store, entry).await);
        assert!(at <= 200, "a pre-queue entrant behind a late joiner: {at}");
        place.insert(entry.token, at);
    }
    for (arrival, entry) in late.iter().enumerate() {
        // Late joiners are first-come behind the whole pre-queue.
        assert_eq!(
            position(status(&rooms.store, entry).await),
            201 + arrival as u64
        );
        place.insert(entry.token, 201 + arrival as u64);
    }
    let everyone: Vec<&QueueEntry> = early.iter().chain(&late).collect();
    let mut admitted_so_far = 0u64;
    let mut admitted = HashSet::new();
    while admitted_so_far < 300 {
        rooms.advance(250);
        let step = rooms.admit(room).await;
        admitted_so_far += step.admitted;
        // Exactly the first `admitted_so_far` places are active: in order, none skipped.
        let verdicts = join_all(everyone.iter().map(|entry| rooms.validate(entry))).await;
        for (entry, verdict) in everyone.iter().zip(verdicts) {
            let active = matches!(verdict, Verdict::Valid { .. });
            assert_eq!(
                active,
                place[&entry.token] <= admitted_so_far,
                "place {} after {admitted_so_far} admitted",
                place[&entry.token]
            );
            if active {
                admitted.insert(entry.token);
            }
        }
        // Keep the waiters' heartbeat going.
        join_all(
            everyone
                .iter()
                .filter(|entry| !admitted.contains(&entry.token))
                .map(|entry| status(&rooms.store, entry)),
        )
        .await;
    }
    assert_eq!(admitted_so_far, 300, "nobody admitted twice");
    assert_eq!(admitted.len(), 300);
    let figures = rooms.store.room_figures(room).await.expect("figures");
    assert_eq!((figures.admitted_total, figures.waiting), (300, 0));
}

#[tokio::test]
async fn joining_before_the_prequeue_opens_is_refused_with_its_time_and_writes_nothing() {
    let rooms = Rooms::new(policy(10.0, 0));
    let room = Room::Concert(3);
    let prequeue_at = START_MS + 10_000;
    schedule(&rooms.store, room, Some(prequeue_at), START_MS + 20_000).await;
    let refused = rooms.store.issue(UserId::new(1).expect("user"), room).await;
    let Err(QueueError::RoomNotOpen { opens_at_unix_ms }) = refused else {
        panic!("joined before the pre-queue opened: {refused:?}");
    };
    assert_eq!(opens_at_unix_ms, prequeue_at);
    let figures = rooms.store.room_figures(room).await.expect("figures");
    assert_eq!((figures.waiting, figures.phase), (0, RoomPhase::NotOpen));
    rooms
        .now
        .store(prequeue_at, std::sync::atomic::Ordering::SeqCst);
    let entry = rooms.issue(1, room).await;
    assert!(matches!(
        entry.status,
        TokenStatus::Prequeue {
            opens_in_ms: 10_000,
            ..
        }
    ));
    let figures = rooms.store.room_figures(room).await.expect("figures");
    assert_eq!((figures.waiting, figures.phase), (1, RoomPhase::Prequeue));
}

#[tokio::test]
async fn asking_again_in_the_prequeue_returns_the_same_token_so_a_place_cannot_be_rerolled() {
    let rooms = Rooms::new(policy(10.0, 0));
    let room = Room::Concert(4);
    schedule(&rooms.store, room, None, START_MS + 5_000).await;
    let first = rooms.issue(9, room).await;
    let again = join_all((0..20).map(|_| rooms.issue(9, room))).await;
    assert!(again.iter().all(|entry| entry.token == first.token));
    assert_eq!(
        rooms
            .store
            .room_figures(room)
            .await
            .expect("figures")
            .waiting,
        1
    );
}

#[tokio::test]
async fn waiters_from_before_a_schedule_keep_their_lead_and_clearing_it_opens_at_once() {
    let rooms = Rooms::new(policy(10.0, 0));
    let room = Room::Concert(5);
    let before = rooms.issue(1, room).await;
    schedule(&rooms.store, room, None, START_MS + 60_000).await;
    let during = rooms.issue(2, room).await;
    assert!(matches!(
        status(&rooms.store, &before).await,
        TokenStatus::Prequeue { .. }
    ));
    let clear = SettingsPatch::with_schedule(
        None,
        None,
        None,
        SchedulePatch {
            prequeue_opens_at_ms: None,
            opens_at_ms: Some(None),
        },
    )
    .expect("patch");
    rooms
        .store
        .update_settings(room, &clear, &actor())
        .await
        .expect("clear");
    assert_eq!(position(status(&rooms.store, &before).await), 1);
    assert_eq!(position(status(&rooms.store, &during).await), 2);
    let after = rooms.issue(3, room).await;
    assert_eq!(position(after.status), 3);
}
