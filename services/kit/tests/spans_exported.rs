//! Spans as a service records them, received over OTLP/gRPC by a real receiver: a future's
//! spans are children of the span it runs in, across its awaits and whatever task polls it;
//! a background root that is not sampled keeps its whole subtree unrecorded yet passes its
//! position on; a span ends (and is sent) when its future is done or dropped. Own process:
//! one span pipeline per process, here sampling every new trace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kit::trace::{
    Kind, Rule, Span,
    testing::{Collected, Receiver},
};

fn collector() -> &'static Receiver {
    kit::trace::testing::collector(Rule::parse(None, None))
}

async fn spans_of(trace: u128, count: usize) -> Vec<Collected> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spans: Vec<Collected> = collector()
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .collect();
        if spans.len() >= count {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} spans arrived",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn named<'a>(spans: &'a [Collected], name: &str) -> &'a Collected {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} in {spans:?}"))
}

#[tokio::test]
async fn a_futures_spans_are_children_of_the_span_it_runs_in_across_awaits() {
    collector();
    let root = Span::child(Kind::Server, || "request");
    let trace = root.context().expect("sampled").trace_id;
    root.wrap(async {
        kit::trace::client(
            "first",
            kit::trace::db::REDIS_SCRIPT,
            tokio::task::yield_now(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut second = Span::child(Kind::Client, || "second");
        second.set("attempt", 2_i64);
        second.fail("refused");
        let mut headers = http::HeaderMap::new();
        second.inject(&mut headers);
        let passed = headers["traceparent"].to_str().unwrap().to_owned();
        let context = second.context().unwrap();
        assert_eq!(
            passed,
            format!("00-{:032x}-{:016x}-01", context.trace_id, context.span_id),
            "a call made under a span carries it as the callee's parent"
        );
        // Made when the wrapped future first runs, so under `second`.
        second
            .wrap(async { kit::trace::internal("nested", async {}).await })
            .await;
    })
    .await;

    let spans = spans_of(trace, 4).await;
    let root = named(&spans, "request");
    assert_eq!((root.parent_span_id, root.kind), (0, Kind::Server));
    let first = named(&spans, "first");
    assert_eq!(first.parent_span_id, root.span_id);
    assert_eq!(first.attribute("db.system"), Some("redis"));
    let second = named(&spans, "second");
    assert_eq!(
        second.parent_span_id, root.span_id,
        "after an await, still under the root"
    );
    assert_eq!(second.attribute("attempt"), Some("2"));
    assert_eq!(second.error.as_deref(), Some("refused"));
    assert_eq!(named(&spans, "nested").parent_span_id, second.span_id);
}

#[tokio::test]
async fn a_task_spawned_without_its_parents_span_starts_its_own_trace() {
    collector();
    let root = Span::child(Kind::Server, || "spawner");
    let trace = root.context().unwrap().trace_id;
    let orphan = root
        .wrap(async {
            tokio::spawn(async { Span::child(Kind::Internal, || "orphan").context() })
                .await
                .unwrap()
        })
        .await
        .unwrap();
    assert_ne!(orphan.trace_id, trace);
    let carried = root_with_child(trace).await;
    assert!(carried.is_empty(), "{carried:?}");
}

async fn root_with_child(trace: u128) -> Vec<Collected> {
    spans_of(trace, 1)
        .await
        .into_iter()
        .filter(|s| s.name != "spawner")
        .collect()
}

#[tokio::test]
async fn a_span_whose_future_is_dropped_unfinished_still_ends_and_is_sent() {
    collector();
    let span = Span::child(Kind::Client, || "cancelled");
    let trace = span.context().unwrap().trace_id;
    let never = span.wrap(std::future::pending::<()>());
    let timed_out = tokio::time::timeout(Duration::from_millis(5), never).await;
    assert!(timed_out.is_err());
    let spans = spans_of(trace, 1).await;
    assert_eq!(spans[0].name, "cancelled");
}

#[tokio::test]
async fn an_unsampled_callers_position_is_passed_on_and_nothing_under_it_is_recorded() {
    collector();
    let mut incoming = http::HeaderMap::new();
    incoming.insert(
        "traceparent",
        "00-000000000000000000000000000000aa-00000000000000bb-00"
            .parse()
            .unwrap(),
    );
    incoming.insert("baggage", "tenant=acme".parse().unwrap());
    let decision = kit::trace::decide(Some(&incoming));
    assert!(!decision.is_sampled());
    let root = decision.root(Kind::Server, || "never named");
    assert!(!root.is_recording());
    let outgoing = root
        .wrap(async {
            let call = Span::child(Kind::Client, || "never recorded");
            assert!(!call.is_recording());
            let mut headers = http::HeaderMap::new();
            call.inject(&mut headers);
            kit::trace::client("nor this", &[], async {}).await;
            headers
        })
        .await;
    assert_eq!(
        outgoing["traceparent"],
        "00-000000000000000000000000000000aa-00000000000000bb-00"
    );
    assert_eq!(outgoing["baggage"], "tenant=acme");
    // A later span of this process is sent; none of the unsampled trace's were.
    let fence = Span::child(Kind::Internal, || "fence");
    let fence_trace = fence.context().unwrap().trace_id;
    drop(fence);
    spans_of(fence_trace, 1).await;
    assert!(collector().spans().iter().all(|s| s.trace_id != 0xaa));
}
