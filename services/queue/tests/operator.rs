//! The operator's controls and figures against a real Redis: each test has its own key prefix
//! and a manual clock, and steps the rooms itself (no admitter task, no sleeps).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use queue::{
    QueueStore,
    domain::{QueueEntry, Room, TokenStatus, Verdict},
    error::QueueError,
    settings::{Actor, CHANGES_KEPT, HISTORY_SAMPLES, RoomFigures, RoomSettings, SettingsPatch},
};
use support::{Rooms, START_MS, policy};

const CONCERT: Room = Room::Concert(7);

/// What the operator's tests add to the shared rooms: arrivals at once, settings, figures.
impl Rooms {
    async fn issue_many(
        &self,
        users: std::ops::RangeInclusive<i64>,
        room: Room,
    ) -> Vec<QueueEntry> {
        futures::future::join_all(users.map(|user| self.issue(user, room))).await
    }

    async fn set(&self, room: Room, patch: SettingsPatch) -> RoomFigures {
        set_on(&self.store, room, patch, "test").await
    }

    async fn figures(&self, room: Room) -> RoomFigures {
        self.store.room_figures(room).await.expect("figures")
    }
}

async fn set_on(store: &QueueStore, room: Room, patch: SettingsPatch, actor: &str) -> RoomFigures {
    store
        .update_settings(room, &patch, &Actor::new(actor).expect("actor"))
        .await
        .expect("settings")
}

fn pause() -> SettingsPatch {
    SettingsPatch::new(Some(true), None, None).expect("patch")
}

fn resume() -> SettingsPatch {
    SettingsPatch::new(Some(false), None, None).expect("patch")
}

fn rate(admission_rate: f64) -> SettingsPatch {
    SettingsPatch::new(None, Some(admission_rate), None).expect("patch")
}

fn cap(active_cap: u32) -> SettingsPatch {
    SettingsPatch::new(None, None, Some(active_cap)).expect("patch")
}

/// The waiting status of `entry` now (also its heartbeat).
async fn waiting(store: &QueueStore, entry: &QueueEntry) -> (u64, u64, bool) {
    match store.status(entry.token).await.expect("status").status {
        TokenStatus::Waiting {
            position,
            eta_seconds,
            paused,
        } => (position, eta_seconds, paused),
        other => panic!("{entry:?} is not waiting: {other:?}"),
    }
}

#[tokio::test]
async fn a_pause_stops_admission_at_the_next_step_and_a_resume_admits_again_without_a_burst() {
    let rooms = Rooms::new(policy(5.0, 0));
    let entries = rooms.issue_many(1..=40, CONCERT).await;
    assert_eq!(
        rooms.admit(CONCERT).await.admitted,
        0,
        "the bucket starts empty"
    );
    rooms.advance(1_000);
    assert_eq!(rooms.admit(CONCERT).await.admitted, 5, "one second at 5/s");

    let paused = rooms.set(CONCERT, pause()).await;
    assert!(paused.settings.paused && paused.overridden, "{paused:?}");
    rooms.advance(1_000);
    assert_eq!(
        rooms.admit(CONCERT).await.admitted,
        0,
        "paused: a second's worth unused"
    );
    // 30 s more, the waiters polling meanwhile: still nobody.
    rooms.advance(30_000);
    for entry in &entries {
        rooms.store.status(entry.token).await.expect("poll");
    }
    let step = rooms.admit(CONCERT).await;
    assert_eq!((step.admitted, step.waiting), (0, 35), "{step:?}");

    rooms.set(CONCERT, resume()).await;
    // The pause saved nothing up: at the same instant nobody, then the rate again.
    assert_eq!(
        rooms.admit(CONCERT).await.admitted,
        0,
        "no burst after a pause"
    );
    rooms.advance(200);
    assert_eq!(
        rooms.admit(CONCERT).await.admitted,
        1,
        "a fifth of a second at 5/s"
    );
    rooms.advance(1_000);
    assert_eq!(rooms.admit(CONCERT).await.admitted, 5);
}

#[tokio::test]
async fn a_paused_room_still_expires_active_tokens_and_drops_silent_waiters() {
    let rooms = Rooms::new(policy(0.0, 10));
    let admitted = rooms.issue_many(1..=2, CONCERT).await;
    assert_eq!(rooms.admit(CONCERT).await.admitted, 2);
    rooms.set(CONCERT, pause()).await;
    let silent = rooms.issue_many(3..=4, CONCERT).await;
    rooms.advance(600_000);
    let live = rooms.issue(5, CONCERT).await;
    let step = rooms.admit(CONCERT).await;
    assert_eq!(
        (step.expired, step.dropped, step.admitted, step.waiting),
        (2, 2, 0, 1),
        "{step:?}"
    );
    for entry in admitted.iter().chain(&silent) {
        assert_eq!(rooms.validate(entry).await, Verdict::NotFound);
    }
    assert_eq!(waiting(&rooms.store, &live).await.0, 1);
}

#[tokio::test]
async fn a_rate_change_and_a_cap_change_take_effect_at_the_next_step() {
    let rooms = Rooms::new(policy(1.0, 0));
    rooms.issue_many(1..=50, CONCERT).await;
    rooms.admit(CONCERT).await;
    rooms.advance(1_000);
    assert_eq!(rooms.admit(CONCERT).await.admitted, 1, "configured 1/s");

    let faster = rooms.set(CONCERT, rate(10.0)).await;
    assert_eq!(faster.settings.admission_rate, 10.0);
    rooms.advance(1_000);
    assert_eq!(
        rooms.admit(CONCERT).await.admitted,
        10,
        "10/s at the next step"
    );

    // 11 active now; a cap of 12 leaves room for one more, whatever the bucket holds.
    let capped = rooms.set(CONCERT, cap(12)).await;
    assert_eq!(capped.settings.active_cap, 12);
    rooms.advance(1_000);
    let step = rooms.admit(CONCERT).await;
    assert_eq!((step.admitted, step.active), (1, 12), "{step:?}");

    // Back to a slower rate: the bucket never holds more than a second of the new one.
    rooms.set(CONCERT, cap(0)).await;
    rooms.set(CONCERT, rate(2.0)).await;
    rooms.advance(5_000);
    assert_eq!(rooms.admit(CONCERT).await.admitted, 2);
}

#[tokio::test]
async fn settings_made_through_one_store_are_seen_by_another_replica_and_after_a_restart() {
    let rooms = Rooms::new(policy(0.0, 10));
    let replica = rooms.another_store();
    rooms.issue_many(1..=3, CONCERT).await;
    set_on(&rooms.store, CONCERT, pause(), "user:1").await;

    // The replica holding the lease steps the room: paused, nobody admitted.
    let step = replica.admit(CONCERT).await.expect("admit");
    assert_eq!((step.admitted, step.waiting), (0, 3), "{step:?}");
    let seen = replica.room_figures(CONCERT).await.expect("figures");
    assert!(seen.settings.paused && seen.overridden, "{seen:?}");

    // A store made afterwards (the service restarted) finds the pause, and resumes.
    let restarted = rooms.another_store();
    assert!(
        restarted
            .room_figures(CONCERT)
            .await
            .expect("figures")
            .settings
            .paused
    );
    assert_eq!(restarted.admit(CONCERT).await.expect("admit").admitted, 0);
    set_on(&restarted, CONCERT, resume(), "user:2").await;
    assert_eq!(replica.admit(CONCERT).await.expect("admit").admitted, 3);
}

#[tokio::test]
async fn waiters_in_a_paused_room_are_told_so_and_nobody_else_is() {
    let rooms = Rooms::new(policy(0.0, 1));
    let first = rooms.issue(1, CONCERT).await;
    rooms.admit(CONCERT).await;
    rooms.set(CONCERT, pause()).await;

    let issued = rooms.issue(2, CONCERT).await;
    assert!(
        matches!(
            issued.status,
            TokenStatus::Waiting {
                position: 1,
                paused: true,
                ..
            }
        ),
        "{issued:?}"
    );
    assert!(waiting(&rooms.store, &issued).await.2, "status says paused");
    let again = rooms.issue(2, CONCERT).await;
    assert!(
        matches!(again.status, TokenStatus::Waiting { paused: true, .. }),
        "{again:?}"
    );
    // The active user is not waiting; a waiter in another room is not paused.
    assert!(matches!(
        rooms
            .store
            .status(first.token)
            .await
            .expect("status")
            .status,
        TokenStatus::Active { .. }
    ));
    let elsewhere = rooms.issue(3, Room::Default).await;
    assert!(matches!(
        elsewhere.status,
        TokenStatus::Waiting { paused: false, .. }
    ));

    rooms.set(CONCERT, resume()).await;
    assert!(!waiting(&rooms.store, &issued).await.2, "resumed");
}

#[tokio::test]
async fn etas_assume_the_rate_in_effect_in_the_room_or_with_a_cap_only_a_turnover_per_ttl() {
    let rooms = Rooms::new(policy(10.0, 0));
    let entries = rooms.issue_many(1..=100, CONCERT).await;
    let last = entries
        .iter()
        .find(|e| matches!(e.status, TokenStatus::Waiting { position: 100, .. }));
    let last = last.expect("the 100th");
    assert_eq!(
        waiting(&rooms.store, last).await.1,
        10,
        "100 at the configured 10/s"
    );
    rooms.set(CONCERT, rate(2.0)).await;
    assert_eq!(waiting(&rooms.store, last).await.1, 50, "100 at 2/s");
    // Rate 0 with a cap of 75 users who stay 600 s each: 0.125/s.
    rooms.set(CONCERT, cap(75)).await;
    rooms.set(CONCERT, rate(0.0)).await;
    assert_eq!(waiting(&rooms.store, last).await.1, 800);
    assert_eq!(rooms.figures(CONCERT).await.wait_at_back_seconds, 800);
}

#[tokio::test]
async fn while_paused_the_eta_keeps_the_pace_measured_before_the_pause() {
    let rooms = Rooms::new(policy(2.0, 0));
    let entries = rooms.issue_many(1..=100, CONCERT).await;
    let last = entries
        .iter()
        .find(|e| matches!(e.status, TokenStatus::Waiting { position: 100, .. }));
    let last = last.expect("the 100th");
    // 10 s at 2/s: 20 admitted, the outflow measured at about 2/s.
    for _ in 0..100 {
        rooms.admit(CONCERT).await;
        rooms.advance(100);
    }
    let (position, before, _) = waiting(&rooms.store, last).await;
    assert!(
        (38..=44).contains(&before),
        "position {position}: {before} s"
    );
    // 30 s paused: the ETA still assumes 2/s (an outflow decayed over the pause would put it
    // at many minutes); nobody moves.
    rooms.set(CONCERT, pause()).await;
    for _ in 0..300 {
        rooms.admit(CONCERT).await;
        rooms.advance(100);
    }
    let (still, during, paused) = waiting(&rooms.store, last).await;
    assert!(paused);
    assert_eq!(still, position);
    assert!(
        during.abs_diff(before) <= 2,
        "before {before} s, paused {during} s"
    );
}

#[tokio::test]
async fn leaving_a_room_with_neither_rate_nor_cap_is_refused_and_changes_nothing() {
    let rooms = Rooms::new(policy(5.0, 0));
    let refused = rooms
        .store
        .update_settings(CONCERT, &rate(0.0), &Actor::new("user:1").expect("actor"))
        .await
        .expect_err("no rate and no cap");
    let QueueError::InvalidArgument { code, .. } = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(code, "INVALID_ROOM_SETTINGS");
    assert!(!rooms.figures(CONCERT).await.overridden);
    assert!(
        rooms
            .store
            .setting_changes(10)
            .await
            .expect("changes")
            .is_empty()
    );
    // With a cap first, rate 0 is fine; then the cap cannot go.
    rooms.set(CONCERT, cap(3)).await;
    rooms.set(CONCERT, rate(0.0)).await;
    assert!(
        rooms
            .store
            .update_settings(CONCERT, &cap(0), &Actor::new("user:1").expect("actor"))
            .await
            .is_err()
    );
    assert_eq!(rooms.figures(CONCERT).await.settings.active_cap, 3);
}

#[tokio::test]
async fn two_operators_at_once_never_leave_a_room_with_neither_rate_nor_cap() {
    // Configured 5/s and a cap of 100: either change alone is fine, both together are not.
    let rooms = Rooms::new(policy(5.0, 100));
    let other = rooms.another_store();
    let (no_rate, no_cap) = (rate(0.0), cap(0));
    let (a, b) = (
        Actor::new("a").expect("actor"),
        Actor::new("b").expect("actor"),
    );
    for concert in 1..=20 {
        let room = Room::Concert(concert);
        let (a, b) = tokio::join!(
            rooms.store.update_settings(room, &no_rate, &a),
            other.update_settings(room, &no_cap, &b),
        );
        assert!(a.is_ok() ^ b.is_ok(), "room {concert}: {a:?} / {b:?}");
        let settings = rooms.figures(room).await.settings;
        assert!(
            settings.admission_rate > 0.0 || settings.active_cap > 0,
            "room {concert}: {settings:?}"
        );
    }
    assert_eq!(
        rooms
            .store
            .setting_changes(100)
            .await
            .expect("changes")
            .len(),
        20
    );
}

#[tokio::test]
async fn the_change_log_records_when_who_where_and_what_newest_first_and_keeps_the_last_thousand() {
    let rooms = Rooms::new(policy(5.0, 0));
    rooms.set(CONCERT, pause()).await; // by "test"
    rooms.advance(1_500);
    set_on(
        &rooms.store,
        Room::Default,
        SettingsPatch::new(None, Some(2.5), Some(40)).expect("patch"),
        "user:42",
    )
    .await;
    let changes = rooms.store.setting_changes(10).await.expect("changes");
    assert_eq!(changes.len(), 2);
    let (newest, oldest) = (&changes[0], &changes[1]);
    assert_eq!(
        (newest.at_unix_ms, newest.actor.as_str(), newest.room),
        (START_MS + 1_500, "user:42", Room::Default)
    );
    assert_eq!(
        (
            newest.patch.paused(),
            newest.patch.admission_rate(),
            newest.patch.active_cap()
        ),
        (None, Some(2.5), Some(40))
    );
    assert_eq!(
        (oldest.at_unix_ms, oldest.actor.as_str(), oldest.room),
        (START_MS, "test", CONCERT)
    );
    assert_eq!(
        (
            oldest.patch.paused(),
            oldest.patch.admission_rate(),
            oldest.patch.active_cap()
        ),
        (Some(true), None, None)
    );
    assert_eq!(
        rooms.store.setting_changes(1).await.expect("changes").len(),
        1
    );

    // 1,000 more: the log keeps the last 1,000, the first two gone.
    for change in 1..=CHANGES_KEPT {
        rooms.advance(1);
        set_on(
            &rooms.store,
            CONCERT,
            cap(change as u32),
            &format!("user:{change}"),
        )
        .await;
    }
    let kept = rooms
        .store
        .setting_changes(CHANGES_KEPT + 10)
        .await
        .expect("changes");
    assert_eq!(kept.len(), CHANGES_KEPT);
    assert_eq!(kept[0].actor.as_str(), format!("user:{CHANGES_KEPT}"));
    assert_eq!(kept[CHANGES_KEPT - 1].actor.as_str(), "user:1");
    assert!(kept.windows(2).all(|w| w[0].at_unix_ms > w[1].at_unix_ms));
}

#[tokio::test]
async fn history_takes_one_sample_a_second_oldest_first_and_keeps_five_minutes() {
    let rooms = Rooms::new(policy(0.0, 10));
    rooms.issue_many(1..=2, CONCERT).await;
    // Steps every 100 ms for 2.5 s: samples at 0, 1 and 2 s only.
    for _ in 0..25 {
        rooms.admit(CONCERT).await;
        rooms.advance(100);
    }
    let history = rooms.store.room_history(CONCERT).await.expect("history");
    let at: Vec<i64> = history.iter().map(|s| s.at_unix_ms - START_MS).collect();
    assert_eq!(at, [0, 1_000, 2_000]);
    assert!(
        history
            .iter()
            .all(|s| (s.waiting, s.active, s.admitted_total) == (0, 2, 2))
    );
    assert!(
        rooms
            .store
            .room_history(Room::Default)
            .await
            .expect("history")
            .is_empty()
    );

    // The two stay active for 600 s; a step a second for 400 s leaves the last 300 samples.
    for _ in 0..400 {
        rooms.advance(1_000);
        rooms.admit(CONCERT).await;
    }
    let history = rooms.store.room_history(CONCERT).await.expect("history");
    assert_eq!(history.len(), HISTORY_SAMPLES);
    assert_eq!(history.last().map(|s| s.at_unix_ms), Some(rooms.now_ms()));
    assert!(
        history
            .windows(2)
            .all(|w| w[1].at_unix_ms - w[0].at_unix_ms == 1_000)
    );
}

#[tokio::test]
async fn figures_count_and_measure_admissions_and_drops_and_estimate_the_wait_at_the_back() {
    // Room 1 admits at 2/s; room 2 is paused, and its waiters, one every 500 ms, never poll.
    let rooms = Rooms::new(policy(2.0, 0));
    let (admitting, dropping) = (Room::Concert(1), Room::Concert(2));
    rooms.issue_many(1..=100, admitting).await;
    rooms.set(dropping, pause()).await;
    let mut admitted = 0;
    for step in 0..200 {
        if step % 5 == 0 {
            rooms.issue(1_000 + step, dropping).await;
        }
        admitted += rooms.admit(admitting).await.admitted;
        assert_eq!(rooms.admit(dropping).await.admitted, 0, "paused");
        rooms.advance(100);
    }
    // 20 s at 2/s, the bucket starting empty.
    assert!((38..=40).contains(&admitted), "{admitted}");
    let figures = rooms.figures(admitting).await;
    assert_eq!(
        (figures.admitted_total, figures.waiting),
        (admitted, 100 - admitted),
        "{figures:?}"
    );
    assert!(
        (figures.admitted_per_second - 2.0).abs() < 0.2,
        "{figures:?}"
    );
    assert!(
        (27..=34).contains(&figures.wait_at_back_seconds),
        "{figures:?}"
    );
    assert_eq!(
        (figures.dropped_total, figures.dropped_per_second),
        (0, 0.0)
    );

    // Room 2's 40 waiters are dropped 60 s after they joined, 2/s from 60 s on.
    let paused = rooms.figures(dropping).await;
    assert_eq!(
        (paused.waiting, paused.admitted_per_second),
        (40, 0.0),
        "{paused:?}"
    );
    let mut drops = 0;
    for _ in 0..600 {
        drops += rooms.admit(dropping).await.dropped;
        rooms.advance(100);
    }
    assert_eq!(drops, 40);
    let dropped = rooms.figures(dropping).await;
    assert_eq!(
        (dropped.dropped_total, dropped.waiting),
        (drops, 0),
        "{dropped:?}"
    );
    assert!(
        (dropped.dropped_per_second - 2.0).abs() < 0.3,
        "{dropped:?}"
    );
    assert_eq!(dropped.wait_at_back_seconds, 0);

    // The listing: the default room first, then the concerts by id, a requested one too.
    let listed = rooms
        .store
        .list_rooms(&[Room::Concert(99)])
        .await
        .expect("rooms");
    let ids: Vec<_> = listed.iter().map(|f| f.room).collect();
    assert_eq!(ids, [Room::Default, admitting, dropping, Room::Concert(99)]);
    let untouched = &listed[3];
    assert_eq!(
        (
            untouched.waiting,
            untouched.admitted_total,
            untouched.overridden
        ),
        (0, 0, false)
    );
    assert_eq!(
        untouched.settings,
        RoomSettings {
            paused: false,
            admission_rate: 2.0,
            active_cap: 0,
            schedule: Default::default(),
        }
    );
    assert!(listed[2].overridden && listed[2].settings.paused);
}
