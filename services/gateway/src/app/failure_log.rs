//! Requests refused or failed, logged in aggregate: under overload the gateway sheds tens of
//! thousands of requests a second, and a backend outage fails every request, so a line each
//! would spend the cores that should be serving. Shed (503 `OVERLOADED`), rate-limited (429),
//! 503 and 504 answers are only counted; other server errors are logged singly up to
//! [`SINGLY_PER_INTERVAL`] an interval, then counted. One summary line per interval, only
//! when something was counted.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use kit::metrics::client::metrics::gauge::Gauge;

/// Server errors (other than 503/504) logged one line each per interval before the rest are
/// only counted: enough to see what fails, bounded when everything does.
pub const SINGLY_PER_INTERVAL: u64 = 5;

/// How one answer is logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logged {
    /// Not at all, or only in the summary.
    Counted,
    /// A line of its own, now (a server error within the interval's allowance).
    Singly,
}

#[derive(Default)]
struct Counts {
    shed: AtomicU64,
    rate_limited: AtomicU64,
    unavailable: AtomicU64,
    timed_out: AtomicU64,
    /// Other 5xx, logged singly or not.
    server_errors: AtomicU64,
}

/// The counts since the last summary; clones share them.
#[derive(Clone, Default)]
pub struct FailureLog {
    counts: Arc<Counts>,
}

/// One interval's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub shed: u64,
    pub rate_limited: u64,
    /// 503 answers other than shedding: a backend unavailable.
    pub unavailable: u64,
    /// 504: the request's or a backend's deadline passed.
    pub timed_out: u64,
    /// Other 5xx.
    pub server_errors: u64,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Server errors that had no line of their own.
    pub fn server_errors_not_logged(&self) -> u64 {
        self.server_errors.saturating_sub(SINGLY_PER_INTERVAL)
    }
}

impl FailureLog {
    /// Counts one answer; says whether it deserves a line of its own.
    pub fn record(&self, status: StatusCode, shed: bool) -> Logged {
        let counter = match status {
            _ if shed => &self.counts.shed,
            StatusCode::TOO_MANY_REQUESTS => &self.counts.rate_limited,
            StatusCode::SERVICE_UNAVAILABLE => &self.counts.unavailable,
            StatusCode::GATEWAY_TIMEOUT => &self.counts.timed_out,
            _ if status.is_server_error() => {
                let before = self.counts.server_errors.fetch_add(1, Ordering::Relaxed);
                return if before < SINGLY_PER_INTERVAL {
                    Logged::Singly
                } else {
                    Logged::Counted
                };
            }
            _ => return Logged::Counted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Logged::Counted
    }

    /// The counts since the last call, zeroed.
    pub fn take(&self) -> Summary {
        let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
        Summary {
            shed: take(&self.counts.shed),
            rate_limited: take(&self.counts.rate_limited),
            unavailable: take(&self.counts.unavailable),
            timed_out: take(&self.counts.timed_out),
            server_errors: take(&self.counts.server_errors),
        }
    }

    /// Logs one summary every `interval` while anything was counted, until every clone of
    /// this log is dropped (the router with it). Spawned on the current runtime, if any.
    pub fn summarise_every(&self, interval: Duration, limit: Gauge) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let counts = Arc::downgrade(&self.counts);
        runtime.spawn(summarise(counts, interval, limit));
    }
}

async fn summarise(counts: Weak<Counts>, interval: Duration, limit: Gauge) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let Some(counts) = counts.upgrade() else {
            return;
        };
        let summary = FailureLog { counts }.take();
        if !summary.is_empty() {
            log(&summary, interval, limit.get());
        }
    }
}

fn log(summary: &Summary, interval: Duration, limit: i64) {
    let seconds = interval.as_secs_f64();
    let Summary {
        shed,
        rate_limited,
        unavailable,
        timed_out,
        server_errors,
    } = *summary;
    let not_logged = summary.server_errors_not_logged();
    if server_errors > 0 {
        tracing::error!(
            shed,
            rate_limited,
            unavailable,
            timed_out,
            server_errors,
            server_errors_not_logged = not_logged,
            limit,
            "{server_errors} server errors ({not_logged} not logged singly), {unavailable} \
             answered 503 and {timed_out} 504, shed {shed} requests in the last {seconds} s \
             (limit now {limit})"
        );
    } else if shed > 0 {
        tracing::warn!(
            shed,
            rate_limited,
            unavailable,
            timed_out,
            limit,
            "shed {shed} requests in the last {seconds} s (limit now {limit})"
        );
    } else {
        tracing::warn!(
            shed,
            rate_limited,
            unavailable,
            timed_out,
            limit,
            "{unavailable} answered 503 (a backend unavailable), {timed_out} 504, \
             {rate_limited} rate-limited in the last {seconds} s"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shed_rate_limited_503_and_504_answers_are_only_counted() {
        let log = FailureLog::default();
        for _ in 0..10_000 {
            assert_eq!(
                log.record(StatusCode::SERVICE_UNAVAILABLE, true),
                Logged::Counted
            );
        }
        assert_eq!(
            log.record(StatusCode::TOO_MANY_REQUESTS, false),
            Logged::Counted
        );
        assert_eq!(
            log.record(StatusCode::SERVICE_UNAVAILABLE, false),
            Logged::Counted
        );
        assert_eq!(
            log.record(StatusCode::GATEWAY_TIMEOUT, false),
            Logged::Counted
        );
        assert_eq!(log.record(StatusCode::OK, false), Logged::Counted);
        assert_eq!(
            log.take(),
            Summary {
                shed: 10_000,
                rate_limited: 1,
                unavailable: 1,
                timed_out: 1,
                server_errors: 0,
            }
        );
        assert!(log.take().is_empty(), "taking zeroes the counts");
    }

    #[test]
    fn the_first_server_errors_of_an_interval_get_a_line_each_and_the_rest_are_counted() {
        let log = FailureLog::default();
        let singly = (0..100)
            .filter(|_| log.record(StatusCode::INTERNAL_SERVER_ERROR, false) == Logged::Singly)
            .count();
        assert_eq!(singly, 5);
        let summary = log.take();
        assert_eq!(summary.server_errors, 100);
        assert_eq!(summary.server_errors_not_logged(), 95);
        // A new interval, a new allowance.
        assert_eq!(log.record(StatusCode::BAD_GATEWAY, false), Logged::Singly);
    }
}
