//! The multiplexed Redis connection (QUEUE_REDIS_MULTIPLEXED) carries many concurrent calls
//! at once with every answer going to its own caller, and comes back by itself when Redis drops
//! it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{collections::HashSet, time::Duration};

use queue::{
    Clock, QueueStore,
    domain::{Room, TokenStatus, UserId},
    store::Connections,
};
use support::{START_MS, policy, redis_url};

/// A store on one multiplexed connection to `url`.
fn multiplexed_store(url: &str) -> QueueStore {
    let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
    let deadline = Duration::from_secs(5);
    let redis = Connections::multiplexed(url, deadline).expect("a valid URL");
    QueueStore::on(redis, &prefix, policy(1000.0, 0), deadline)
        .with_clock(Clock::manual(START_MS).0)
}

#[tokio::test]
async fn five_hundred_concurrent_joins_over_one_connection_each_get_their_own_answer() {
    let store = multiplexed_store(&redis_url());
    let joins = (1..=500_i64).map(|user| {
        let store = store.clone();
        tokio::spawn(async move {
            let entry = store
                .issue(UserId::new(user).unwrap(), Room::Default)
                .await
                .expect("joined");
            (user, entry)
        })
    });
    let mut positions = HashSet::new();
    let mut tokens = Vec::new();
    for join in joins {
        let (user, entry) = join.await.expect("task");
        assert_eq!(entry.user.get(), user, "the answer is the caller's own");
        let TokenStatus::Waiting { position, .. } = entry.status else {
            panic!("a new joiner waits: {:?}", entry.status);
        };
        assert!(
            positions.insert(position),
            "position {position} given twice"
        );
        tokens.push((user, entry.token));
    }
    assert_eq!(positions, (1..=500).collect::<HashSet<u64>>());
    // And concurrent status calls read each token's own place back.
    let statuses = tokens.iter().map(|(user, token)| {
        let (store, user, token) = (store.clone(), *user, *token);
        tokio::spawn(async move { (user, store.status(token).await.expect("status")) })
    });
    for status in statuses {
        let (user, entry) = status.await.expect("task");
        assert_eq!(entry.user.get(), user);
    }
    assert_eq!(
        store.pool_usage().open,
        1,
        "one connection carried them all"
    );
}

#[tokio::test]
async fn a_connection_redis_drops_is_made_again_without_a_restart() {
    // Its own database number: the one connection of this Redis that uses it is the store's.
    const DB: i64 = 7;
    let url = format!("{}/{DB}", redis_url().trim_end_matches('/'));
    let store = multiplexed_store(&url);
    let user = UserId::new(42).unwrap();
    let first = store.issue(user, Room::Default).await.expect("joined");
    let admin = redis::Client::open(redis_url()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let ours: Vec<String> = clients
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .any(|field| field == format!("db={DB}"))
        })
        .filter_map(|line| {
            Some(
                line.split_whitespace()
                    .next()?
                    .strip_prefix("id=")?
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(ours.len(), 1, "the store's one connection: {clients}");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ours[0])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    // The next calls may fail while it reconnects; within the deadline one succeeds, and it
    // is the same user's same place.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let again = loop {
        match store.issue(user, Room::Default).await {
            Ok(entry) => break entry,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never came back: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(again.token, first.token);
}
