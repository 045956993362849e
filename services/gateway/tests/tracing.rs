//! One HTTP request yields one trace across every service it touched, with the right
//! parent-child edges, continuing the caller's `traceparent`. The spans are caught in process:
//! all four services run in this test process, exporting to one in-memory collector, while the
//! trace context still crosses real HTTP and gRPC connections.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::{
    collections::HashMap,
    sync::OnceLock,
    time::{Duration, Instant},
};

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use support::{System, default_policy};

/// The process-wide collector (the global subscriber can be installed once per process).
fn collector() -> InMemorySpanExporter {
    static COLLECTOR: OnceLock<(InMemorySpanExporter, kit::telemetry::TelemetryGuard)> =
        OnceLock::new();
    COLLECTOR
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = kit::telemetry::provider(exporter.clone(), "tests", false);
            (
                exporter.clone(),
                kit::telemetry::install("tests", Some(provider)),
            )
        })
        .0
        .clone()
}

/// The spans of `trace` once a span named `root` has ended in it (bounded wait).
async fn trace(collector: &InMemorySpanExporter, trace: TraceId, root: &str) -> Vec<SpanData> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<SpanData> = collector
            .get_finished_spans()
            .expect("spans")
            .into_iter()
            .filter(|span| span.span_context.trace_id() == trace)
            .collect();
        if spans.iter().any(|span| span.name == root) {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "no {root} span in trace {trace}: {:?}",
            names(&spans)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans
        .iter()
        .map(|s| format!("{} ({:?})", s.name, s.span_kind))
        .collect()
}

/// Finds the one span named `name` of `kind` whose parent is `parent`.
fn child<'a>(spans: &'a [SpanData], parent: &SpanData, name: &str, kind: SpanKind) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| {
            s.name == name
                && s.span_kind == kind
                && s.parent_span_id == parent.span_context.span_id()
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name} ({kind:?}) under {}: {:?}",
        parent.name,
        names(spans)
    );
    found[0]
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn a_reserve_request_is_one_trace_across_every_hop_continuing_the_callers_trace() {
    let collector = collector();
    // The caller's trace is continued only from trusted networks; this one is.
    let system =
        System::start_with(default_policy(), &["--trace-trusted-networks=127.0.0.0/8"]).await;
    let (user, token) = system.active_tokens([5]).await.remove(0);

    let trace_id = TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128);
    let caller = SpanId::from(0x00f0_67aa_0ba9_02b7_u64);
    let traceparent = format!("00-{trace_id}-{caller}-01");
    let body =
        format!(r#"{{"token": "{token}", "concertOptionId": 2, "seatId": 3, "userId": {user}}}"#);
    let reply = system
        .http
        .post_with("/api/reserve", &body, &[("traceparent", &traceparent)])
        .await;
    assert_eq!(reply.status, 303, "{}", reply.json);

    let spans = trace(&collector, trace_id, "POST /api/reserve").await;
    let root = spans
        .iter()
        .find(|s| s.name == "POST /api/reserve")
        .unwrap();
    assert_eq!(
        root.parent_span_id, caller,
        "the gateway continues the caller's trace"
    );
    assert_eq!(root.span_kind, SpanKind::Server);
    assert_eq!(
        attribute(root, "http.route").as_deref(),
        Some("/api/reserve")
    );
    assert_eq!(
        attribute(root, "http.response.status_code").as_deref(),
        Some("303")
    );

    // gateway → queue → Redis
    let validate = "ticketing.queue.v1.QueueService/ValidateToken";
    let queue_client = child(&spans, root, validate, SpanKind::Client);
    let queue_server = child(&spans, queue_client, validate, SpanKind::Server);
    let lua = child(&spans, queue_server, "redis validate.lua", SpanKind::Client);
    assert_eq!(attribute(lua, "db.system").as_deref(), Some("redis"));

    // gateway → reservation → catalog (first hold of this option: the seat map is fetched) → SQL
    let hold = "ticketing.reservation.v1.ReservationService/HoldSeat";
    let reservation_client = child(&spans, root, hold, SpanKind::Client);
    let reservation_server = child(&spans, reservation_client, hold, SpanKind::Server);
    let lookup = child(
        &spans,
        reservation_server,
        "catalog GetSeatMap",
        SpanKind::Internal,
    );
    let seat_map = "ticketing.catalog.v1.CatalogService/GetSeatMap";
    let catalog_client = child(&spans, lookup, seat_map, SpanKind::Client);
    let catalog_server = child(&spans, catalog_client, seat_map, SpanKind::Server);
    let catalog_sql = child(&spans, catalog_server, "SELECT seats", SpanKind::Client);
    assert_eq!(
        attribute(catalog_sql, "db.system").as_deref(),
        Some("postgresql")
    );
    let insert = child(
        &spans,
        reservation_server,
        "INSERT seat_claims",
        SpanKind::Client,
    );
    assert_eq!(attribute(insert, "db.operation").as_deref(), Some("INSERT"));

    // Every span of the request is in this one trace, and every parent is in it too (or is the caller).
    let ids: HashMap<SpanId, &SpanData> = spans
        .iter()
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    for span in &spans {
        assert!(
            span.parent_span_id == caller || ids.contains_key(&span.parent_span_id),
            "{} has a parent outside the trace",
            span.name
        );
    }
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_trace_and_errors_mark_spans() {
    let collector = collector();
    let system = System::start(default_policy()).await;
    // An unknown option: the catalog answers NOT_FOUND, and the spans say so.
    let reply = system.http.get("/api/concert/99/available-seats").await;
    assert_eq!(reply.status, 404);

    let deadline = Instant::now() + Duration::from_secs(10);
    let root = loop {
        let found = collector
            .get_finished_spans()
            .expect("spans")
            .into_iter()
            .find(|s| {
                s.name == "GET /api/concert/{id}/available-seats"
                    && attribute(s, "http.response.status_code").as_deref() == Some("404")
            });
        if let Some(root) = found {
            break root;
        }
        assert!(
            Instant::now() < deadline,
            "no root span for the seats request"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        root.parent_span_id,
        SpanId::INVALID,
        "a new trace starts at the gateway"
    );
    let spans = trace(
        &collector,
        root.span_context.trace_id(),
        "GET /api/concert/{id}/available-seats",
    )
    .await;
    let seat_map = "ticketing.catalog.v1.CatalogService/GetSeatMap";
    let client = child(&spans, &root, seat_map, SpanKind::Client);
    let server = child(&spans, client, seat_map, SpanKind::Server);
    assert_eq!(
        attribute(server, "rpc.grpc.status_code").as_deref(),
        Some("5")
    );
    assert!(
        matches!(server.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        server.status
    );
    // The occupancy read ran in parallel, in the same trace.
    child(
        &spans,
        &root,
        "ticketing.reservation.v1.ReservationService/GetOccupancy",
        SpanKind::Client,
    );
}
