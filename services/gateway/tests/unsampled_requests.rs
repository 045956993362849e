//! An unsampled request builds no span in any service: the decision is made once, at the
//! gateway, and travels in `traceparent` (sampled flag clear), so the queue, reservation and
//! catalog services skip their spans instead of starting traces of their own. Own process: the
//! span exporter keeps every span built (the SDK's sampler is always-on behind the root
//! decision), so "nothing exported" is "nothing built".

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use support::{System, default_policy};

/// Span names a reserve request builds somewhere along its way when it is traced.
const ALONG_THE_WAY: &[&str] = &[
    "POST /api/reserve",
    "ticketing.queue.v1.QueueService/ValidateToken",
    "redis validate.lua",
    "ticketing.reservation.v1.ReservationService/HoldSeat",
    "INSERT seat_claims",
];

async fn spans_once(exporter: &InMemorySpanExporter, trace: TraceId, root: &str) -> Vec<SpanData> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = exporter.get_finished_spans().expect("spans");
        if spans
            .iter()
            .any(|s| s.span_context.trace_id() == trace && s.name == root)
        {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "the fence request's {root} span never ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_request_its_caller_did_not_sample_builds_no_span_in_any_service() {
    let exporter = InMemorySpanExporter::default();
    let provider = kit::telemetry::provider(exporter.clone(), "tests", false);
    let _telemetry = kit::telemetry::install("tests", Some(provider));
    let system =
        System::start_with(default_policy(), &["--trace-trusted-networks=127.0.0.0/8"]).await;
    let tokens = system.active_tokens([31, 32]).await;
    let reserve = |(user, token): &(i64, String), seat: i64| {
        format!(
            r#"{{"token": "{token}", "concertOptionId": 1, "seatId": {seat}, "userId": {user}}}"#
        )
    };
    let parent = SpanId::from(0x77_u64);
    // The first hold of an option also fetches its seat map: done here, so both requests below
    // take the same path.
    let warm = system
        .http
        .post("/api/reserve", &reserve(&tokens[0], 1))
        .await;
    assert_eq!(warm.status, 303, "{}", warm.json);
    let before = exporter.get_finished_spans().expect("spans").len();

    let unsampled = TraceId::from(0xaaaa_u128);
    let reply = system
        .http
        .post_with(
            "/api/reserve",
            &reserve(&tokens[0], 2),
            &[("traceparent", &format!("00-{unsampled}-{parent}-00"))],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.json);
    // A sampled request after it, as a fence: once its root span has ended, the unsampled
    // request's spans (each ended before its response) would have been exported too.
    let fence = TraceId::from(0xbbbb_u128);
    let reply = system
        .http
        .post_with(
            "/api/reserve",
            &reserve(&tokens[1], 3),
            &[("traceparent", &format!("00-{fence}-{parent}-01"))],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.json);
    let spans = spans_once(&exporter, fence, "POST /api/reserve").await;

    let fenced: Vec<&SpanData> = spans[before..]
        .iter()
        .filter(|s| s.span_context.trace_id() == fence)
        .collect();
    for name in ALONG_THE_WAY {
        assert!(
            fenced.iter().any(|s| s.name == *name),
            "the sampled request traced {name}"
        );
    }
    let elsewhere: Vec<String> = spans[before..]
        .iter()
        .filter(|s| s.span_context.trace_id() != fence && ALONG_THE_WAY.contains(&&*s.name))
        .map(|s| format!("{} in trace {}", s.name, s.span_context.trace_id()))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the unsampled request built spans (a service started its own trace?): {elsewhere:?}"
    );
}
