//! A lock-free latency histogram with fixed bounds whose buckets can be read back (the
//! gateway's console view snapshots them), and a family of them keyed by label set with a cap
//! on how many label sets it keeps, so no caller can grow the registry without bound.

use std::{
    collections::HashMap,
    fmt,
    hash::Hash,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::MetricType,
};

/// Observations counted per bucket (not cumulative) and the sum in nanoseconds: one atomic
/// add each per observation.
pub struct Histogram {
    bounds: &'static [f64],
    /// `bounds.len() + 1` counters; the last is +Inf.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("bounds", &self.bounds.len())
            .finish_non_exhaustive()
    }
}

/// What a histogram held at one moment: cumulative counts per bound (the last is +Inf), as
/// Prometheus exposes them.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub bounds: &'static [f64],
    /// `cumulative[i]` observations were at most `bounds[i]`; the last entry is the count.
    pub cumulative: Vec<u64>,
    pub sum_seconds: f64,
}

impl Snapshot {
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

impl Histogram {
    /// `bounds` in seconds, ascending.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = self.bounds.partition_point(|bound| *bound < seconds);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|bucket| {
                total += bucket.load(Ordering::Relaxed);
                total
            })
            .collect();
        Snapshot {
            bounds: self.bounds,
            cumulative,
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }

    fn encode_into(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts.iter().copied())
            .collect();
        let count = counts.iter().sum();
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

impl EncodeMetric for Histogram {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), fmt::Error> {
        self.encode_into(encoder)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Histograms by label set. Callers choose bounded labels; `max_series` is the backstop: past
/// it, new label sets share one histogram that is not exported, so a flood of odd labels can
/// neither grow memory nor the scrape.
pub struct HistogramFamily<L> {
    inner: Arc<FamilyInner<L>>,
}

struct FamilyInner<L> {
    bounds: &'static [f64],
    max_series: usize,
    series: RwLock<HashMap<L, Arc<Histogram>>>,
    overflow: Arc<Histogram>,
}

impl<L> Clone for HistogramFamily<L> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<L> fmt::Debug for HistogramFamily<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramFamily")
            .field("max_series", &self.inner.max_series)
            .finish_non_exhaustive()
    }
}

impl<L: Clone + Hash + Eq> HistogramFamily<L> {
    pub fn new(bounds: &'static [f64], max_series: usize) -> Self {
        Self {
            inner: Arc::new(FamilyInner {
                bounds,
                max_series,
                series: RwLock::new(HashMap::new()),
                overflow: Arc::new(Histogram::new(bounds)),
            }),
        }
    }

    /// The histogram of `labels`, created on first use (a read lock on the hot path).
    pub fn get_or_create(&self, labels: &L) -> Arc<Histogram> {
        if let Ok(series) = self.inner.series.read()
            && let Some(histogram) = series.get(labels)
        {
            return Arc::clone(histogram);
        }
        let Ok(mut series) = self.inner.series.write() else {
            return Arc::clone(&self.inner.overflow);
        };
        if series.len() >= self.inner.max_series && !series.contains_key(labels) {
            return Arc::clone(&self.inner.overflow);
        }
        Arc::clone(
            series
                .entry(labels.clone())
                .or_insert_with(|| Arc::new(Histogram::new(self.inner.bounds))),
        )
    }

    /// Every label set with its histogram's current state.
    pub fn snapshots(&self) -> Vec<(L, Snapshot)> {
        self.inner
            .series
            .read()
            .map(|series| {
                series
                    .iter()
                    .map(|(labels, histogram)| (labels.clone(), histogram.snapshot()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl<L> EncodeMetric for HistogramFamily<L>
where
    L: Clone + Hash + Eq + EncodeLabelSet + Send + Sync + fmt::Debug + 'static,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let series: Vec<(L, Arc<Histogram>)> = match self.inner.series.read() {
            Ok(series) => series
                .iter()
                .map(|(labels, histogram)| (labels.clone(), Arc::clone(histogram)))
                .collect(),
            Err(_) => return Ok(()),
        };
        for (labels, histogram) in &series {
            histogram.encode_into(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.01, 0.1];

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let histogram = Histogram::new(BOUNDS);
        for ms in [1, 1, 5, 50, 5_000] {
            histogram.observe(Duration::from_millis(ms));
        }
        let snapshot = histogram.snapshot();
        // le=0.001 holds the two exact 1 ms observations (bounds are inclusive).
        assert_eq!(snapshot.cumulative, vec![2, 3, 4, 5]);
        assert_eq!(snapshot.count(), 5);
        assert!((snapshot.sum_seconds - 5.057).abs() < 1e-9, "{snapshot:?}");
    }

    #[test]
    fn a_family_past_its_cap_shares_one_overflow_histogram() {
        let family: HistogramFamily<[(&'static str, String); 1]> = HistogramFamily::new(BOUNDS, 2);
        let a = family.get_or_create(&[("k", "a".into())]);
        let again = family.get_or_create(&[("k", "a".into())]);
        assert!(Arc::ptr_eq(&a, &again));
        family.get_or_create(&[("k", "b".into())]);
        let c = family.get_or_create(&[("k", "c".into())]);
        let d = family.get_or_create(&[("k", "d".into())]);
        assert!(Arc::ptr_eq(&c, &d), "both past the cap");
        assert_eq!(family.snapshots().len(), 2);
    }
}
