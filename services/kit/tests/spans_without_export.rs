//! Without an exporter a span costs nothing: it is never built. Its own test binary, because
//! callsite interest is process-wide: another test's subscriber, alive at the same moment,
//! would make the callsite "sometimes" and the registry would build the span after all.

#[test]
fn spans_cost_nothing_unless_they_are_exported() {
    let _telemetry = kit::telemetry::install("test", None);
    assert!(tracing::info_span!("request").is_disabled());
    // Log events still pass.
    assert!(tracing::event_enabled!(tracing::Level::INFO));
}
