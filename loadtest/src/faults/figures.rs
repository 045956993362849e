//! Each fault's figures, from the run's failed requests and per-second series: the requests
//! that failed because of it, split by when they were sent, and how long the system took to be
//! back after it ended ([`crate::recovery`]'s definition, against the p99 of the calm seconds
//! just before the fault).
//!
//! And which endpoints were slow once it ended: each endpoint's p99 over the requests sent in
//! the [`recovery::WINDOW`] seconds after its end.
//!
//! A failed request belongs to the fault it overlapped: sent before the fault started and still
//! going then (in flight at its start), sent while it lasted, or sent after it ended and before
//! the next one started (or the schedule ended). A new request is one sent once the fault had
//! started: for a killed replica, in-flight requests may fail (retriably), new ones must not.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

use super::schedule::Fault;
use crate::{
    recorder::LoggedRequest,
    recovery::{self, Recovery},
    series::Second,
};

/// One fault as it happened, in the run's clock (from the recorder's start).
#[derive(Clone, Debug)]
pub struct Window {
    pub fault: Fault,
    pub started: Duration,
    pub ended: Duration,
    /// What was done, in words (pids, signals, commands).
    pub what: String,
    /// Why the fault could not be injected as planned, if it could not.
    pub error: Option<String>,
}

/// Failed requests, in all, by failure label (`503_SERVICE_UNAVAILABLE`, `timeout`, …) and
/// by endpoint.
#[derive(Serialize, Debug, Default, Clone, PartialEq)]
pub struct Failures {
    pub total: u64,
    /// Those a client may send again: 503, 502, 504, 429, or no answer at all.
    pub retriable: u64,
    pub by_code: BTreeMap<String, u64>,
    pub by_endpoint: BTreeMap<&'static str, u64>,
}

impl Failures {
    fn add(&mut self, endpoint: &'static str, label: &str) {
        self.total += 1;
        if is_retriable(label) {
            self.retriable += 1;
        }
        *self.by_code.entry(label.to_owned()).or_default() += 1;
        *self.by_endpoint.entry(endpoint).or_default() += 1;
    }
}

/// Whether a failure label says the request may be sent again.
pub fn is_retriable(label: &str) -> bool {
    let status = label.split('_').next().unwrap_or(label);
    matches!(
        status,
        "429" | "502" | "503" | "504" | "timeout" | "transport"
    )
}

/// One fault's figures.
#[derive(Serialize, Debug, Clone)]
pub struct Figures {
    pub fault: Fault,
    pub what: String,
    pub error: Option<String>,
    /// From the run's start, seconds.
    pub started_at_s: f64,
    pub ended_at_s: f64,
    pub lasted_s: f64,
    /// Median per-second p99 of the calm seconds before the fault (None: no such second).
    pub baseline_p99_ms: Option<f64>,
    /// p99 at or under this counts as back ([`recovery::threshold`]).
    pub threshold_p99_ms: Option<f64>,
    /// Failed requests sent before the fault started and still in flight then.
    pub failed_in_flight_at_start: Failures,
    /// Failed requests sent while it lasted.
    pub failed_sent_during: Failures,
    /// Failed requests sent after it ended, until the next fault (or the schedule's end).
    pub failed_sent_after: Failures,
    /// Failed requests sent once it had started (during and after): new requests.
    pub new_requests_failed: u64,
    #[serde(flatten)]
    pub recovery: Recovery,
    /// The worst per-second p99 from the fault's start to the next one's.
    pub worst_p99_ms: f64,
    /// Each endpoint's p99 over the requests sent in the first seconds after the fault ended
    /// ([`recovery::WINDOW`]): which were slow while the system came back.
    pub p99_after_ms_by_endpoint: BTreeMap<&'static str, f64>,
}

/// The figures of every fault in `windows` (in order). `schedule_end` is when the last calm
/// stretch ended; `baseline` how many calm seconds before a fault make its baseline.
pub fn figures(
    windows: &[Window],
    requests: &[LoggedRequest],
    series: &[Second],
    schedule_end: Duration,
    baseline: Duration,
) -> Vec<Figures> {
    windows
        .iter()
        .enumerate()
        .map(|(i, window)| {
            let next = windows.get(i + 1).map_or(schedule_end, |w| w.started);
            let mut in_flight = Failures::default();
            let mut during = Failures::default();
            let mut after = Failures::default();
            let settling = window.ended + Duration::from_secs(recovery::WINDOW as u64);
            let mut latencies: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
            for request in requests {
                if request.sent >= window.ended && request.sent < settling.min(next) {
                    latencies
                        .entry(request.endpoint)
                        .or_default()
                        .push(request.ended - request.sent);
                }
                let Some(label) = &request.failure else {
                    continue;
                };
                if request.sent < window.started && request.ended >= window.started {
                    in_flight.add(request.endpoint, label);
                } else if request.sent >= window.started && request.sent < window.ended {
                    during.add(request.endpoint, label);
                } else if request.sent >= window.ended && request.sent < next {
                    after.add(request.endpoint, label);
                }
            }
            // Whole seconds of the series: a second counts from the one the moment falls in,
            // so a partly disturbed second is never taken for a calm one.
            let (start, end, next) = (
                window.started.as_secs(),
                window.ended.as_secs(),
                next.as_secs(),
            );
            let previous_end = i
                .checked_sub(1)
                .map_or(0, |p| windows[p].ended.as_secs() + 1);
            let calm_from = start.saturating_sub(baseline.as_secs()).max(previous_end);
            let baseline_p99 = median(
                series
                    .iter()
                    .filter(|s| s.t >= calm_from && s.t < start && s.requests > 0)
                    .map(|s| s.p99_ms)
                    .collect(),
            );
            let threshold = baseline_p99.map(recovery::threshold);
            let after_seconds: Vec<&Second> =
                series.iter().filter(|s| s.t >= end && s.t < next).collect();
            let recovery = match threshold {
                Some(threshold) => recovery::measure(&after_seconds, end, threshold),
                None => Recovery {
                    errors_stopped_after_seconds: None,
                    p99_back_after_seconds: None,
                    recovered_after_seconds: None,
                },
            };
            Figures {
                fault: window.fault,
                what: window.what.clone(),
                error: window.error.clone(),
                started_at_s: window.started.as_secs_f64(),
                ended_at_s: window.ended.as_secs_f64(),
                lasted_s: window.ended.saturating_sub(window.started).as_secs_f64(),
                baseline_p99_ms: baseline_p99,
                threshold_p99_ms: threshold,
                new_requests_failed: during.total + after.total,
                failed_in_flight_at_start: in_flight,
                failed_sent_during: during,
                failed_sent_after: after,
                recovery,
                worst_p99_ms: series
                    .iter()
                    .filter(|s| s.t >= start && s.t < next)
                    .map(|s| s.p99_ms)
                    .fold(0.0, f64::max),
                p99_after_ms_by_endpoint: latencies
                    .into_iter()
                    .map(|(endpoint, mut took)| (endpoint, p99_ms(&mut took)))
                    .collect(),
            }
        })
        .collect()
}

/// The 99th percentile of `took` (nearest rank), in ms.
fn p99_ms(took: &mut [Duration]) -> f64 {
    took.sort();
    let rank = (took.len() * 99).div_ceil(100).max(1);
    took.get(rank - 1).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn failed(label: &str, sent: f64, ended: f64) -> LoggedRequest {
        LoggedRequest {
            endpoint: "POST /api/reserve",
            failure: Some(label.to_owned()),
            sent: at(sent),
            ended: at(ended),
        }
    }

    fn window(fault: Fault, started: f64, ended: f64) -> Window {
        Window {
            fault,
            started: at(started),
            ended: at(ended),
            what: String::new(),
            error: None,
        }
    }

    /// Seconds 0..n with the given p99 (2 ms unless listed) and failures per second.
    fn series(n: u64, p99: &[(u64, f64)], errors: &[u64]) -> Vec<Second> {
        (0..n)
            .map(|t| Second {
                t,
                requests: 100,
                p99_ms: p99.iter().find(|(at, _)| *at == t).map_or(2.0, |(_, p)| *p),
                errors: if errors.contains(&t) {
                    BTreeMap::from([("503_SERVICE_UNAVAILABLE".to_owned(), 1)])
                } else {
                    BTreeMap::new()
                },
                ..Second::default()
            })
            .collect()
    }

    #[test]
    fn failures_belong_to_the_fault_they_overlapped_by_when_they_were_sent() {
        let windows = [
            window(Fault::ReservationKill, 10.0, 12.0),
            window(Fault::QueueRestart, 30.0, 35.0),
        ];
        let failures = [
            failed("503_SERVICE_UNAVAILABLE", 5.0, 6.0), // before any fault: nobody's
            failed("503_SERVICE_UNAVAILABLE", 9.9, 10.1), // in flight at the kill
            failed("504_UPSTREAM_TIMEOUT", 11.0, 13.0),  // sent during it
            failed("400_SEAT_TAKEN", 20.0, 20.1),        // after it, before the next
            failed("transport", 31.0, 31.5),             // the second fault's
            failed("503_OVERLOADED", 40.0, 40.1),        // after the second, before the end
            failed("503_OVERLOADED", 50.0, 50.1),        // after the schedule's end
        ];
        let figures = figures(
            &windows,
            &failures,
            &series(60, &[], &[]),
            at(45.0),
            Duration::from_secs(5),
        );
        let kill = &figures[0];
        assert_eq!(kill.failed_in_flight_at_start.total, 1);
        assert_eq!(kill.failed_in_flight_at_start.retriable, 1);
        assert_eq!(kill.failed_sent_during.by_code["504_UPSTREAM_TIMEOUT"], 1);
        assert_eq!(kill.failed_sent_during.by_endpoint["POST /api/reserve"], 1);
        assert_eq!(kill.failed_sent_after.total, 1);
        assert_eq!(
            kill.failed_sent_after.retriable, 0,
            "SEAT_TAKEN is an answer"
        );
        assert_eq!(kill.new_requests_failed, 2);
        let restart = &figures[1];
        assert_eq!(restart.failed_in_flight_at_start.total, 0);
        assert_eq!(restart.failed_sent_during.by_code["transport"], 1);
        assert_eq!(restart.failed_sent_after.by_code["503_OVERLOADED"], 1);
        assert_eq!(restart.lasted_s, 5.0);
    }

    #[test]
    fn recovery_is_counted_from_the_faults_end_against_the_calm_seconds_before_it() {
        // Baseline seconds 15..20 at 2 ms (one noisy 30 ms second does not move the median);
        // the stall 20..25; errors until second 26, p99 high until second 27.
        let windows = [window(Fault::RedisStall, 20.0, 25.0)];
        let series = series(
            45,
            &[(17, 30.0), (25, 900.0), (26, 400.0)],
            &[21, 22, 23, 24, 25],
        );
        let figures = figures(&windows, &[], &series, at(45.0), Duration::from_secs(5));
        let stall = &figures[0];
        assert_eq!(stall.baseline_p99_ms, Some(2.0));
        assert_eq!(stall.threshold_p99_ms, Some(7.0));
        assert_eq!(stall.recovery.errors_stopped_after_seconds, Some(1));
        assert_eq!(stall.recovery.p99_back_after_seconds, Some(2));
        assert_eq!(stall.recovery.recovered_after_seconds, Some(2));
        assert_eq!(stall.worst_p99_ms, 900.0);
    }

    #[test]
    fn a_baseline_never_reaches_back_into_the_previous_fault() {
        // The second fault comes 3.5 s after the first: its baseline is the 3 whole calm
        // seconds between them (11, 12, 13), not the first fault's slow ones (4 to 10).
        let windows = [
            window(Fault::PostgresStall, 3.0, 10.5),
            window(Fault::PostgresRestart, 14.0, 15.0),
        ];
        let slow: Vec<(u64, f64)> = (4..=10).map(|t| (t, 500.0)).collect();
        let series = series(30, &slow, &[]);
        let figures = figures(&windows, &[], &series, at(30.0), Duration::from_secs(10));
        assert_eq!(figures[0].baseline_p99_ms, Some(2.0), "seconds 0 to 2");
        assert_eq!(figures[1].baseline_p99_ms, Some(2.0));
    }

    #[test]
    fn the_endpoints_slow_after_a_fault_are_those_sent_in_the_five_seconds_after_its_end() {
        let windows = [window(Fault::RedisStall, 10.0, 15.0)];
        let served = |endpoint: &'static str, sent: f64, took: f64| LoggedRequest {
            endpoint,
            failure: None,
            sent: at(sent),
            ended: at(sent + took),
        };
        let mut requests = vec![
            served("GET /queue/check-queue", 14.0, 0.9), // sent during the stall
            served("GET /queue/check-queue", 21.0, 0.9), // sent after the first 5 s
        ];
        // 99 quick holds and one slow one: by nearest rank the p99 is the 99th, a quick one.
        requests.extend(
            (0..99).map(|i| served("POST /api/reserve", 15.0 + f64::from(i) / 100.0, 0.004)),
        );
        requests.push(served("POST /api/reserve", 16.0, 0.030));
        requests.push(served("GET /queue/check-queue", 17.0, 0.002));
        let figures = figures(
            &windows,
            &requests,
            &series(30, &[], &[]),
            at(30.0),
            Duration::from_secs(5),
        );
        let slow = &figures[0].p99_after_ms_by_endpoint;
        assert_eq!(slow.len(), 2);
        assert!((slow["POST /api/reserve"] - 4.0).abs() < 1e-6, "{slow:?}");
        assert!(
            (slow["GET /queue/check-queue"] - 2.0).abs() < 1e-6,
            "{slow:?}"
        );
    }

    #[test]
    fn only_503_502_504_429_and_no_answer_are_retriable() {
        for label in [
            "503_SERVICE_UNAVAILABLE",
            "503_OVERLOADED",
            "504_UPSTREAM_TIMEOUT",
            "502",
            "429_TOO_MANY_REQUESTS",
            "timeout",
            "transport",
        ] {
            assert!(is_retriable(label), "{label}");
        }
        for label in [
            "500",
            "400_SEAT_TAKEN",
            "401_TOKEN_NOT_FOUND",
            "409_ALREADY_PAID",
        ] {
            assert!(!is_retriable(label), "{label}");
        }
    }
}
