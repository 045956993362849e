//! One sampling decision per trace, made at its root and carried downstream.
//!
//! The root (the gateway's HTTP layer, a gRPC server layer for a call that arrives with no
//! trace context, or a background task's first span) decides once, by the standard
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` rule, or by following the caller's
//! sampled flag when the rule is parent-based. Then:
//!
//! - a **sampled** request builds its spans as before (the SDK's own sampler is always-on:
//!   the decision was made here);
//! - an **unsampled** one builds no span at all, in any service: the span-export layer's
//!   gate ([`RootGate`]) refuses every span while the request's task carries
//!   [`Unsampled`], and outgoing calls carry `traceparent` with the sampled flag clear, so the
//!   next service skips its spans too instead of starting a trace of its own.
//!
//! Without an exporter nothing here runs: spans are off at their call sites.

use std::{
    cell::Cell,
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context as TaskContext, Poll},
};

use http::{HeaderMap, HeaderValue, Request};
use tracing::{Metadata, Span, Subscriber, subscriber::Interest};
use tracing_subscriber::{layer::Context, registry::LookupSpan};

/// How new traces are sampled (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    /// Share of new traces sampled.
    pub ratio: f64,
    /// Whether a caller's sampled flag decides instead, when it sends one.
    pub follow_parent: bool,
}

impl Rule {
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok();
        Self::parse(
            var("OTEL_TRACES_SAMPLER").as_deref(),
            var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )
    }

    /// The standard sampler names; unset means parent-based at `_ARG` (1.0 without it), and
    /// an unknown name the specification's default, parent-based always-on.
    pub fn parse(sampler: Option<&str>, arg: Option<&str>) -> Self {
        let ratio = arg
            .and_then(|arg| arg.trim().parse::<f64>().ok())
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .unwrap_or(1.0);
        let (ratio, follow_parent) = match sampler.map(str::trim) {
            None | Some("parentbased_traceidratio") => (ratio, true),
            Some("always_on") => (1.0, false),
            Some("always_off") => (0.0, false),
            Some("traceidratio") => (ratio, false),
            Some("parentbased_always_off") => (0.0, true),
            Some("parentbased_always_on") => (1.0, true),
            Some(other) => {
                eprintln!(
                    "telemetry: OTEL_TRACES_SAMPLER={other:?} is not a known sampler; using parentbased_always_on"
                );
                (1.0, true)
            }
        };
        Self {
            ratio,
            follow_parent,
        }
    }

    fn sample_new_trace(&self) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && fastrand::f64() < self.ratio)
    }
}

/// The rule in force; unset while nothing exports spans.
static RULE: OnceLock<Rule> = OnceLock::new();

/// Called by [`crate::telemetry`] when spans are exported. The first rule set stays.
pub fn set_rule(rule: Rule) {
    let _ = RULE.set(rule);
}

thread_local! {
    /// Set while a sampled root span is being created, so [`RootGate`] lets it through.
    static SAMPLED_ROOT: Cell<bool> = const { Cell::new(false) };
}

tokio::task_local! {
    /// Present for the whole of an unsampled request's task.
    static UNSAMPLED: Unsampled;
}

/// What an unsampled request passes on: `traceparent` with the sampled flag clear (and the
/// caller's baggage, which travels whether or not the trace is sampled).
#[derive(Clone, Debug)]
pub struct Unsampled {
    traceparent: HeaderValue,
    baggage: Option<HeaderValue>,
}

impl Unsampled {
    /// Continuing `trace_id` from `parent_id`, or a fresh trace when they are zero.
    fn new(trace_id: u128, parent_id: u64, baggage: Option<HeaderValue>) -> Self {
        let trace_id = if trace_id == 0 {
            fastrand::u128(1..)
        } else {
            trace_id
        };
        let parent_id = if parent_id == 0 {
            fastrand::u64(1..)
        } else {
            parent_id
        };
        let text = format!("00-{trace_id:032x}-{parent_id:016x}-00");
        Self {
            traceparent: HeaderValue::from_str(&text)
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            baggage,
        }
    }

    fn inject(&self, headers: &mut HeaderMap) {
        headers.insert("traceparent", self.traceparent.clone());
        if let Some(baggage) = &self.baggage {
            headers.insert("baggage", baggage.clone());
        }
    }
}

/// A root's decision.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Nothing exports spans in this process.
    Untraced,
    /// Build the spans; `continues` says whether the caller's trace context is taken up.
    Sampled {
        continues: bool,
    },
    Unsampled(Unsampled),
}

/// The decision for a request arriving with `headers` (`None`: the caller's trace context is
/// not to be trusted, so it is ignored, sampled flag and all).
pub fn decide(headers: Option<&HeaderMap>) -> Decision {
    let Some(rule) = RULE.get() else {
        return Decision::Untraced;
    };
    let parent = headers.and_then(parse_traceparent);
    match parent {
        Some((trace_id, parent_id, sampled)) if rule.follow_parent => {
            if sampled {
                Decision::Sampled { continues: true }
            } else {
                let baggage = headers.and_then(|h| h.get("baggage")).cloned();
                Decision::Unsampled(Unsampled::new(trace_id, parent_id, baggage))
            }
        }
        _ if rule.sample_new_trace() => Decision::Sampled {
            continues: parent.is_some(),
        },
        _ => {
            let baggage = headers.and_then(|h| h.get("baggage")).cloned();
            let (trace_id, parent_id) = parent.map_or((0, 0), |(t, p, _)| (t, p));
            Decision::Unsampled(Unsampled::new(trace_id, parent_id, baggage))
        }
    }
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids nonzero (W3C Trace Context).
fn parse_traceparent(headers: &HeaderMap) -> Option<(u128, u64, bool)> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00"
        || parts.next().is_some()
        || trace.len() != 32
        || parent.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok().filter(|id| *id != 0)?;
    let parent = u64::from_str_radix(parent, 16).ok().filter(|id| *id != 0)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace, parent, flags & 1 == 1))
}

/// The root span `make` builds, if `decision` samples it (a sampled root passes the filter
/// whatever the ratio; an unsampled one is never built).
pub fn root_span(decision: &Decision, make: impl FnOnce() -> Span) -> Span {
    match decision {
        Decision::Unsampled(_) => Span::none(),
        Decision::Untraced => make(),
        Decision::Sampled { .. } => {
            SAMPLED_ROOT.with(|flag| flag.set(true));
            let span = make();
            SAMPLED_ROOT.with(|flag| flag.set(false));
            span
        }
    }
}

/// Writes the trace context of an outgoing call whose own span was not built: the unsampled
/// request's, or (a background task that sampled nothing) a fresh unsampled one.
pub fn inject_unsampled(headers: &mut HeaderMap) {
    if RULE.get().is_none() {
        return;
    }
    match UNSAMPLED.try_with(|unsampled| unsampled.inject(headers)) {
        Ok(()) => {}
        Err(_) => Unsampled::new(0, 0, None).inject(headers),
    }
}

/// Runs a service call under `decision`: an unsampled call's task carries [`Unsampled`]
/// from the call itself (where spans may be created synchronously) to its last poll.
pub fn call_under<F: Future>(decision: &Decision, call: impl FnOnce() -> F) -> Scoped<F> {
    match decision {
        Decision::Unsampled(unsampled) => {
            let future = UNSAMPLED.sync_scope(unsampled.clone(), call);
            Scoped::Unsampled(Box::pin(UNSAMPLED.scope(unsampled.clone(), future)))
        }
        _ => Scoped::Plain(Box::pin(call())),
    }
}

/// A call's future, carrying its unsampled decision if it has one.
pub enum Scoped<F: Future> {
    Plain(Pin<Box<F>>),
    Unsampled(Pin<Box<tokio::task::futures::TaskLocalFuture<Unsampled, F>>>),
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        match self.get_mut() {
            Self::Plain(future) => future.as_mut().poll(cx),
            Self::Unsampled(future) => future.as_mut().poll(cx),
        }
    }
}

/// The gate in front of every layer while spans are exported: a span is built inside an
/// exported trace, as a sampled root, or as a background task's root when the ratio picks it;
/// never in an unsampled request. Events always pass (the logs want them).
///
/// A layer, not a per-layer filter: a per-layer filter only keeps its own layer from seeing
/// a span, and tracing-subscriber's registry still builds it for the others.
#[derive(Clone, Copy, Debug, Default)]
pub struct RootGate;

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for RootGate {
    /// Spans are decided one by one, not per call site.
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        if !meta.is_span() || cx.lookup_current().is_some() {
            return true;
        }
        if SAMPLED_ROOT.with(Cell::get) {
            return true;
        }
        if UNSAMPLED.try_with(|_| ()).is_ok() {
            return false;
        }
        RULE.get().is_some_and(Rule::sample_new_trace)
    }
}

/// A tower layer deciding each incoming request's sampling at the root (HTTP or gRPC),
/// trusting the caller's trace context when `trusts` says so. The decision is in the request's
/// extensions for the layer that builds the root span.
#[derive(Clone)]
pub struct RootLayer<T> {
    trusts: T,
}

impl<T> RootLayer<T> {
    pub fn new(trusts: T) -> Self {
        Self { trusts }
    }
}

impl<S, T: Clone> tower::Layer<S> for RootLayer<T> {
    type Service = Root<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Root {
            inner,
            trusts: self.trusts.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Root<S, T> {
    inner: S,
    trusts: T,
}

impl<S, T, B> tower::Service<Request<B>> for Root<S, T>
where
    S: tower::Service<Request<B>>,
    T: Fn(&Request<B>) -> bool,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scoped<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let trusted = (self.trusts)(&request);
        let decision = decide(trusted.then(|| request.headers()));
        request.extensions_mut().insert(decision.clone());
        call_under(&decision, || self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_standard_sampler_names_become_a_rule() {
        let rule = |s, a| Rule::parse(s, a);
        assert_eq!(
            rule(None, None),
            Rule {
                ratio: 1.0,
                follow_parent: true
            }
        );
        assert_eq!(
            rule(None, Some("0.01")),
            Rule {
                ratio: 0.01,
                follow_parent: true
            }
        );
        assert_eq!(
            rule(Some("traceidratio"), Some("0.5")),
            Rule {
                ratio: 0.5,
                follow_parent: false
            }
        );
        assert_eq!(
            rule(Some("always_off"), Some("0.5")),
            Rule {
                ratio: 0.0,
                follow_parent: false
            }
        );
        assert_eq!(
            rule(Some("parentbased_always_off"), None),
            Rule {
                ratio: 0.0,
                follow_parent: true
            }
        );
        assert_eq!(
            rule(Some("parentbased_traceidratio"), Some("2")),
            Rule {
                ratio: 1.0,
                follow_parent: true
            }
        );
        assert_eq!(
            rule(Some("nonsense"), None),
            Rule {
                ratio: 1.0,
                follow_parent: true
            }
        );
    }

    #[test]
    fn traceparent_is_read_strictly() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("traceparent", HeaderValue::from_str(value).unwrap());
            headers
        };
        let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(&headers(sampled)),
            Some((0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, true))
        );
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(
            parse_traceparent(&headers(unsampled)).map(|p| p.2),
            Some(false)
        );
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "garbage",
        ] {
            assert_eq!(parse_traceparent(&headers(bad)), None, "{bad}");
        }
    }

    #[test]
    fn an_unsampled_decision_passes_the_trace_id_and_baggage_on_with_the_flag_clear() {
        let baggage = HeaderValue::from_static("tenant=acme");
        let unsampled = Unsampled::new(0x4bf9, 0x00f0, Some(baggage));
        let mut out = HeaderMap::new();
        unsampled.inject(&mut out);
        assert_eq!(
            out.get("traceparent").unwrap(),
            "00-00000000000000000000000000004bf9-00000000000000f0-00"
        );
        assert_eq!(out.get("baggage").unwrap(), "tenant=acme");
        let fresh = Unsampled::new(0, 0, None);
        let (trace, parent, sampled) = {
            let mut out = HeaderMap::new();
            fresh.inject(&mut out);
            parse_traceparent(&out).expect("a valid traceparent")
        };
        assert!(trace != 0 && parent != 0 && !sampled);
    }
}
