//! The per-second time series of a run: what the report's CSV and charts are drawn from.

use std::collections::BTreeMap;

use serde::Serialize;

/// One second of a run, counted by when requests completed.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// Seconds since the run started (0-based).
    pub t: u64,
    /// Requests completed in this second (successes and errors).
    pub requests: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Failed requests by status code (with the contract's error code when the body had one,
    /// e.g. `503_OVERLOADED`), or "transport" / "timeout" when no status came back.
    pub errors: BTreeMap<String, u64>,
    /// The most virtual users alive at once during this second (as seen whenever a request
    /// completed or a user started or ended in it).
    pub active_users: u64,
}

impl Second {
    /// Failed requests in this second, over all keys (saturating, never overflowing).
    pub fn error_count(&self) -> u64 {
        self.errors.values().fold(0u64, |a, &v| a.saturating_add(v))
    }
}
