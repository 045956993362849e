//! What the upgrade to hash-tagged keys keeps: the keys an earlier version wrote (settings at
//! `P:q:<room>:settings`, the change log at `P:changes`) are written here as it wrote them, then
//! read through this version.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use queue::{
    domain::Room,
    settings::{Actor, SettingsPatch},
};
use support::{Rooms, START_MS, policy};

const ROOM: Room = Room::Concert(5);

#[tokio::test]
async fn an_earlier_rooms_settings_hold_from_the_first_admission_step_and_its_changes_stay_listed()
{
    let rooms = Rooms::new(policy(10.0, 0));
    // What the earlier version left: concert 5's room paused with a cap of 3 by user:9.
    let mut admin = support::admin().await;
    let earlier = format!("{}:q:5:settings", rooms.prefix);
    let _: () = redis::cmd("HSET")
        .arg(&earlier)
        .arg(&["paused", "1", "cap", "3", "v", "1"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(format!("{}:settings", rooms.prefix))
        .arg("5")
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg(format!("{}:changes", rooms.prefix))
        .arg(format!("{}\t5\t1\t-\t3\t-\t-\tuser:9", START_MS - 1_000))
        .query_async(&mut admin)
        .await
        .unwrap();
    rooms.issue(1, ROOM).await;

    let mut admitter = rooms.admitter(support::limits(16, 4));
    let report = admitter.tick().await.expect("tick");
    assert_eq!(
        (report.rooms, report.admission.admitted),
        (1, 0),
        "paused from the first step: {report:?}"
    );
    let figures = rooms.store.room_figures(ROOM).await.expect("figures");
    assert!(figures.settings.paused, "{figures:?}");
    assert_eq!(figures.settings.active_cap, 3);
    assert!(figures.overridden);
    let left: i64 = redis::cmd("EXISTS")
        .arg(&earlier)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "the earlier key is gone");

    // A change after the upgrade is logged beside the earlier one, newest first.
    rooms.advance(1);
    rooms
        .store
        .update_settings(
            ROOM,
            &SettingsPatch::new(Some(false), None, None).unwrap(),
            &Actor::new("user:10").unwrap(),
        )
        .await
        .expect("resume");
    let changes = rooms.store.setting_changes(10).await.expect("changes");
    let logged: Vec<(&str, Room, Option<bool>)> = changes
        .iter()
        .map(|change| (change.actor.as_str(), change.room, change.patch.paused()))
        .collect();
    assert_eq!(
        logged,
        [("user:10", ROOM, Some(false)), ("user:9", ROOM, Some(true))]
    );
    assert_eq!(changes[1].patch.active_cap(), Some(3));
    assert_eq!(changes[1].at_unix_ms, START_MS - 1_000);
}
