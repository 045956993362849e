//! Where "now" comes from: the Redis server's clock (one clock shared by every replica), or a
//! hand-set clock (tests move time without sleeping).

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

#[derive(Clone, Debug)]
pub enum Clock {
    /// The Redis server's clock, read inside each script.
    Redis,
    /// Unix milliseconds set by hand.
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`, and the handle that moves it.
    pub fn manual(start_ms: i64) -> (Self, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(start_ms));
        (Self::Manual(now.clone()), now)
    }

    /// The hand-set time in unix ms; `None` when the Redis server's clock is the one to read.
    pub fn manual_now_ms(&self) -> Option<i64> {
        match self {
            Self::Redis => None,
            Self::Manual(now) => Some(now.load(Ordering::SeqCst)),
        }
    }
}
