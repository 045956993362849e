//! The adaptive in-flight limit: one limit for the whole gateway, moved by latency in the
//! manner of Netflix's Gradient2, between a floor (`GATEWAY_MIN_IN_FLIGHT`) and a ceiling
//! (`GATEWAY_MAX_IN_FLIGHT`). A request past the limit is refused at once with
//! [`tower::load_shed::error::Overloaded`] (the router answers 503 `OVERLOADED` with
//! `Retry-After`); it never waits for a slot.
//!
//! Why not `tower-acc` (which has Gradient2 as a tower layer): its layer makes a limiter per
//! `Layer::layer` call, which under axum's `Router::layer` is one per route and method, with no
//! way to read the limit for a gauge; and its Gradient2 compares the baseline with each single
//! request's latency, so a route mix with a spread of latencies reads as queueing and the limit
//! sinks to its floor.
//!
//! The algorithm, per window (at least [`Settings::window`] long and [`MIN_SAMPLES`] requests):
//! the window's mean latency is the short RTT; the long RTT is a slow average of windows (the
//! no-queueing baseline); `gradient = clamp(tolerance × long / short, 0.5, 1)` and
//! `limit ← limit × (1 − s) + (gradient × limit + √limit) × s`. While requests queue the
//! baseline learns ten times slower than otherwise: Gradient2's baseline otherwise creeps up
//! during a sustained overload until queueing looks normal and the limit climbs back.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use kit::metrics::client::metrics::gauge::Gauge;

/// Fewest requests a window averages before it may move the limit.
pub const MIN_SAMPLES: u32 = 10;
/// How much of the limit moves towards its new value per window (Gradient2's default).
const SMOOTHING: f64 = 0.2;
/// The baseline's weight per window: an average over ~600 windows (a minute at 100 ms).
const LONG_FACTOR: f64 = 2.0 / 601.0;
/// The baseline's weight per window while requests queue.
const LONG_FACTOR_QUEUEING: f64 = LONG_FACTOR / 10.0;

/// The limit's bounds and how it reads latency.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub floor: usize,
    pub ceiling: usize,
    /// The shortest averaging window.
    pub window: Duration,
    /// How much above the baseline the mean latency may rise before the limit falls (≥ 1).
    pub tolerance: f64,
}

/// Gradient2 over windows of completed requests; pure, so tests give it the time.
#[derive(Debug)]
pub struct Gradient {
    settings: Settings,
    limit: f64,
    /// Seconds; `None` until the first window closes.
    long_rtt: Option<f64>,
    window_start: Instant,
    sum_seconds: f64,
    count: u32,
    max_in_flight: usize,
}

impl Gradient {
    /// Starts at the ceiling: until latency says otherwise the gateway admits what it always did.
    pub fn new(settings: Settings, now: Instant) -> Self {
        let ceiling = settings.ceiling.max(1);
        let settings = Settings {
            ceiling,
            floor: settings.floor.clamp(1, ceiling),
            ..settings
        };
        Self {
            settings,
            limit: as_f64(ceiling),
            long_rtt: None,
            window_start: now,
            sum_seconds: 0.0,
            count: 0,
            max_in_flight: 0,
        }
    }

    pub fn limit(&self) -> usize {
        // The limit is kept within [floor, ceiling], both usize: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let limit = self.limit.round() as usize;
        limit.clamp(self.settings.floor, self.settings.ceiling)
    }

    /// One request's latency, `in_flight` counting it, as it completed at `now`. Returns the
    /// limit when a window closed.
    pub fn sample(&mut self, now: Instant, rtt: Duration, in_flight: usize) -> Option<usize> {
        self.sum_seconds += rtt.as_secs_f64();
        self.count += 1;
        self.max_in_flight = self.max_in_flight.max(in_flight);
        if self.count < MIN_SAMPLES || now.duration_since(self.window_start) < self.settings.window
        {
            return None;
        }
        let short = self.sum_seconds / f64::from(self.count);
        let max_in_flight = self.max_in_flight;
        self.window_start = now;
        self.sum_seconds = 0.0;
        self.count = 0;
        self.max_in_flight = 0;
        self.close_window(short, max_in_flight);
        Some(self.limit())
    }

    fn close_window(&mut self, short: f64, max_in_flight: usize) {
        let tolerance = self.settings.tolerance;
        let mut long = match self.long_rtt {
            None => short,
            Some(long) => {
                let factor = if short > tolerance * long {
                    LONG_FACTOR_QUEUEING
                } else {
                    LONG_FACTOR
                };
                long * (1.0 - factor) + short * factor
            }
        };
        // The baseline far above the present: the load that raised it is gone; recover faster.
        if short > 0.0 && long / short > 2.0 {
            long *= 0.95;
        }
        self.long_rtt = Some(long);
        // Lightly loaded, latency says nothing about the limit.
        if max_in_flight * 2 < self.limit() || short <= 0.0 {
            return;
        }
        let gradient = (tolerance * long / short).clamp(0.5, 1.0);
        let headroom = self.limit.sqrt().max(1.0);
        let target = gradient * self.limit + headroom;
        self.limit = (self.limit * (1.0 - SMOOTHING) + target * SMOOTHING)
            .clamp(as_f64(self.settings.floor), as_f64(self.settings.ceiling));
    }
}

#[allow(clippy::cast_precision_loss)] // limits far below 2^52
fn as_f64(n: usize) -> f64 {
    n as f64
}

/// What the limiter shares across routes and exports: the limit and the requests in flight.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub limit: Gauge,
    pub in_flight: Gauge,
}

/// The layer: one limit shared by every route it wraps (each route's `layer` call clones it).
#[derive(Clone)]
pub struct AdaptiveLimitLayer {
    shared: Arc<Shared>,
}

struct Shared {
    gradient: Mutex<Gradient>,
    gauges: Gauges,
}

impl AdaptiveLimitLayer {
    pub fn new(settings: Settings, gauges: Gauges) -> Self {
        let gradient = Gradient::new(settings, Instant::now());
        gauges
            .limit
            .set(i64::try_from(gradient.limit()).unwrap_or(i64::MAX));
        Self {
            shared: Arc::new(Shared {
                gradient: Mutex::new(gradient),
                gauges,
            }),
        }
    }
}

impl<S> tower::Layer<S> for AdaptiveLimitLayer {
    type Service = AdaptiveLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AdaptiveLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, R> tower::Service<R> for AdaptiveLimit<S>
where
    S: tower::Service<R>,
    S::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = LimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let gauges = &self.shared.gauges;
        // The slot is taken here, not in poll_ready: nothing ever waits for one.
        let before = gauges.in_flight.inc();
        if before >= gauges.limit.get() {
            gauges.in_flight.dec();
            return LimitFuture::shed();
        }
        LimitFuture {
            state: Admission::Admitted {
                future: Box::pin(self.inner.call(request)),
                slot: Some(Slot {
                    shared: self.shared.clone(),
                    started: Instant::now(),
                }),
            },
        }
    }
}

/// A taken slot: given back when the request ends, however it ends.
struct Slot {
    shared: Arc<Shared>,
    started: Instant,
}

impl Slot {
    /// The request completed (a cancelled one says nothing about latency).
    fn completed(self) {
        let now = Instant::now();
        let in_flight = usize::try_from(self.shared.gauges.in_flight.get()).unwrap_or(0);
        let closed = match self.shared.gradient.lock() {
            Ok(mut gradient) => gradient.sample(now, now - self.started, in_flight),
            Err(_) => None,
        };
        if let Some(limit) = closed {
            self.shared
                .gauges
                .limit
                .set(i64::try_from(limit).unwrap_or(i64::MAX));
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.gauges.in_flight.dec();
    }
}

/// The answer of [`AdaptiveLimit`]: at once `Overloaded` past the limit, else the inner one.
pub struct LimitFuture<F> {
    state: Admission<F>,
}

enum Admission<F> {
    Shed,
    Admitted {
        future: Pin<Box<F>>,
        slot: Option<Slot>,
    },
}

impl<F> LimitFuture<F> {
    fn shed() -> Self {
        Self {
            state: Admission::Shed,
        }
    }
}

impl<F, T, E> Future for LimitFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<tower::BoxError>,
{
    type Output = Result<T, tower::BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Pin<Box<F>> keeps the inner future pinned, so this is Unpin.
        match &mut self.get_mut().state {
            Admission::Shed => Poll::Ready(Err(tower::load_shed::error::Overloaded::new().into())),
            Admission::Admitted { future, slot } => {
                let output = std::task::ready!(future.as_mut().poll(cx));
                if let Some(slot) = slot.take() {
                    slot.completed();
                }
                Poll::Ready(output.map_err(Into::into))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: Settings = Settings {
        floor: 8,
        ceiling: 512,
        window: Duration::from_millis(100),
        tolerance: 1.5,
    };

    /// Feeds `windows` windows of `MIN_SAMPLES` requests each of latency `rtt` at `in_flight`;
    /// returns the clock after them.
    fn run(
        gradient: &mut Gradient,
        mut now: Instant,
        windows: usize,
        rtt: Duration,
        in_flight: usize,
    ) -> Instant {
        for _ in 0..windows {
            now += SETTINGS.window;
            for _ in 0..MIN_SAMPLES {
                gradient.sample(now, rtt, in_flight);
            }
        }
        now
    }

    #[test]
    fn it_starts_at_the_ceiling_and_steady_latency_keeps_it_there() {
        let start = Instant::now();
        let mut gradient = Gradient::new(SETTINGS, start);
        assert_eq!(gradient.limit(), 512);
        run(&mut gradient, start, 100, Duration::from_millis(2), 400);
        assert_eq!(gradient.limit(), 512);
    }

    #[test]
    fn rising_latency_under_load_lowers_the_limit_to_the_floor_and_never_below() {
        let start = Instant::now();
        let mut gradient = Gradient::new(SETTINGS, start);
        let now = run(&mut gradient, start, 10, Duration::from_millis(2), 400);
        let now = run(&mut gradient, now, 5, Duration::from_millis(40), 512);
        let after_five = gradient.limit();
        assert!(after_five < 512 * 7 / 10, "{after_five}");
        // 100 s of overload at 20× the baseline: the baseline does not learn it as normal.
        run(&mut gradient, now, 1_000, Duration::from_millis(40), 512);
        assert_eq!(gradient.limit(), SETTINGS.floor);
    }

    #[test]
    fn a_lightly_loaded_gateway_keeps_its_limit_whatever_the_latency() {
        let start = Instant::now();
        let mut gradient = Gradient::new(SETTINGS, start);
        let now = run(&mut gradient, start, 10, Duration::from_millis(2), 10);
        run(&mut gradient, now, 50, Duration::from_millis(200), 10);
        assert_eq!(gradient.limit(), 512);
    }

    #[test]
    fn the_limit_climbs_back_once_latency_returns_to_the_baseline() {
        let start = Instant::now();
        let mut gradient = Gradient::new(SETTINGS, start);
        let now = run(&mut gradient, start, 10, Duration::from_millis(2), 400);
        let now = run(&mut gradient, now, 100, Duration::from_millis(40), 512);
        let low = gradient.limit();
        assert_eq!(low, SETTINGS.floor);
        // Loaded (at the limit) and fast again: the limit grows by about √limit / 5 a window.
        let mut now = now;
        for _ in 0..300 {
            let at_limit = gradient.limit();
            now = run(&mut gradient, now, 1, Duration::from_millis(2), at_limit);
        }
        assert!(gradient.limit() > 200, "{}", gradient.limit());
    }

    #[test]
    fn a_window_closes_only_after_its_time_and_its_minimum_of_requests() {
        let start = Instant::now();
        let mut gradient = Gradient::new(SETTINGS, start);
        let late = start + SETTINGS.window * 3;
        for _ in 1..MIN_SAMPLES {
            assert_eq!(gradient.sample(late, Duration::from_millis(1), 1), None);
        }
        assert_eq!(
            gradient.sample(late, Duration::from_millis(1), 1),
            Some(512)
        );
        // Many requests within one window's time: none closes it.
        let soon = late + SETTINGS.window / 2;
        for _ in 0..100 {
            assert_eq!(gradient.sample(soon, Duration::from_millis(1), 1), None);
        }
    }

    #[test]
    fn the_floor_is_capped_at_the_ceiling() {
        let settings = Settings {
            floor: 32,
            ceiling: 1,
            ..SETTINGS
        };
        let gradient = Gradient::new(settings, Instant::now());
        assert_eq!(gradient.limit(), 1);
    }
}
