//! Records every request of a run: per-second buckets (the time series) and per-endpoint
//! histograms (the summary), and when asked every request with when it was sent, when it
//! ended and how it failed (a run that disturbs the system attributes failures and slowness to
//! its disturbances).
//! Shared by all virtual users of a run.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{
    client::{CallResult, Reply},
    series::Second,
    stats::{self, Latency},
};

pub struct Recorder {
    started: Instant,
    active_users: AtomicU64,
    inner: Mutex<Inner>,
    /// Every request, when the run keeps them ([`Recorder::keeping_requests`]).
    requests: Option<Mutex<Vec<LoggedRequest>>>,
}

/// One request: its endpoint, why it failed if it did (the label of [`Recorder::record`]), and
/// when it was sent and ended, counted from the recorder's start.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedRequest {
    pub endpoint: &'static str,
    pub failure: Option<String>,
    pub sent: Duration,
    pub ended: Duration,
}

#[derive(Default)]
struct Inner {
    seconds: Vec<Bucket>,
    endpoints: BTreeMap<&'static str, Endpoint>,
}

impl Inner {
    /// The bucket of `second` (created with the ones before it), its active-user count raised
    /// to `active` if that is more: a second keeps the most users seen alive during it.
    fn second(&mut self, second: usize, active: u64) -> &mut Bucket {
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, Bucket::default);
        }
        let bucket = &mut self.seconds[second];
        bucket.active_users = bucket.active_users.max(active);
        bucket
    }
}

struct Bucket {
    latency: Histogram<u64>,
    requests: u64,
    errors: BTreeMap<String, u64>,
    active_users: u64,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            // Two significant figures: a run keeps one of these per second.
            latency: Histogram::new_with_bounds(1, 60_000_000, 2)
                .unwrap_or_else(|_| stats::histogram()),
            requests: 0,
            errors: BTreeMap::new(),
            active_users: 0,
        }
    }
}

struct Endpoint {
    latency: Histogram<u64>,
    requests: u64,
    errors: BTreeMap<String, u64>,
}

/// One endpoint's totals over a run.
#[derive(Serialize, Debug, Clone)]
pub struct EndpointSummary {
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency: Latency,
}

/// A run's totals over every endpoint.
#[derive(Serialize, Debug, Clone)]
pub struct Summary {
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_second: f64,
    pub peak_requests_per_second: u64,
    pub peak_active_users: u64,
    pub latency: Latency,
    pub endpoints: BTreeMap<&'static str, EndpointSummary>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            active_users: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
            requests: None,
        }
    }

    /// A recorder that also keeps every request ([`Recorder::requests`]): for runs of a few
    /// hundred requests a second, not for capacity runs.
    pub fn keeping_requests() -> Self {
        Self {
            requests: Some(Mutex::new(Vec::new())),
            ..Self::new()
        }
    }

    /// Time since the recorder started: the clock of its series and failures.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The requests kept so far, in the order they ended (empty unless kept).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.requests
            .as_ref()
            .and_then(|requests| requests.lock().ok().map(|r| r.clone()))
            .unwrap_or_default()
    }

    /// Records one call under `endpoint`: a failure when `accepted` rejects its reply (keyed by
    /// its status, with the contract's code when the body has one), or when no reply came (keyed
    /// "timeout" or "transport"). The caller keeps `result` for the user's next step.
    pub fn record(
        &self,
        endpoint: &'static str,
        latency: Duration,
        result: &CallResult,
        accepted: impl Fn(&Reply) -> bool,
    ) {
        let failure = match result {
            Ok(reply) if accepted(reply) => None,
            // The status with the contract's code (e.g. `503_OVERLOADED`) says who refused.
            Ok(reply) => Some(match reply.code() {
                Some(code) => format!("{}_{code}", reply.status),
                None => reply.status.to_string(),
            }),
            Err(failure) => Some(failure.label().to_owned()),
        };
        self.record_outcome(endpoint, latency, failure);
    }

    /// Records one call under `endpoint` whose failure label (None for a success) the caller
    /// chose. Latencies are clamped to the histograms' range, 1 µs to 60 s.
    pub fn record_outcome(
        &self,
        endpoint: &'static str,
        latency: Duration,
        failure: Option<String>,
    ) {
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        let ended = self.started.elapsed();
        if let Some(requests) = &self.requests
            && let Ok(mut requests) = requests.lock()
        {
            requests.push(LoggedRequest {
                endpoint,
                failure: failure.clone(),
                sent: ended.saturating_sub(latency),
                ended,
            });
        }
        let second = ended.as_secs() as usize;
        let active = self.active_users.load(Ordering::Relaxed);
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let bucket = inner.second(second, active);
        bucket.requests += 1;
        let _ = bucket.latency.record(micros);
        if let Some(failure) = &failure {
            *bucket.errors.entry(failure.clone()).or_default() += 1;
        }
        let endpoint = inner.endpoints.entry(endpoint).or_insert_with(|| Endpoint {
            latency: stats::histogram(),
            requests: 0,
            errors: BTreeMap::new(),
        });
        endpoint.requests += 1;
        let _ = endpoint.latency.record(micros);
        if let Some(failure) = failure {
            *endpoint.errors.entry(failure).or_default() += 1;
        }
    }

    /// Counts a virtual user as alive until the guard drops.
    pub fn user(self: &Arc<Self>) -> UserGuard {
        self.active_users.fetch_add(1, Ordering::Relaxed);
        self.note_active_users();
        UserGuard(self.clone())
    }

    fn note_active_users(&self) {
        let second = self.started.elapsed().as_secs() as usize;
        let active = self.active_users.load(Ordering::Relaxed);
        if let Ok(mut inner) = self.inner.lock() {
            inner.second(second, active);
        }
    }

    #[cfg(test)]
    pub fn active_users(&self) -> u64 {
        self.active_users.load(Ordering::Relaxed)
    }

    /// The run so far, one entry per second.
    pub fn series(&self) -> Vec<Second> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        inner
            .seconds
            .iter()
            .enumerate()
            .map(|(t, bucket)| {
                let latency = Latency::from(&bucket.latency);
                Second {
                    t: t as u64,
                    requests: bucket.requests,
                    p50_ms: latency.p50_ms,
                    p95_ms: latency.p95_ms,
                    p99_ms: latency.p99_ms,
                    errors: bucket.errors.clone(),
                    active_users: bucket.active_users,
                }
            })
            .collect()
    }

    pub fn summary(&self) -> Summary {
        let seconds = self.started.elapsed().as_secs_f64();
        let series = self.series();
        let Ok(inner) = self.inner.lock() else {
            return Summary::empty(seconds);
        };
        let mut all = stats::histogram();
        let mut endpoints = BTreeMap::new();
        for (name, endpoint) in &inner.endpoints {
            let _ = all.add(&endpoint.latency);
            endpoints.insert(
                *name,
                EndpointSummary {
                    requests: endpoint.requests,
                    errors: endpoint.errors.clone(),
                    latency: Latency::from(&endpoint.latency),
                },
            );
        }
        let requests: u64 = endpoints.values().map(|e| e.requests).sum();
        let errors = endpoints
            .values()
            .flat_map(|e| e.errors.values())
            .sum::<u64>();
        Summary {
            seconds,
            requests,
            errors,
            requests_per_second: requests as f64 / seconds.max(f64::EPSILON),
            peak_requests_per_second: series.iter().map(|s| s.requests).max().unwrap_or(0),
            peak_active_users: series.iter().map(|s| s.active_users).max().unwrap_or(0),
            latency: Latency::from(&all),
            endpoints,
        }
    }
}

impl Summary {
    fn empty(seconds: f64) -> Self {
        Self {
            seconds,
            requests: 0,
            errors: 0,
            requests_per_second: 0.0,
            peak_requests_per_second: 0,
            peak_active_users: 0,
            latency: Latency::from(&stats::histogram()),
            endpoints: BTreeMap::new(),
        }
    }
}

pub struct UserGuard(Arc<Recorder>);

impl Drop for UserGuard {
    fn drop(&mut self) {
        self.0.active_users.fetch_sub(1, Ordering::Relaxed);
        self.0.note_active_users();
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use serde_json::Value;

    use super::Recorder;
    use crate::client::{Failure, Reply};

    fn reply(status: u16) -> Result<Reply, Failure> {
        Ok(Reply {
            status,
            json: Value::Null,
        })
    }

    #[test]
    fn failures_are_counted_by_status_and_transport_label_per_endpoint_and_second() {
        let recorder = Recorder::new();
        let ok = |reply: &Reply| reply.status == 200;
        recorder.record("a", Duration::from_millis(2), &reply(200), ok);
        recorder.record("a", Duration::from_millis(4), &reply(503), ok);
        recorder.record(
            "b",
            Duration::from_millis(8),
            &Err(Failure::Timeout(Duration::from_secs(1))),
            ok,
        );
        let summary = recorder.summary();
        assert_eq!(summary.requests, 3);
        assert_eq!(summary.errors, 2);
        assert_eq!(summary.endpoints["a"].errors["503"], 1);
        recorder.record(
            "a",
            Duration::from_millis(1),
            &Ok(Reply {
                status: 503,
                json: serde_json::json!({"code": "OVERLOADED"}),
            }),
            ok,
        );
        assert_eq!(
            recorder.summary().endpoints["a"].errors["503_OVERLOADED"],
            1
        );
        assert_eq!(summary.endpoints["b"].errors["timeout"], 1);
        let series = recorder.series();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].requests, 4);
        assert_eq!(series[0].error_count(), 3);
        assert!(series[0].p99_ms >= 7.9, "{}", series[0].p99_ms);
    }

    #[test]
    fn users_are_counted_while_their_guard_lives() {
        let recorder = Arc::new(Recorder::new());
        let first = recorder.user();
        let second = recorder.user();
        assert_eq!(recorder.active_users(), 2);
        drop(first);
        assert_eq!(recorder.active_users(), 1);
        assert_eq!(recorder.summary().peak_active_users, 2);
        drop(second);
        assert_eq!(recorder.active_users(), 0);
    }

    #[test]
    fn a_recorder_keeping_requests_keeps_each_with_when_it_was_sent_and_ended() {
        let ok = |reply: &Reply| reply.status == 200;
        let plain = Recorder::new();
        plain.record("a", Duration::from_millis(1), &reply(503), ok);
        assert!(plain.requests().is_empty(), "only when asked");

        let recorder = Recorder::keeping_requests();
        recorder.record("a", Duration::from_millis(1), &reply(200), ok);
        recorder.record(
            "b",
            Duration::ZERO,
            &Ok(Reply {
                status: 503,
                json: serde_json::json!({"code": "SERVICE_UNAVAILABLE"}),
            }),
            ok,
        );
        let requests = recorder.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].failure, None);
        assert!(requests[0].ended - requests[0].sent <= Duration::from_millis(1));
        assert_eq!(requests[1].endpoint, "b");
        assert_eq!(
            requests[1].failure.as_deref(),
            Some("503_SERVICE_UNAVAILABLE")
        );
        assert_eq!(requests[1].sent, requests[1].ended, "no latency");
        assert!(requests[1].ended <= recorder.elapsed());
    }
}
