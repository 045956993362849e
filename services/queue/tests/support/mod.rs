//! What the queue's integration tests share: a real Redis, a store on a key prefix of its own
//! and a manual clock. Each test file uses only part of it.
//!
//! `cargo xtask test` runs these tests twice: on the Redis at `REDIS_URL`, then with the
//! stores under test on a Redis Cluster (`QUEUE_TEST_REDIS_CLUSTER`: its nodes' URLs,
//! comma-separated). Tests of a single Redis's own connections (the pool's gauge, the
//! multiplexed connection) use `REDIS_URL` in both passes.

#![allow(dead_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use queue::{
    Clock, Policy, QueueStore,
    admission::Admission,
    admitter::{Admitter, Limits},
    domain::{QueueEntry, Room, UserId, Verdict},
    store::{Connection, Connections},
};

/// Where every manual clock starts, in unix ms.
pub const START_MS: i64 = 1_800_000_000_000;

/// A single Redis.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The Redis Cluster's nodes in the cluster pass.
pub fn cluster_url() -> Option<String> {
    std::env::var("QUEUE_TEST_REDIS_CLUSTER")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Every node the stores under test write to: the cluster's, or the single Redis.
pub fn node_urls() -> Vec<String> {
    match cluster_url() {
        Some(nodes) => nodes
            .split(',')
            .map(|node| node.trim().to_owned())
            .collect(),
        None => vec![redis_url()],
    }
}

/// Connections for a store under test: the cluster in the cluster pass, else `pool` pooled
/// connections to the single Redis.
pub fn connections(pool: usize) -> Connections {
    let deadline = Duration::from_secs(5);
    match cluster_url() {
        Some(nodes) => Connections::cluster(&nodes, deadline),
        None => Connections::pooled(&redis_url(), pool, deadline),
    }
    .expect("valid Redis URLs")
}

/// The flags that put a queue server on the Redis of the stores under test.
pub fn server_redis_args() -> Vec<String> {
    match cluster_url() {
        Some(nodes) => vec![
            format!("--redis-url={nodes}"),
            "--redis-cluster=true".into(),
        ],
        None => vec![format!("--redis-url={}", redis_url())],
    }
}

/// A connection to the Redis of the stores under test, for a test to look at or break keys
/// itself (on a cluster, each command goes to its key's node).
pub async fn admin() -> Connection {
    connections(1).get().await.expect("connect")
}

/// `admission_rate` and `active_cap`, with 10 min active, 1 min of waiting grace and no idle
/// limit.
pub fn policy(admission_rate: f64, active_cap: u32) -> Policy {
    Policy {
        admission_rate,
        active_cap,
        active_ttl: Duration::from_secs(600),
        waiting_grace: Duration::from_secs(60),
        admitted_idle: Duration::ZERO,
    }
}

/// `rooms_per_tick` rooms a tick, `concurrency` at once, and a budget generous enough that a
/// slow machine never runs a test's tick out of time by accident.
/// The admitter's tick in the tests.
pub const TICK: Duration = Duration::from_millis(100);

pub fn limits(rooms_per_tick: usize, concurrency: usize) -> Limits {
    Limits {
        rooms_per_tick,
        concurrency,
        budget: Duration::from_secs(60),
    }
}

/// A store with its own key prefix and a manual clock the test moves.
pub struct Rooms {
    pub store: QueueStore,
    pub now: Arc<AtomicI64>,
    pub prefix: String,
}

impl Rooms {
    pub fn new(policy: Policy) -> Self {
        let prefix = format!("test:{}", uuid::Uuid::new_v4().simple());
        let (clock, now) = Clock::manual(START_MS);
        let store = QueueStore::on(connections(16), &prefix, policy, Duration::from_secs(5))
            .with_clock(clock);
        Self { store, now, prefix }
    }

    /// Another store on the same keys and clock: another replica, or (made later) the same
    /// service after a restart.
    pub fn another_store(&self) -> QueueStore {
        QueueStore::on(
            connections(4),
            &self.prefix,
            self.store.policy().clone(),
            Duration::from_secs(5),
        )
        .with_clock(Clock::Manual(self.now.clone()))
    }

    /// An admitter on this store ticking every 100 ms (the tests call `tick` themselves).
    pub fn admitter(&self, limits: Limits) -> Admitter {
        Admitter::new(self.store.clone(), TICK, limits)
    }

    /// One of concert room `concert`'s keys (layout in `lua/common.lua`), for a test to look at
    /// or break it itself.
    pub fn concert_key(&self, concert: i64, name: &str) -> String {
        format!("{}:{{q:{concert}}}:{name}", self.prefix)
    }

    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    pub async fn issue(&self, user: i64, room: Room) -> QueueEntry {
        self.store
            .issue(UserId::new(user).expect("user"), room)
            .await
            .expect("issue")
    }

    pub async fn validate(&self, entry: &QueueEntry) -> Verdict {
        self.store
            .validate(entry.token, entry.user)
            .await
            .expect("validate")
    }

    pub async fn admit(&self, room: Room) -> Admission {
        self.store.admit(room).await.expect("admit")
    }
}
