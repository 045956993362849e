//! How this replica copes with holds right now: the HoldSeat calls being decided, and the mean
//! latency of those finished over a sliding window. The queue's admitter reads it (GetOutlook)
//! every tick to slow admission down when holds are slow or pile up, so reading and recording
//! are both a few instructions under an uncontended lock.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use kit::metrics::client::metrics::gauge::Gauge;

/// How far back the latency looks.
pub const WINDOW: Duration = Duration::from_millis(2_000);
/// The window slides by whole buckets: it holds the last `BUCKETS` of them, between 1.75 s and
/// 2 s of history, so an old slow second leaves the mean within a quarter-second of aging out.
const BUCKET: Duration = Duration::from_millis(250);
const BUCKETS: usize = 8;
const _: () = assert!(BUCKET.as_millis() * BUCKETS as u128 == WINDOW.as_millis());

/// The holds finished within one bucket's quarter-second.
#[derive(Clone, Copy, Default)]
struct Bucket {
    /// Which quarter-second since `origin` this bucket counts; a slot whose index is older
    /// than the window counts nothing.
    index: u64,
    count: u32,
    sum_us: u64,
}

/// What GetOutlook answers about holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HoldLoadSnapshot {
    pub in_flight: u32,
    /// Mean latency of the holds finished within the window; zero when none did.
    pub mean_latency: Duration,
    pub completed: u32,
    pub window: Duration,
}

pub struct HoldLoad {
    origin: Instant,
    /// Also exported as `reservation_holds_in_flight`: the same atomic, shared with the registry.
    in_flight: Gauge,
    buckets: Mutex<[Bucket; BUCKETS]>,
}

/// One HoldSeat call being decided. Dropping it ends the call, however it ends: answered,
/// refused, or abandoned (its future dropped on the caller's deadline or disconnect). An
/// abandoned call counts as finished with the time it had taken by then: for pacing, a hold
/// slow enough to be given up on is the plainest sign of trouble, not one to leave out.
#[must_use = "the call is counted in flight until this is dropped"]
pub struct InFlight<'a> {
    load: &'a HoldLoad,
    started: Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.load.in_flight.dec();
        self.load.record(Instant::now(), self.started.elapsed());
    }
}

impl HoldLoad {
    /// A tracker counting in flight on `in_flight` (registered, or not, by the caller).
    pub fn new(in_flight: Gauge) -> Self {
        Self {
            origin: Instant::now(),
            in_flight,
            buckets: Mutex::new([Bucket::default(); BUCKETS]),
        }
    }

    /// Counts a HoldSeat call in flight until the returned guard is dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight {
            load: self,
            started: Instant::now(),
        }
    }

    pub fn snapshot(&self) -> HoldLoadSnapshot {
        self.snapshot_at(Instant::now())
    }

    fn index_at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin).as_micros();
        u64::try_from(since / BUCKET.as_micros()).unwrap_or(u64::MAX)
    }

    fn record(&self, at: Instant, latency: Duration) {
        let index = self.index_at(at);
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = &mut buckets[(index % BUCKETS as u64) as usize];
        // A slot last used a whole window ago starts over. (A sample timed just before a newer
        // one took the slot joins it rather than wiping it.)
        if index > bucket.index {
            *bucket = Bucket {
                index,
                ..Bucket::default()
            };
        }
        bucket.count = bucket.count.saturating_add(1);
        bucket.sum_us = bucket.sum_us.saturating_add(latency_us);
    }

    fn snapshot_at(&self, at: Instant) -> HoldLoadSnapshot {
        let current = self.index_at(at);
        let (count, sum_us) = {
            let buckets = self
                .buckets
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            buckets
                .iter()
                // A bucket recorded after `at` was read is current too (saturating to 0).
                .filter(|bucket| current.saturating_sub(bucket.index) < BUCKETS as u64)
                .fold((0_u32, 0_u64), |(count, sum), bucket| {
                    (
                        count.saturating_add(bucket.count),
                        sum.saturating_add(bucket.sum_us),
                    )
                })
        };
        let mean_latency = if count == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(sum_us / u64::from(count))
        };
        HoldLoadSnapshot {
            in_flight: u32::try_from(self.in_flight.get().max(0)).unwrap_or(u32::MAX),
            mean_latency,
            completed: count,
            window: WINDOW,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn in_flight_counts_each_call_until_its_guard_drops() {
        let load = HoldLoad::new(Gauge::default());
        let first = load.start();
        let second = load.start();
        assert_eq!(load.snapshot().in_flight, 2);
        drop(first);
        assert_eq!(load.snapshot().in_flight, 1);
        drop(second);
        let after = load.snapshot();
        assert_eq!((after.in_flight, after.completed), (0, 2));
    }

    #[test]
    fn an_abandoned_call_leaves_in_flight_and_counts_as_finished() {
        let load = HoldLoad::new(Gauge::default());
        let call = async {
            let _in_flight = load.start();
            std::future::pending::<()>().await;
        };
        // Polled once (so it is in flight), then dropped as a timed-out handler's future is.
        let mut call = Box::pin(call);
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        assert!(call.as_mut().poll(&mut context).is_pending());
        assert_eq!(load.snapshot().in_flight, 1);
        drop(call);
        let after = load.snapshot();
        assert_eq!((after.in_flight, after.completed), (0, 1));
    }

    #[test]
    fn the_mean_covers_the_holds_finished_within_the_window_only() {
        let load = HoldLoad::new(Gauge::default());
        let t0 = load.origin;
        load.record(t0 + ms(10), ms(100));
        load.record(t0 + ms(300), ms(300));
        let now = load.snapshot_at(t0 + ms(400));
        assert_eq!((now.completed, now.mean_latency), (2, ms(200)));
        assert_eq!(now.window, ms(2_000));
        // At 2.1 s the first quarter-second has aged out; the second not yet.
        let later = load.snapshot_at(t0 + ms(2_100));
        assert_eq!((later.completed, later.mean_latency), (1, ms(300)));
        let gone = load.snapshot_at(t0 + ms(2_300));
        assert_eq!((gone.completed, gone.mean_latency), (0, Duration::ZERO));
    }

    #[test]
    fn a_slot_reused_a_window_later_starts_over() {
        let load = HoldLoad::new(Gauge::default());
        let t0 = load.origin;
        load.record(t0 + ms(10), ms(1_000));
        // Same slot (index 8 = 0 + BUCKETS), two seconds on.
        load.record(t0 + ms(2_010), ms(10));
        let now = load.snapshot_at(t0 + ms(2_020));
        assert_eq!((now.completed, now.mean_latency), (1, ms(10)));
        // A late sample of an older quarter-second joins the slot rather than wiping it.
        load.record(t0 + ms(20), ms(30));
        let now = load.snapshot_at(t0 + ms(2_020));
        assert_eq!((now.completed, now.mean_latency), (2, ms(20)));
    }
}
