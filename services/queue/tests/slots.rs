//! The key layout a Redis Cluster needs, read back from Redis itself: every key a room writes
//! carries the room's hash tag (one slot, so one primary serves each script), the global keys
//! stand apart, rooms spread over slots and, on the cluster of the second test pass, over
//! every primary; the admitter admits in rooms on different primaries in one tick.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::collections::{BTreeMap, BTreeSet};

use queue::{
    domain::{Room, UserId, Verdict},
    settings::{Actor, SettingsPatch},
};
use redis::cluster_routing::Slot;
use support::{Rooms, policy};

/// Every key under the test's prefix, by the node that holds it.
async fn keys_by_node(prefix: &str) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    for node in support::node_urls() {
        let mut connection = redis::Client::open(node.as_str())
            .expect("node URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the node");
        let mut keys = Vec::new();
        let mut cursor = 0_u64;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}:*"))
                .arg("COUNT")
                .arg(1_000)
                .query_async(&mut connection)
                .await
                .expect("scan");
            keys.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        found.insert(node, keys);
    }
    found
}

/// The room a key belongs to by its hash tag (`P:{q:<room>}:…`), or `None` for a key without
/// one.
fn room_of(prefix: &str, key: &str) -> Option<String> {
    let tagged = key.strip_prefix(prefix)?.strip_prefix(":{q:")?;
    let (room, rest) = tagged.split_once('}')?;
    rest.starts_with(':').then(|| room.to_owned())
}

/// The slot Redis itself gives `key` on the cluster (`CLUSTER KEYSLOT`); `None` on a single
/// Redis, which has no slots.
async fn server_slot(key: &str) -> Option<i64> {
    support::cluster_url()?;
    let slot = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut support::admin().await)
        .await
        .expect("cluster keyslot");
    Some(slot)
}

/// Fills `rooms` with two waiters each, admits one per room, polls, validates and releases,
/// changes each room's settings and ticks an admitter: every kind of key a room writes.
async fn use_every_step(rooms: &Rooms, in_rooms: &[Room]) {
    for (index, room) in in_rooms.iter().enumerate() {
        let first = rooms.issue(10 * index as i64 + 1, *room).await;
        rooms.issue(10 * index as i64 + 2, *room).await;
        rooms
            .store
            .update_settings(
                *room,
                &SettingsPatch::new(None, None, Some(1)).unwrap(),
                &Actor::new("test").unwrap(),
            )
            .await
            .expect("settings");
        rooms.admit(*room).await;
        assert!(matches!(
            rooms.validate(&first).await,
            Verdict::Valid { .. }
        ));
        rooms.store.status(first.token).await.expect("status");
        rooms.store.room_history(*room).await.expect("history");
    }
    let mut admitter = rooms.admitter(support::limits(16, 4));
    assert!(admitter.tick().await.expect("tick").leading);
    let last = rooms.issue(99, in_rooms[0]).await;
    assert!(rooms.store.release(last.token).await.expect("release"));
}

#[tokio::test]
async fn every_key_a_room_writes_carries_its_hash_tag_and_the_global_keys_are_apart() {
    let rooms = Rooms::new(policy(0.0, 1));
    let in_rooms = [Room::Default, Room::Concert(7)];
    use_every_step(&rooms, &in_rooms).await;

    let keys: Vec<String> = keys_by_node(&rooms.prefix)
        .await
        .into_values()
        .flatten()
        .collect();
    let global: BTreeSet<String> = ["queues", "settings", "admitter"]
        .iter()
        .map(|name| format!("{}:{name}", rooms.prefix))
        .collect();
    let mut by_room: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in &keys {
        match room_of(&rooms.prefix, key) {
            Some(room) => by_room.entry(room).or_default().push(key.clone()),
            None => assert!(global.contains(key), "a key with no room's tag: {key}"),
        }
    }
    assert_eq!(
        keys.iter().filter(|key| global.contains(*key)).count(),
        global.len(),
        "{keys:?}"
    );
    assert_eq!(
        by_room.keys().cloned().collect::<Vec<_>>(),
        ["7", "default"],
        "{keys:?}"
    );
    for (room, room_keys) in &by_room {
        // Token hashes, user pointers, the line, the heartbeat, the active set, settings,
        // change log, history, counters: all of them, in the slot of the room's stem.
        for kind in [
            ":tok:",
            ":user:",
            ":wait",
            ":seen",
            ":active",
            ":settings",
            ":changes",
            ":history",
            ":totals",
        ] {
            assert!(
                room_keys.iter().any(|key| key.contains(kind)),
                "room {room} wrote no {kind} key: {room_keys:?}"
            );
        }
        let stem = format!("{}:{{q:{room}}}", rooms.prefix);
        let slot = Slot::for_key(&stem);
        let on_server = server_slot(&stem).await;
        for key in room_keys {
            assert_eq!(Slot::for_key(key), slot, "{key} is not in {stem}'s slot");
            assert_eq!(server_slot(key).await, on_server, "{key}");
        }
    }
}

#[tokio::test]
async fn rooms_spread_over_slots_and_each_rooms_keys_sit_on_one_node_of_the_cluster() {
    let rooms = Rooms::new(policy(0.0, 10));
    let in_rooms: Vec<Room> = std::iter::once(Room::Default)
        .chain((1..=9).map(Room::Concert))
        .collect();
    for (user, room) in (1..).zip(&in_rooms) {
        rooms.issue(user, *room).await;
    }

    let mut nodes_by_room: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (node, keys) in keys_by_node(&rooms.prefix).await {
        for key in keys {
            if let Some(room) = room_of(&rooms.prefix, &key) {
                nodes_by_room.entry(room).or_default().insert(node.clone());
            }
        }
    }
    assert_eq!(nodes_by_room.len(), in_rooms.len(), "{nodes_by_room:?}");
    for (room, nodes) in &nodes_by_room {
        assert_eq!(nodes.len(), 1, "room {room}'s keys on {nodes:?}");
    }
    let slots: BTreeSet<String> = nodes_by_room
        .keys()
        .map(|room| {
            format!(
                "{:?}",
                Slot::for_key(format!("{}:{{q:{room}}}", rooms.prefix))
            )
        })
        .collect();
    assert_eq!(slots.len(), in_rooms.len(), "one slot per room: {slots:?}");
    // On the cluster these ten rooms' slots fall in every primary's third of the slots.
    let used: BTreeSet<&String> = nodes_by_room.values().flatten().collect();
    assert_eq!(used.len(), support::node_urls().len(), "{nodes_by_room:?}");
}

#[tokio::test]
async fn one_admitter_tick_admits_in_rooms_on_every_primary() {
    let rooms = Rooms::new(policy(0.0, 10));
    // Their slots (270, 8980, 13233) fall in the first, second and last third of the slots:
    // on the cluster, one room per primary.
    let in_rooms = [Room::Default, Room::Concert(1), Room::Concert(4)];
    let mut waiters = Vec::new();
    for (user, room) in (1..).zip(&in_rooms) {
        waiters.push(rooms.issue(user, *room).await);
        waiters.push(rooms.issue(user + 100, *room).await);
    }
    let nodes: BTreeSet<String> = keys_by_node(&rooms.prefix)
        .await
        .into_iter()
        .filter(|(_, keys)| keys.iter().any(|key| key.contains(":wait")))
        .map(|(node, _)| node)
        .collect();
    assert_eq!(nodes.len(), support::node_urls().len(), "{nodes:?}");

    let mut admitter = rooms.admitter(support::limits(16, 4));
    let report = admitter.tick().await.expect("tick");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        (report.rooms, report.admission.admitted),
        (3, 6),
        "{report:?}"
    );
    for waiter in &waiters {
        let verdict = rooms
            .store
            .validate(waiter.token, UserId::new(waiter.user.get()).unwrap())
            .await
            .expect("validate");
        assert!(
            matches!(verdict, Verdict::Valid { .. }),
            "{waiter:?}: {verdict:?}"
        );
    }
}
