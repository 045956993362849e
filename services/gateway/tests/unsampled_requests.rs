//! An unsampled request builds no span in any service: the decision is made once, at the
//! gateway, and travels in `traceparent` (sampled flag clear), so the queue, reservation and
//! catalog services skip their spans instead of starting traces of their own. Own process: the
//! receiver gets every span recorded, so "nothing exported" is "nothing recorded".

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use kit::trace::{
    Rule,
    testing::{Collected, Receiver},
};
use support::{System, default_policy};

/// Span names a reserve request builds somewhere along its way when it is traced.
const ALONG_THE_WAY: &[&str] = &[
    "POST /api/reserve",
    "ticketing.queue.v1.QueueService/ValidateToken",
    "redis validate.lua",
    "ticketing.reservation.v1.ReservationService/HoldSeat",
    "INSERT seat_claims",
];

async fn spans_once(collector: &Receiver, trace: u128, root: &str) -> Vec<Collected> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans = collector.spans();
        if spans.iter().any(|s| s.trace_id == trace && s.name == root) {
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
    let collector = kit::trace::testing::collector(Rule::parse(None, None));
    let system =
        System::start_with(default_policy(), &["--trace-trusted-networks=127.0.0.0/8"]).await;
    let tokens = system.active_tokens([31, 32]).await;
    let reserve = |(user, token): &(i64, String), seat: i64| {
        format!(
            r#"{{"token": "{token}", "concertOptionId": 1, "seatId": {seat}, "userId": {user}}}"#
        )
    };
    let parent = 0x77_u64;
    // The first hold of an option also fetches its seat map: done here, so both requests below
    // take the same path. Its spans are all in once its root has arrived (one exporter, in
    // the order spans end, and the root ends last).
    let warm_trace = 0x9999_u128;
    let warm = system
        .http
        .post_with(
            "/api/reserve",
            &reserve(&tokens[0], 1),
            &[(
                "traceparent",
                &format!("00-{warm_trace:032x}-{parent:016x}-01"),
            )],
        )
        .await;
    assert_eq!(warm.status, 303, "{}", warm.json);
    spans_once(collector, warm_trace, "POST /api/reserve").await;
    let before = collector.spans().len();

    let unsampled = 0xaaaa_u128;
    let reply = system
        .http
        .post_with(
            "/api/reserve",
            &reserve(&tokens[0], 2),
            &[(
                "traceparent",
                &format!("00-{unsampled:032x}-{parent:016x}-00"),
            )],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.json);
    // A sampled request after it, as a fence: once its root span has ended, the unsampled
    // request's spans (each ended before its response) would have been exported too.
    let fence = 0xbbbb_u128;
    let reply = system
        .http
        .post_with(
            "/api/reserve",
            &reserve(&tokens[1], 3),
            &[("traceparent", &format!("00-{fence:032x}-{parent:016x}-01"))],
        )
        .await;
    assert_eq!(reply.status, 303, "{}", reply.json);
    let spans = spans_once(collector, fence, "POST /api/reserve").await;

    let fenced: Vec<&Collected> = spans[before..]
        .iter()
        .filter(|s| s.trace_id == fence)
        .collect();
    for name in ALONG_THE_WAY {
        assert!(
            fenced.iter().any(|s| s.name == *name),
            "the sampled request traced {name}"
        );
    }
    let elsewhere: Vec<String> = spans[before..]
        .iter()
        .filter(|s| s.trace_id != fence && ALONG_THE_WAY.contains(&&*s.name))
        .map(|s| format!("{} in trace {:032x}", s.name, s.trace_id))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the unsampled request built spans (a service started its own trace?): {elsewhere:?}"
    );
}
