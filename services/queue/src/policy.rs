//! What the waiting room is tuned to: how fast and how many it admits, how long tokens live,
//! and what it advises waiters about polling. These are the configured values; an operator's
//! settings of one room (`settings.rs`, kept in Redis) override the rate and cap there.

use std::time::Duration;

use crate::domain::{AdvisedEntry, QueueEntry, TokenStatus};

#[derive(Clone, Debug)]
pub struct Policy {
    /// Admissions per second per room; 0 = unlimited (cap only). At most one second's worth
    /// accumulates while nobody is admitted, and a step admits whole tokens only.
    pub admission_rate: f64,
    /// Concurrently active users per room; 0 = unlimited (rate only).
    pub active_cap: u32,
    /// How long an admitted token stays ACTIVE.
    pub active_ttl: Duration,
    /// A waiter who has not polled for this long loses their place.
    pub waiting_grace: Duration,
}

impl Policy {
    /// When a waiter should poll again: a tenth of its expected wait, at least a second, and
    /// never more than a third of the grace (polling is the heartbeat: two lost polls in a row
    /// still keep the place). The back of a long line polls rarely, so 50,000 waiters cost
    /// thousands of requests per second rather than tens of thousands.
    pub fn poll_after(&self, status: &TokenStatus) -> Duration {
        match status {
            TokenStatus::Active { .. } => Duration::ZERO,
            TokenStatus::Waiting { eta_seconds, .. } => {
                let ceiling = (self.waiting_grace / 3).max(Duration::from_secs(1));
                Duration::from_secs(eta_seconds / 10).clamp(Duration::from_secs(1), ceiling)
            }
        }
    }

    /// `entry` with this policy's advice on when to poll again.
    pub fn advise(&self, entry: QueueEntry) -> AdvisedEntry {
        AdvisedEntry {
            poll_after: self.poll_after(&entry.status),
            entry,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Policy;
    use crate::domain::TokenStatus;

    fn policy(admission_rate: f64, active_cap: u32) -> Policy {
        Policy {
            admission_rate,
            active_cap,
            active_ttl: Duration::from_secs(600),
            waiting_grace: Duration::from_secs(60),
        }
    }

    #[test]
    fn poll_pace_follows_the_wait_inside_the_heartbeat_grace() {
        let policy = policy(10.0, 0);
        let waiting = |eta_seconds| TokenStatus::Waiting {
            position: 1,
            eta_seconds,
            paused: false,
        };
        assert_eq!(policy.poll_after(&waiting(0)), Duration::from_secs(1));
        assert_eq!(policy.poll_after(&waiting(100)), Duration::from_secs(10));
        assert_eq!(
            policy.poll_after(&waiting(100_000)),
            Duration::from_secs(20)
        );
        let active = TokenStatus::Active { until_unix_ms: 1 };
        assert_eq!(policy.poll_after(&active), Duration::ZERO);
        let short_grace = Policy {
            waiting_grace: Duration::from_secs(2),
            ..policy
        };
        assert_eq!(
            short_grace.poll_after(&waiting(100_000)),
            Duration::from_secs(1)
        );
    }
}
