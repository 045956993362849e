//! Tracing set-up for every service: human or JSON logs filtered by `RUST_LOG`, and OpenTelemetry
//! spans exported over OTLP/gRPC, configured only by the standard `OTEL_*` variables and off
//! when no endpoint is set. The OpenTelemetry layer has its own filter (`OTEL_SPAN_FILTER`,
//! default `info`), so quieting the logs never silently drops exported spans, and the sampling
//! rule is applied once per trace at its root ([`crate::sampling`]): an unsampled request
//! builds no spans.

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{Sampler, SdkTracerProvider, SpanExporter},
};
use tracing::Subscriber;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, LevelFilter},
    layer::{Identity, SubscriberExt},
    registry::LookupSpan,
    util::SubscriberInitExt,
};

/// Flushes and shuts down span export when dropped (end of `main`, after the server future).
#[must_use = "telemetry is flushed when the guard drops; bind it to a variable in main"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Sends every buffered span now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "span flush failed");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: span export shutdown failed: {error}");
        }
    }
}

/// Whether the standard variables ask for OTLP export.
fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()))
        && !std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|value| value == "none")
}

/// Installs the global subscriber (and, with an OTLP endpoint, the exporter). Call inside the
/// Tokio runtime. Safe to call more than once: later calls keep the first subscriber.
pub fn init(service: &'static str) -> TelemetryGuard {
    let provider = if otlp_configured() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => Some(provider(exporter, service, true)),
            Err(error) => {
                eprintln!("telemetry: OTLP exporter not started: {error}");
                None
            }
        }
    } else {
        None
    };
    install(service, provider)
}

/// A tracer provider for `service` over `exporter` (batched, or one span at a time for tests).
/// Its sampler keeps every span it is given: `OTEL_TRACES_SAMPLER`/`_ARG` are applied before
/// any span is built, at the trace's root ([`crate::sampling`]).
pub fn provider(
    exporter: impl SpanExporter + 'static,
    service: &'static str,
    batched: bool,
) -> SdkTracerProvider {
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.instance.id",
        instance_id(service),
    ));
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service);
    }
    let builder = SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    if batched {
        builder.with_batch_exporter(exporter).build()
    } else {
        builder.with_simple_exporter(exporter).build()
    }
}

/// This process among its replicas: the host (a pod's name in Kubernetes) and the process id.
fn instance_id(service: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| service.to_owned());
    format!("{host}-{}", std::process::id())
}

/// Follow the caller's sampling decision; sample `ratio` of new traces (for tests that give
/// the SDK its own sampler behind the root decision).
pub fn parent_based_ratio(ratio: f64) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
}

/// Installs the global subscriber with `provider` (if any) exporting spans.
pub fn install(service: &'static str, provider: Option<SdkTracerProvider>) -> TelemetryGuard {
    global::set_text_map_propagator(opentelemetry::propagation::TextMapCompositePropagator::new(
        vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ],
    ));
    let result = subscriber(service, provider.as_ref()).try_init();
    if result.is_ok() {
        tracing::info!(
            service,
            spans_exported = provider.is_some(),
            "telemetry initialised"
        );
    }
    TelemetryGuard { provider }
}

/// The registry with the span-export layer (when a provider is given) and the log layer.
/// With export on, [`crate::sampling::RootGate`] goes outermost: an unsampled request's spans
/// are refused there, before any layer builds them.
fn subscriber(
    service: &'static str,
    provider: Option<&SdkTracerProvider>,
) -> Box<dyn Subscriber + Send + Sync + 'static> {
    match provider {
        Some(provider) => {
            crate::sampling::set_rule(crate::sampling::Rule::from_env());
            let span_filter = std::env::var("OTEL_SPAN_FILTER").unwrap_or_else(|_| "info".into());
            // Only what the spans need: per-span extras (source location, thread, target,
            // busy/idle timing on every poll) cost measurable throughput under load.
            let otel = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(service))
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_context_activation(false)
                .with_filter(EnvFilter::new(span_filter));
            Box::new(
                tracing_subscriber::registry()
                    .with(otel)
                    .with(log_layer())
                    .with(crate::sampling::RootGate),
            )
        }
        // A layer that wants nothing, not no layer: spans stay off at their call sites.
        None => Box::new(
            tracing_subscriber::registry()
                .with(Identity::new().with_filter(LevelFilter::OFF))
                .with(log_layer()),
        ),
    }
}

/// Logs: `RUST_LOG` filter (default `info`), one JSON object per line with `LOG_FORMAT=json`.
/// Log lines carry no span context unless `LOG_SPANS=1`: formatting every request span's fields
/// for the log costs throughput, and the traces carry that context anyway.
fn log_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let with_spans = std::env::var("LOG_SPANS").is_ok_and(|v| v == "1");
    let filter = filter.and(tracing_subscriber::filter::filter_fn(move |meta| {
        with_spans || meta.is_event()
    }));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_filter(filter).boxed()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{
        SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceState, Tracer, TracerProvider as _,
    };
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    use super::{parent_based_ratio, subscriber};

    // The other half (no exporter, no spans) is tests/spans_without_export.rs: callsite interest
    // is process-wide, so it needs a process with no other subscriber in it.
    #[test]
    fn spans_are_built_when_exported() {
        let (provider, _) = provider(1.0);
        tracing::subscriber::with_default(subscriber("test", Some(&provider)), || {
            assert!(!tracing::info_span!("request").is_disabled());
        });
    }

    fn provider(ratio: f64) -> (SdkTracerProvider, InMemorySpanExporter) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(parent_based_ratio(ratio))
            .with_simple_exporter(exporter.clone())
            .build();
        (provider, exporter)
    }

    #[test]
    fn ratio_zero_exports_nothing_and_ratio_one_everything() {
        for (ratio, expected) in [(0.0, 0), (1.0, 10)] {
            let (provider, exporter) = provider(ratio);
            let tracer = provider.tracer("test");
            for _ in 0..10 {
                tracer.in_span("work", |_| {});
            }
            assert_eq!(
                exporter.get_finished_spans().expect("spans").len(),
                expected,
                "ratio {ratio}"
            );
        }
    }

    #[test]
    fn a_sampled_caller_is_followed_even_at_ratio_zero() {
        let (provider, exporter) = provider(0.0);
        let tracer = provider.tracer("test");
        let remote = SpanContext::new(
            opentelemetry::trace::TraceId::from(7_u128),
            opentelemetry::trace::SpanId::from(9_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let parent = opentelemetry::Context::new().with_remote_span_context(remote);
        let _span = tracer
            .span_builder("child")
            .with_kind(SpanKind::Server)
            .start_with_context(&tracer, &parent);
        drop(_span);
        let spans = exporter.get_finished_spans().expect("spans");
        assert_eq!(spans.len(), 1);
        assert_eq!(
            spans[0].span_context.trace_id(),
            opentelemetry::trace::TraceId::from(7_u128)
        );
    }
}
