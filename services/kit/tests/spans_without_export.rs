//! Without an exporter a span costs nothing: it is never recorded, and `tracing`'s own spans
//! are never built (logs take events only). Its own test binary: span export is
//! process-wide, and another test's exporter would be running in the same process.

#[tokio::test]
async fn spans_record_nothing_unless_they_are_exported_and_log_events_still_pass() {
    kit::telemetry::install_logs();
    assert!(!kit::trace::enabled());
    let span = kit::trace::Span::child(kit::trace::Kind::Server, || "request");
    assert!(!span.is_recording());
    let mut headers = http::HeaderMap::new();
    span.inject(&mut headers);
    assert!(headers.is_empty(), "nothing to pass on: {headers:?}");
    assert_eq!(
        kit::trace::client("redis status.lua", &[], async { 7 }).await,
        7
    );
    assert!(tracing::info_span!("request").is_disabled());
    assert!(tracing::event_enabled!(tracing::Level::INFO));
}
