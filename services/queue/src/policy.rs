//! What the waiting room is tuned to: how fast and how many it admits, how long tokens live,
//! and what it advises waiters about polling. These are the configured values; an operator's
//! settings of one room (`settings.rs`, kept in Redis) override the rate and cap there.

use std::time::Duration;

use crate::domain::{AdvisedEntry, QueueEntry, TokenStatus};

/// Over how long the pre-queue's first polls after the opening are spread.
pub const OPENING_SPREAD: Duration = Duration::from_secs(3);

/// What a client adds at random to the advice (the fan page and the load generator do), so
/// that clients answered in the same instant (after a stall or a restart) do not go on polling
/// in lockstep.
pub const CLIENT_JITTER: Duration = Duration::from_secs(1);

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
    /// An admitted user who makes no reservation call within this long of admission gives
    /// the slot back (a no-show); zero: never.
    pub admitted_idle: Duration,
}

impl Policy {
    /// When a waiter should poll again: half its expected wait, at least a second, and never
    /// more than a third of the grace less the second of [`CLIENT_JITTER`] (polling is the
    /// heartbeat: two lost polls in a row still keep the place). Halving the wait each time reaches the admission within about a second
    /// in log2(wait) polls, so a line that moves fast does not poll fast: 20,000 waiters
    /// admitted at 200/s cost about 2,000 requests per second, where a tenth of the wait
    /// (what this was) cost 6,600 and shed polls at a presale's opening on 2 cores.
    ///
    /// In the pre-queue: at the opening (spread over a few seconds by `spread`, so a line that
    /// joined early does not poll in the same instant; the order is drawn already, so polling
    /// first gains nothing), or sooner to keep the heartbeat. Sold out: as rarely as the
    /// heartbeat allows.
    pub fn poll_after(&self, status: &TokenStatus, spread: Duration) -> Duration {
        let second = Duration::from_secs(1);
        let ceiling = (self.waiting_grace / 3)
            .saturating_sub(CLIENT_JITTER)
            .max(second);
        match status {
            TokenStatus::Active { .. } => Duration::ZERO,
            TokenStatus::Waiting { eta_seconds, .. } => {
                Duration::from_secs(eta_seconds / 2).clamp(second, ceiling)
            }
            TokenStatus::Prequeue { opens_in_ms, .. } => {
                (Duration::from_millis(*opens_in_ms) + spread).clamp(second, ceiling)
            }
            TokenStatus::SoldOut { .. } => ceiling,
        }
    }

    /// `entry` with this policy's advice on when to poll again.
    pub fn advise(&self, entry: QueueEntry) -> AdvisedEntry {
        AdvisedEntry {
            poll_after: self.poll_after(&entry.status, entry.token.spread(OPENING_SPREAD)),
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
            admitted_idle: Duration::from_secs(120),
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
        let none = Duration::ZERO;
        assert_eq!(policy.poll_after(&waiting(0), none), Duration::from_secs(1));
        assert_eq!(
            policy.poll_after(&waiting(10), none),
            Duration::from_secs(5)
        );
        assert_eq!(
            policy.poll_after(&waiting(100), none),
            Duration::from_secs(19)
        );
        assert_eq!(
            policy.poll_after(&waiting(100_000), none),
            Duration::from_secs(19)
        );
        let active = TokenStatus::Active {
            until_unix_ms: 1,
            choose_by_unix_ms: None,
        };
        assert_eq!(policy.poll_after(&active, none), Duration::ZERO);
        let short_grace = Policy {
            waiting_grace: Duration::from_secs(2),
            ..policy
        };
        assert_eq!(
            short_grace.poll_after(&waiting(100_000), none),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_prequeue_polls_at_the_opening_plus_its_spread_inside_the_heartbeat_and_sold_out_rarely()
    {
        let policy = policy(10.0, 0);
        let prequeue = |opens_in_ms| TokenStatus::Prequeue {
            opens_at_unix_ms: 1,
            opens_in_ms,
        };
        let spread = Duration::from_millis(1_500);
        assert_eq!(
            policy.poll_after(&prequeue(5_000), spread),
            Duration::from_millis(6_500)
        );
        assert_eq!(
            policy.poll_after(&prequeue(3_600_000), spread),
            Duration::from_secs(19),
            "an hour before the opening the heartbeat still beats"
        );
        assert_eq!(
            policy.poll_after(&prequeue(0), Duration::ZERO),
            Duration::from_secs(1)
        );
        let sold_out = TokenStatus::SoldOut {
            position: 4,
            seats_may_return: true,
        };
        assert_eq!(
            policy.poll_after(&sold_out, spread),
            Duration::from_secs(19)
        );
    }
}
