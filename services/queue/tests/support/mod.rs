//! What the queue's integration tests share: a real Redis, a store on a key prefix of its own
//! and a manual clock. Each test file uses only part of it.

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
    domain::{QueueEntry, Room, UserId, Verdict},
};

/// Where every manual clock starts, in unix ms.
pub const START_MS: i64 = 1_800_000_000_000;

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
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
        let store = QueueStore::connect(&redis_url(), 16, &prefix, policy, Duration::from_secs(5))
            .expect("store")
            .with_clock(clock);
        Self { store, now, prefix }
    }

    /// Another store on the same keys and clock: another replica, or (made later) the same
    /// service after a restart.
    pub fn another_store(&self) -> QueueStore {
        QueueStore::connect(
            &redis_url(),
            4,
            &self.prefix,
            self.store.policy().clone(),
            Duration::from_secs(5),
        )
        .expect("store")
        .with_clock(Clock::Manual(self.now.clone()))
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
