//! The span side of a load run: an OTLP/gRPC receiver the services export to, and the report
//! of where the time went — per span name, count and p50/p95/p99 of duration and of self time
//! (time not covered by children), plus the critical path of the slowest 1% of requests.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use serde::Serialize;

use crate::stats;

/// One finished span, as much of it as the report needs.
#[derive(Clone, Debug)]
pub struct Collected {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    /// "service name", e.g. "reservation INSERT seat_claims".
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Clone, Default)]
pub struct Collector {
    spans: Arc<Mutex<Vec<Collected>>>,
    last_arrival: Arc<Mutex<Option<Instant>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut batch = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = kit::trace::service_name(&resource_spans)
                .unwrap_or("unknown")
                .to_owned();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    batch.push(Collected {
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        name: format!("{service} {}", span.name),
                        start_ns: span.start_time_unix_nano,
                        end_ns: span.end_time_unix_nano.max(span.start_time_unix_nano),
                    });
                }
            }
        }
        lock(&self.spans).extend(batch);
        *lock(&self.last_arrival) = Some(Instant::now());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Collector {
    /// Serves OTLP/gRPC on `addr` until the process ends; returns the bound address.
    pub async fn start(&self, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let service =
            TraceServiceServer::new(self.clone()).max_decoding_message_size(64 * 1024 * 1024);
        let server = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        Ok(bound)
    }

    /// Waits until exporters have gone quiet for `quiet` (they flush on a timer), at most `limit`.
    pub async fn settle(&self, quiet: Duration, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            let last = *lock(&self.last_arrival);
            if last.is_some_and(|last| last.elapsed() >= quiet) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn spans(&self) -> Vec<Collected> {
        lock(&self.spans).clone()
    }
}

#[derive(Serialize, Debug)]
pub struct SpanStats {
    pub name: String,
    pub count: u64,
    pub duration: stats::Latency,
    pub self_time: stats::Latency,
}

#[derive(Serialize, Debug)]
pub struct CriticalPath {
    /// The root span (a gateway route).
    pub root: String,
    /// The slowest 1% of these requests took at least this long.
    pub p99_ms: f64,
    pub requests: u64,
    /// Mean self time per hop along the critical path of those requests, largest first.
    pub hops: Vec<(String, f64)>,
}

#[derive(Serialize, Debug)]
pub struct Breakdown {
    pub spans: u64,
    pub traces: u64,
    pub by_name: Vec<SpanStats>,
    pub slowest: Vec<CriticalPath>,
}

pub fn breakdown(spans: &[Collected]) -> Breakdown {
    let index: HashMap<&[u8], usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_slice(), i))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match index.get(span.parent_span_id.as_slice()) {
            Some(parent) => children.entry(*parent).or_default().push(i),
            None => roots.push(i),
        }
    }
    let self_ns: Vec<u64> = (0..spans.len())
        .map(|i| self_time(spans, i, children.get(&i)))
        .collect();

    let mut by_name: BTreeMap<&str, (hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>)> =
        BTreeMap::new();
    for (i, span) in spans.iter().enumerate() {
        let entry = by_name
            .entry(&span.name)
            .or_insert_with(|| (stats::histogram(), stats::histogram()));
        let _ = entry.0.record((span.end_ns - span.start_ns) / 1000);
        let _ = entry.1.record(self_ns[i] / 1000);
    }
    let mut by_name: Vec<SpanStats> = by_name
        .into_iter()
        .map(|(name, (duration, self_time))| SpanStats {
            name: name.to_owned(),
            count: duration.len(),
            duration: stats::Latency::from(&duration),
            self_time: stats::Latency::from(&self_time),
        })
        .collect();
    by_name.sort_by(|a, b| b.self_time.p99_ms.total_cmp(&a.self_time.p99_ms));

    let mut slowest = Vec::new();
    let mut roots_by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for root in &roots {
        roots_by_name
            .entry(&spans[*root].name)
            .or_default()
            .push(*root);
    }
    for (name, mut group) in roots_by_name {
        group.sort_by_key(|i| spans[*i].end_ns - spans[*i].start_ns);
        let cut = group.len() - group.len().div_ceil(100);
        let slow = &group[cut..];
        let mut hops: HashMap<&str, u64> = HashMap::new();
        for root in slow {
            let mut node = *root;
            loop {
                *hops.entry(&spans[node].name).or_default() += self_ns[node];
                // The child that finishes last holds its parent up: follow it.
                match children
                    .get(&node)
                    .and_then(|kids| kids.iter().max_by_key(|k| spans[**k].end_ns))
                {
                    Some(next) => node = *next,
                    None => break,
                }
            }
        }
        let mut hops: Vec<(String, f64)> = hops
            .into_iter()
            .map(|(hop, ns)| (hop.to_owned(), ns as f64 / slow.len() as f64 / 1e6))
            .collect();
        hops.sort_by(|a, b| b.1.total_cmp(&a.1));
        let threshold = spans[group[cut]].end_ns - spans[group[cut]].start_ns;
        slowest.push(CriticalPath {
            root: name.to_owned(),
            p99_ms: threshold as f64 / 1e6,
            requests: group.len() as u64,
            hops,
        });
    }
    slowest.sort_by_key(|path| std::cmp::Reverse(path.requests));
    let traces = spans
        .iter()
        .map(|s| s.trace_id.as_slice())
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    Breakdown {
        spans: spans.len() as u64,
        traces,
        by_name,
        slowest,
    }
}

/// The span's duration minus the union of its children's intervals (clipped to the span).
fn self_time(spans: &[Collected], i: usize, kids: Option<&Vec<usize>>) -> u64 {
    let span = &spans[i];
    let mut intervals: Vec<(u64, u64)> = kids
        .into_iter()
        .flatten()
        .map(|k| {
            (
                spans[*k].start_ns.max(span.start_ns),
                spans[*k].end_ns.min(span.end_ns),
            )
        })
        .filter(|(start, end)| start < end)
        .collect();
    intervals.sort_unstable();
    let mut covered = 0;
    let mut current: Option<(u64, u64)> = None;
    for (start, end) in intervals {
        match current {
            Some((s, e)) if start <= e => current = Some((s, e.max(end))),
            Some((s, e)) => {
                covered += e - s;
                current = Some((start, end));
            }
            None => current = Some((start, end)),
        }
    }
    if let Some((s, e)) = current {
        covered += e - s;
    }
    (span.end_ns - span.start_ns).saturating_sub(covered)
}

/// The human table: hops by p99 self time, and what the slowest requests waited on.
pub fn print(breakdown: &Breakdown) {
    eprintln!();
    eprintln!(
        "where the time went ({} spans, {} traces)",
        breakdown.spans, breakdown.traces
    );
    eprintln!(
        "{:<70} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "span", "count", "p50 ms", "p95 ms", "p99 ms", "self p50", "self p99"
    );
    for row in &breakdown.by_name {
        eprintln!(
            "{:<70} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            row.name,
            row.count,
            row.duration.p50_ms,
            row.duration.p95_ms,
            row.duration.p99_ms,
            row.self_time.p50_ms,
            row.self_time.p99_ms
        );
    }
    for path in &breakdown.slowest {
        let hops: Vec<String> = path
            .hops
            .iter()
            .take(3)
            .map(|(hop, ms)| format!("{ms:.1} ms in {hop}"))
            .collect();
        eprintln!(
            "{} p99 {:.1} ms: {}",
            path.root,
            path.p99_ms,
            hops.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8, parent: u8, name: &str, start: u64, end: u64) -> Collected {
        Collected {
            trace_id: vec![1],
            span_id: vec![id],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent] },
            name: name.into(),
            start_ns: start * 1_000_000,
            end_ns: end * 1_000_000,
        }
    }

    #[test]
    fn self_time_subtracts_overlapping_children_once() {
        let spans = vec![
            span(1, 0, "gateway POST /api/reserve", 0, 40),
            span(2, 1, "queue validate", 2, 6),
            span(3, 1, "reservation hold", 8, 38),
            span(4, 3, "reservation INSERT", 10, 37),
            span(5, 3, "reservation parallel", 20, 30),
        ];
        let report = breakdown(&spans);
        let row = |name: &str| report.by_name.iter().find(|r| r.name == name).expect(name);
        assert!((row("gateway POST /api/reserve").self_time.p50_ms - 6.0).abs() < 0.1);
        assert!((row("reservation hold").self_time.p50_ms - 3.0).abs() < 0.1);
        let path = &report.slowest[0];
        assert_eq!(path.root, "gateway POST /api/reserve");
        assert_eq!(path.hops[0].0, "reservation INSERT");
        assert!((path.hops[0].1 - 27.0).abs() < 0.1, "{:?}", path.hops);
    }
}
