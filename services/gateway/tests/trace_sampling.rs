//! A client cannot raise the sampling rate: at the public edge its `traceparent` (sampled flag
//! and all) is ignored unless it comes from a trusted network. Own process: the sampling rule
//! (no new trace sampled, a caller's decision followed) is the process's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use kit::trace::Rule;
use support::Http;

#[tokio::test]
async fn an_untrusted_clients_sampled_traceparent_does_not_force_sampling() {
    let collector = kit::trace::testing::collector(Rule {
        ratio: 0.0,
        follow_parent: true,
    });
    // /healthz needs no backend; the queue URL is never called.
    let dead = support::NO_BACKEND;
    let public = Http::new(support::start_gateway(dead, &[]).await);
    let trusting =
        Http::new(support::start_gateway(dead, &["--trace-trusted-networks=127.0.0.0/8"]).await);

    let attacker = 0x1111_u128;
    let operator = 0x2222_u128;
    let parent = 0x33_u64;
    let sampled = |trace: u128| format!("00-{trace:032x}-{parent:016x}-01");
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
        let spans = collector.spans();
        if spans.iter().any(|s| s.trace_id == operator) {
            let forced = spans.iter().filter(|s| s.trace_id != operator).count();
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
