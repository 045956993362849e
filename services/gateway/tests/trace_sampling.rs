//! A client cannot raise the sampling rate: at the public edge its `traceparent` (sampled flag
//! and all) is ignored unless it comes from a trusted network. Own process: the sampler (ratio
//! 0) is installed globally.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use support::Http;

#[tokio::test]
async fn an_untrusted_clients_sampled_traceparent_does_not_force_sampling() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(kit::telemetry::parent_based_ratio(0.0))
        .with_simple_exporter(exporter.clone())
        .build();
    let _guard = kit::telemetry::install("tests", Some(provider));
    // /healthz needs no backend; the queue URL is never called.
    let dead = support::NO_BACKEND;
    let public = Http::new(support::start_gateway(dead, &[]).await);
    let trusting =
        Http::new(support::start_gateway(dead, &["--trace-trusted-networks=127.0.0.0/8"]).await);

    let attacker = TraceId::from(0x1111_u128);
    let operator = TraceId::from(0x2222_u128);
    let parent = SpanId::from(0x33_u64);
    let sampled = |trace: TraceId| format!("00-{trace}-{parent}-01");
    for _ in 0..20 {
        let reply = public
            .send_with(
                "GET",
                "/healthz",
                None,
                None,
                &[("traceparent", &sampled(attacker))],
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    // The trusted network's sampled request is followed: once its span is exported, the
    // earlier requests' spans would have been too (each ends before its response is sent).
    let reply = trusting
        .send_with(
            "GET",
            "/healthz",
            None,
            None,
            &[("traceparent", &sampled(operator))],
        )
        .await;
    assert_eq!(reply.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = exporter.get_finished_spans().expect("spans");
        if spans.iter().any(|s| s.span_context.trace_id() == operator) {
            let forced = spans
                .iter()
                .filter(|s| s.span_context.trace_id() != operator)
                .count();
            assert_eq!(forced, 0, "an untrusted client forced spans to be sampled");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the trusted caller's trace was not continued"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
