//! One HTTP request yields one trace across every service it touched, with the right
//! parent-child edges, continuing the caller's `traceparent`. All four services run in this
//! test process and export, over OTLP/gRPC like a deployed service, to one real receiver,
//! while the trace context crosses real HTTP and gRPC connections.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use kit::trace::{
    Kind, Rule,
    testing::{Collected, Receiver},
};
use support::{System, default_policy};

/// The process's receiver; every trace sampled unless its caller says otherwise.
fn collector() -> &'static Receiver {
    kit::trace::testing::collector(Rule::parse(None, None))
}

/// The spans of `trace` once a span named `root` has arrived in it (bounded wait).
async fn trace(collector: &Receiver, trace: u128, root: &str) -> Vec<Collected> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<Collected> = collector
            .spans()
            .into_iter()
            .filter(|span| span.trace_id == trace)
            .collect();
        if spans.iter().any(|span| span.name == root) {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "no {root} span in trace {trace:032x}: {:?}",
            names(&spans)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn names(spans: &[Collected]) -> Vec<String> {
    spans
        .iter()
        .map(|s| format!("{} ({:?})", s.name, s.kind))
        .collect()
}

/// Finds the one span named `name` of `kind` whose parent is `parent`.
fn child<'a>(spans: &'a [Collected], parent: &Collected, name: &str, kind: Kind) -> &'a Collected {
    let found: Vec<&Collected> = spans
        .iter()
        .filter(|s| s.name == name && s.kind == kind && s.parent_span_id == parent.span_id)
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

#[tokio::test]
async fn a_reserve_request_is_one_trace_across_every_hop_continuing_the_callers_trace() {
    let collector = collector();
    // The caller's trace is continued only from trusted networks; this one is.
    let system =
        System::start_with(default_policy(), &["--trace-trusted-networks=127.0.0.0/8"]).await;
    let (user, token) = system.active_tokens([5]).await.remove(0);

    let trace_id = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128;
    let caller = 0x00f0_67aa_0ba9_02b7_u64;
    let traceparent = format!("00-{trace_id:032x}-{caller:016x}-01");
    let body =
        format!(r#"{{"token": "{token}", "concertOptionId": 2, "seatId": 3, "userId": {user}}}"#);
    let reply = system
        .http
        .post_with("/api/reserve", &body, &[("traceparent", &traceparent)])
        .await;
    assert_eq!(reply.status, 303, "{}", reply.json);

    let spans = trace(collector, trace_id, "POST /api/reserve").await;
    let root = spans
        .iter()
        .find(|s| s.name == "POST /api/reserve")
        .unwrap();
    assert_eq!(
        root.parent_span_id, caller,
        "the gateway continues the caller's trace"
    );
    assert_eq!(root.kind, Kind::Server);
    assert_eq!(root.attribute("http.route"), Some("/api/reserve"));
    assert_eq!(root.attribute("http.response.status_code"), Some("303"));

    // gateway → queue → Redis
    let validate = "ticketing.queue.v1.QueueService/ValidateToken";
    let queue_client = child(&spans, root, validate, Kind::Client);
    let queue_server = child(&spans, queue_client, validate, Kind::Server);
    let lua = child(&spans, queue_server, "redis validate.lua", Kind::Client);
    assert_eq!(lua.attribute("db.system"), Some("redis"));

    // gateway → reservation → catalog (first hold of this option: the seat map is fetched) → SQL
    let hold = "ticketing.reservation.v1.ReservationService/HoldSeat";
    let reservation_client = child(&spans, root, hold, Kind::Client);
    let reservation_server = child(&spans, reservation_client, hold, Kind::Server);
    let lookup = child(
        &spans,
        reservation_server,
        "catalog GetSeatMap",
        Kind::Internal,
    );
    let seat_map = "ticketing.catalog.v1.CatalogService/GetSeatMap";
    let catalog_client = child(&spans, lookup, seat_map, Kind::Client);
    let catalog_server = child(&spans, catalog_client, seat_map, Kind::Server);
    let catalog_sql = child(&spans, catalog_server, "SELECT seats", Kind::Client);
    assert_eq!(catalog_sql.attribute("db.system"), Some("postgresql"));
    let insert = child(
        &spans,
        reservation_server,
        "INSERT seat_claims",
        Kind::Client,
    );
    assert_eq!(insert.attribute("db.operation"), Some("INSERT"));

    // Every span of the request is in this one trace, and every parent is in it too (or is the caller).
    let ids: HashMap<u64, &Collected> = spans.iter().map(|s| (s.span_id, s)).collect();
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
        let found = collector.spans().into_iter().find(|s| {
            s.name == "GET /api/concert/{id}/available-seats"
                && s.attribute("http.response.status_code") == Some("404")
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
    assert_eq!(root.parent_span_id, 0, "a new trace starts at the gateway");
    let spans = trace(
        collector,
        root.trace_id,
        "GET /api/concert/{id}/available-seats",
    )
    .await;
    let seat_map = "ticketing.catalog.v1.CatalogService/GetSeatMap";
    let client = child(&spans, &root, seat_map, Kind::Client);
    let server = child(&spans, client, seat_map, Kind::Server);
    assert_eq!(server.attribute("rpc.grpc.status_code"), Some("5"));
    assert!(
        server.error.is_some(),
        "a failed call's span is marked failed: {:?}",
        server.error
    );
    // The occupancy read ran in parallel, in the same trace.
    child(
        &spans,
        &root,
        "ticketing.reservation.v1.ReservationService/GetOccupancy",
        Kind::Client,
    );
}
