//! The gateway's metrics: per route template (never the raw path) and method, requests by
//! status (`http_server_requests_total`) and a latency histogram
//! (`http_server_request_duration_seconds`); requests shed past the in-flight limit and
//! refused over a caller's rate (`http_server_rejected_total{reason}`); the adaptive in-flight
//! limit and the requests in flight under it (`http_server_concurrency_limit`,
//! `http_server_in_flight`). Served as Prometheus text on the metrics port.
//!
//! For the operator's console the same histograms give a recent view at no extra cost per
//! request: a background task copies every route's cumulative buckets every
//! [`SNAPSHOT_PERIOD`] into a ring covering [`HISTORY`]; [`GatewayMetrics::recent`] (rate and
//! p50/p99 over the last ~10 s) and [`GatewayMetrics::history`] (one sample per period) are
//! differences of those copies, with quantiles interpolated within buckets as Prometheus'
//! `histogram_quantile` does.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::extract::MatchedPath;
use http::{Method, Request, Response};
use kit::metrics::{
    HistogramFamily, LATENCY_BUCKETS, Registry, Snapshot,
    client::metrics::{counter::Counter, family::Family, gauge::Gauge},
};

/// How often the console's ring takes a copy of the histograms.
pub const SNAPSHOT_PERIOD: Duration = Duration::from_secs(5);
/// How far back the ring reaches.
pub const HISTORY: Duration = Duration::from_secs(300);
/// The window of [`GatewayMetrics::recent`].
pub const RECENT: Duration = Duration::from_secs(10);
/// Most route × method series (the router's own routes are far fewer; the cap is a backstop).
const MAX_ROUTES: usize = 256;

type RouteKey = [(&'static str, String); 2];
type StatusKey = [(&'static str, String); 3];

/// One route's rate and latency over the last ~10 s.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteRecent {
    /// `METHOD /template`, e.g. `POST /queue/issue-token`.
    pub route: String,
    pub requests_per_second: f64,
    /// `None` without requests in the window.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One route's samples over the last five minutes, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteHistory {
    pub route: String,
    pub samples: Vec<RouteSample>,
}

/// One [`SNAPSHOT_PERIOD`] of one route.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSample {
    /// The end of the period, Unix milliseconds.
    pub at_unix_ms: i64,
    pub requests_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Marks a response as shed by the in-flight limit (set where the 503 OVERLOADED is made).
#[derive(Clone, Copy, Debug)]
pub struct Shed;

/// Every route's cumulative histogram at one moment.
#[derive(Clone, Debug)]
struct Frame {
    at_unix_ms: i64,
    routes: HashMap<String, Snapshot>,
}

/// The gateway's metrics; clones share everything.
#[derive(Clone)]
pub struct GatewayMetrics {
    requests: Family<StatusKey, Counter>,
    latency: HistogramFamily<RouteKey>,
    rejected: Family<[(&'static str, &'static str); 1], Counter>,
    /// The adaptive limit's gauges; its layer keeps them (in flight is its own count).
    limiter: crate::app::overload::Gauges,
    ring: Arc<Mutex<VecDeque<Frame>>>,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> Self {
        Self {
            requests: Family::default(),
            latency: HistogramFamily::new(LATENCY_BUCKETS, MAX_ROUTES),
            rejected: Family::default(),
            limiter: crate::app::overload::Gauges::default(),
            ring: Arc::default(),
        }
    }

    /// A registry exporting these metrics (for the metrics server).
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "http_server_requests",
            "HTTP requests answered, by route template, method and status",
            self.requests.clone(),
        );
        registry.register(
            "http_server_request_duration_seconds",
            "Time from a request's arrival to its response headers, by route template and method",
            self.latency.clone(),
        );
        registry.register(
            "http_server_rejected",
            "Requests refused before their handler: overloaded (503, past the in-flight limit) or rate_limited (429)",
            self.rejected.clone(),
        );
        registry.register(
            "http_server_concurrency_limit",
            "The adaptive in-flight limit now: requests past it are shed with 503",
            self.limiter.limit.clone(),
        );
        registry.register(
            "http_server_in_flight",
            "Requests in flight under the adaptive limit",
            self.limiter.in_flight.clone(),
        );
        registry
    }

    /// The adaptive limit's gauges (shared: the limiter sets them, the registry reads them).
    pub fn limiter_gauges(&self) -> crate::app::overload::Gauges {
        self.limiter.clone()
    }

    /// The adaptive limit now.
    pub fn concurrency_limit(&self) -> Gauge {
        self.limiter.limit.clone()
    }

    /// The layer recording every request (outermost, so it sees shed and timed-out ones too).
    pub fn layer(&self) -> HttpMetricsLayer {
        HttpMetricsLayer {
            metrics: self.clone(),
        }
    }

    fn record(&self, method: &'static str, route: &str, status: u16, shed: bool, started: Instant) {
        self.latency
            .get_or_create(&[("route", route.to_owned()), ("method", method.to_owned())])
            .observe(started.elapsed());
        self.requests
            .get_or_create(&[
                ("route", route.to_owned()),
                ("method", method.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        if shed {
            self.rejected
                .get_or_create(&[("reason", "overloaded")])
                .inc();
        } else if status == 429 {
            self.rejected
                .get_or_create(&[("reason", "rate_limited")])
                .inc();
        }
    }

    /// Copies every route's buckets into the ring, every [`SNAPSHOT_PERIOD`], until dropped.
    pub async fn snapshot_every_period(self) {
        let mut interval = tokio::time::interval(SNAPSHOT_PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.push(self.frame_now());
        }
    }

    fn frame_now(&self) -> Frame {
        Frame {
            at_unix_ms: now_unix_ms(),
            routes: self
                .latency
                .snapshots()
                .into_iter()
                .map(|([(_, route), (_, method)], snapshot)| {
                    (format!("{method} {route}"), snapshot)
                })
                .collect(),
        }
    }

    fn push(&self, frame: Frame) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        ring.push_back(frame);
        // One frame more than the periods covered: history is the differences of neighbours.
        let keep = usize::try_from(HISTORY.as_secs() / SNAPSHOT_PERIOD.as_secs()).unwrap_or(60) + 1;
        while ring.len() > keep {
            ring.pop_front();
        }
    }

    /// Per route: requests per second and p50/p99 over the last ~10 s (from the ring copy
    /// closest to 10 s ago up to now), busiest first.
    pub fn recent(&self) -> Vec<RouteRecent> {
        let now = self.frame_now();
        let since = now.at_unix_ms - i64::try_from(RECENT.as_millis()).unwrap_or(10_000);
        let older = self.ring.lock().ok().and_then(|ring| {
            ring.iter()
                .filter(|frame| frame.at_unix_ms < now.at_unix_ms)
                .min_by_key(|frame| (frame.at_unix_ms - since).abs())
                .cloned()
        });
        recent_between(older.as_ref(), &now)
    }

    /// Per route: one sample per [`SNAPSHOT_PERIOD`] over the last five minutes, oldest first.
    pub fn history(&self) -> Vec<RouteHistory> {
        let frames: Vec<Frame> = self
            .ring
            .lock()
            .map(|ring| ring.iter().cloned().collect())
            .unwrap_or_default();
        history_of(&frames)
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Routes' rates and quantiles between two frames (`older` absent: since the start, counted
/// over one [`RECENT`] window).
fn recent_between(older: Option<&Frame>, newer: &Frame) -> Vec<RouteRecent> {
    let seconds = older.map_or(RECENT.as_secs_f64(), |older| {
        millis_between(older.at_unix_ms, newer.at_unix_ms)
    });
    let mut out: Vec<RouteRecent> = newer
        .routes
        .iter()
        .map(|(route, snapshot)| {
            let delta = difference(older.and_then(|o| o.routes.get(route)), snapshot);
            let count = delta.last().copied().unwrap_or(0);
            RouteRecent {
                route: route.clone(),
                requests_per_second: rate(count, seconds),
                p50_ms: quantile_ms(snapshot.bounds, &delta, 0.5),
                p99_ms: quantile_ms(snapshot.bounds, &delta, 0.99),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.requests_per_second
            .total_cmp(&a.requests_per_second)
            .then_with(|| a.route.cmp(&b.route))
    });
    out
}

/// One sample per pair of neighbouring frames, per route seen in the newest frame.
fn history_of(frames: &[Frame]) -> Vec<RouteHistory> {
    let Some(newest) = frames.last() else {
        return Vec::new();
    };
    let mut routes: Vec<&String> = newest.routes.keys().collect();
    routes.sort();
    routes
        .into_iter()
        .map(|route| RouteHistory {
            route: route.clone(),
            samples: frames
                .windows(2)
                .filter_map(|pair| {
                    let newer = pair[1].routes.get(route)?;
                    let delta = difference(pair[0].routes.get(route), newer);
                    let seconds = millis_between(pair[0].at_unix_ms, pair[1].at_unix_ms);
                    Some(RouteSample {
                        at_unix_ms: pair[1].at_unix_ms,
                        requests_per_second: rate(delta.last().copied().unwrap_or(0), seconds),
                        p50_ms: quantile_ms(newer.bounds, &delta, 0.5),
                        p99_ms: quantile_ms(newer.bounds, &delta, 0.99),
                    })
                })
                .collect(),
        })
        .collect()
}

fn millis_between(older: i64, newer: i64) -> f64 {
    let ms = u32::try_from((newer - older).max(1)).unwrap_or(u32::MAX);
    f64::from(ms) / 1000.0
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn rate(count: u64, seconds: f64) -> f64 {
    count as f64 / seconds
}

/// Cumulative counts of `newer` minus those of `older` (a route that was not there yet: all
/// of `newer`).
fn difference(older: Option<&Snapshot>, newer: &Snapshot) -> Vec<u64> {
    match older {
        Some(older) if older.cumulative.len() == newer.cumulative.len() => newer
            .cumulative
            .iter()
            .zip(&older.cumulative)
            .map(|(n, o)| n.saturating_sub(*o))
            .collect(),
        _ => newer.cumulative.clone(),
    }
}

/// The `q` quantile in milliseconds of cumulative bucket counts over `bounds` (seconds; the
/// last count is +Inf), interpolated linearly within the bucket it falls in, as Prometheus'
/// `histogram_quantile`: the first bucket starts at 0, a quantile in the +Inf bucket is the
/// highest finite bound. `None` without observations.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
pub fn quantile_ms(bounds: &[f64], cumulative: &[u64], q: f64) -> Option<f64> {
    let total = *cumulative.last()?;
    if total == 0 || cumulative.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q * total as f64;
    let index = cumulative.iter().position(|c| *c as f64 >= rank)?;
    let Some(upper) = bounds.get(index) else {
        return bounds.last().map(|b| b * 1000.0);
    };
    let (lower, below) = match index {
        0 => (0.0, 0),
        _ => (bounds[index - 1], cumulative[index - 1]),
    };
    let in_bucket = (cumulative[index] - below) as f64;
    let seconds = lower + (upper - lower) * (rank - below as f64) / in_bucket;
    Some(seconds * 1000.0)
}

/// The method as a bounded label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: GatewayMetrics,
}

impl<S> tower::Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    metrics: GatewayMetrics,
}

impl<S, B, R> tower::Service<Request<B>> for HttpMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        // The template the router matched; requests that matched none share one label.
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
        let metrics = self.metrics.clone();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await;
            if let Ok(response) = &result {
                let shed = response.extensions().get::<Shed>().is_some();
                metrics.record(method, &route, response.status().as_u16(), shed, started);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.002, 0.004, 0.008];

    fn snapshot(cumulative: &[u64]) -> Snapshot {
        Snapshot {
            bounds: BOUNDS,
            cumulative: cumulative.to_vec(),
            sum_seconds: 0.0,
        }
    }

    fn frame(at_unix_ms: i64, routes: &[(&str, &[u64])]) -> Frame {
        Frame {
            at_unix_ms,
            routes: routes
                .iter()
                .map(|(route, c)| ((*route).to_owned(), snapshot(c)))
                .collect(),
        }
    }

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() < 1e-9)
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_they_fall_in() {
        // 10 observations: 4 up to 1 ms, 4 in (1, 2] ms, 2 in (2, 4] ms.
        let cumulative = [4, 8, 10, 10, 10];
        // Rank 5 is the first of the four in (1, 2]: 1 + 1 × (5 − 4) / 4.
        assert!(close(quantile_ms(BOUNDS, &cumulative, 0.5), 1.25));
        // Rank 9.9 is in (2, 4]: 2 + 2 × (9.9 − 8) / 2.
        assert!(close(quantile_ms(BOUNDS, &cumulative, 0.99), 3.9));
        // The first bucket starts at 0: rank 2 of 4 in (0, 1].
        assert!(close(quantile_ms(BOUNDS, &cumulative, 0.2), 0.5));
        // In the +Inf bucket: the highest finite bound.
        assert!(close(quantile_ms(BOUNDS, &[0, 0, 0, 1, 3], 0.99), 8.0));
        assert_eq!(quantile_ms(BOUNDS, &[0, 0, 0, 0, 0], 0.5), None);
    }

    #[test]
    fn recent_is_the_rate_and_quantiles_of_the_difference_between_two_copies() {
        let older = frame(
            1_000_000,
            &[
                ("GET /a", &[10, 10, 10, 10, 10]),
                ("POST /b", &[0, 1, 1, 1, 1]),
            ],
        );
        // 10 s later: /a got 20 more requests, all in (1, 2] ms; /b none; /c is new.
        let newer = frame(
            1_010_000,
            &[
                ("GET /a", &[10, 30, 30, 30, 30]),
                ("POST /b", &[0, 1, 1, 1, 1]),
                ("GET /c", &[5, 5, 5, 5, 5]),
            ],
        );
        let recent = recent_between(Some(&older), &newer);
        let routes: Vec<&str> = recent.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(routes, ["GET /a", "GET /c", "POST /b"], "busiest first");
        assert!(close(Some(recent[0].requests_per_second), 2.0));
        assert!(close(recent[0].p50_ms, 1.5), "{:?}", recent[0]);
        assert!(close(recent[0].p99_ms, 1.99), "{:?}", recent[0]);
        assert!(close(Some(recent[1].requests_per_second), 0.5));
        assert!(close(recent[1].p99_ms, 0.99));
        assert_eq!(recent[2].requests_per_second, 0.0);
        assert_eq!(recent[2].p50_ms, None);
    }

    #[test]
    fn history_has_one_sample_per_period_oldest_first() {
        let frames = [
            frame(0, &[("GET /a", &[0, 0, 0, 0, 0])]),
            frame(5_000, &[("GET /a", &[5, 5, 5, 5, 5])]),
            frame(10_000, &[("GET /a", &[5, 5, 5, 15, 15])]),
        ];
        let history = history_of(&frames);
        assert_eq!(history.len(), 1);
        let samples = &history[0].samples;
        assert_eq!(
            samples.iter().map(|s| s.at_unix_ms).collect::<Vec<_>>(),
            [5_000, 10_000]
        );
        assert!(close(Some(samples[0].requests_per_second), 1.0));
        assert!(close(samples[0].p50_ms, 0.5));
        assert!(close(Some(samples[1].requests_per_second), 2.0));
        // Ten in (4, 8] ms: rank 5 → 4 + 4 × 5 / 10.
        assert!(close(samples[1].p50_ms, 6.0));
    }

    #[test]
    fn the_ring_keeps_five_minutes_of_copies() {
        let metrics = GatewayMetrics::new();
        for n in 0..100 {
            metrics.push(frame(n * 5_000, &[]));
        }
        let ring = metrics.ring.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(ring.len(), 61);
        assert_eq!(ring.front().map(|f| f.at_unix_ms), Some(39 * 5_000));
    }
}
