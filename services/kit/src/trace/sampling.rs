//! One sampling decision per trace, made at its root and carried downstream.
//!
//! The root (the gateway's HTTP layer, a gRPC server layer, or a background task's first span)
//! decides once, by the standard `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` rule, or by
//! following the caller's sampled flag when the rule is parent-based. A **sampled** request
//! records its spans; an **unsampled** one records none, in any service: its position is
//! passed on in `traceparent` with the sampled flag clear, so the next service skips its spans
//! too instead of starting a trace of its own.

use std::{borrow::Cow, sync::Arc};

use http::{HeaderMap, HeaderValue};

use super::{
    context::{BAGGAGE, Current, SpanContext, parse_traceparent},
    record::Kind,
    rule::{self, Rule},
    span::Span,
};

/// A root's decision for one request.
#[derive(Clone, Debug)]
pub struct Decision(Inner);

#[derive(Clone, Debug)]
enum Inner {
    /// Nothing records spans in this process.
    Untraced,
    /// Record the request's spans, continuing the caller's trace when it sent one.
    Sampled {
        parent: Option<SpanContext>,
        baggage: Option<Arc<HeaderValue>>,
    },
    /// Record nothing; pass the position on with the sampled flag clear.
    Unsampled(Current),
}

impl Decision {
    /// Whether the request's spans are recorded.
    pub fn is_sampled(&self) -> bool {
        matches!(self.0, Inner::Sampled { .. })
    }

    /// The request's root span in this service (continuing the caller's trace when it is
    /// taken up). `name` is only called when the span is recorded.
    pub fn root<N: Into<Cow<'static, str>>>(&self, kind: Kind, name: impl FnOnce() -> N) -> Span {
        match &self.0 {
            Inner::Untraced => Span::none(),
            Inner::Unsampled(current) => Span::unsampled(current.clone()),
            Inner::Sampled { parent, baggage } => {
                let (context, parent) = match parent {
                    Some(parent) => (
                        SpanContext {
                            sampled: true,
                            ..parent.child()
                        },
                        Some((parent.span_id, true)),
                    ),
                    None => (SpanContext::new_trace(), None),
                };
                Span::start(context, parent, kind, name().into(), baggage.clone())
            }
        }
    }
}

/// The decision for a request arriving with `headers` (`None`: the caller's trace context is
/// not to be trusted, so it is ignored, sampled flag, baggage and all).
pub fn decide(headers: Option<&HeaderMap>) -> Decision {
    decide_by(rule::rule(), headers)
}

fn decide_by(rule: Option<&Rule>, headers: Option<&HeaderMap>) -> Decision {
    let Some(rule) = rule else {
        return Decision(Inner::Untraced);
    };
    let parent = headers.and_then(parse_traceparent);
    let baggage = headers
        .and_then(|h| h.get(&BAGGAGE))
        .map(|value| Arc::new(value.clone()));
    let sampled = match parent {
        Some(parent) if rule.follow_parent => parent.sampled,
        _ => rule.sample_new_trace(),
    };
    if sampled {
        // An unsampled caller recorded nothing to continue, and its position may be shared by
        // every trace its process started unsampled: a rule that samples regardless of the
        // caller starts a trace of its own.
        let parent = parent.filter(|parent| parent.sampled);
        return Decision(Inner::Sampled { parent, baggage });
    }
    // Passed on as the caller's position (its span is the parent downstream), or this
    // process's own.
    let context = parent.map_or_else(SpanContext::unsampled, |parent| SpanContext {
        sampled: false,
        ..parent
    });
    Decision(Inner::Unsampled(Current { context, baggage }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn incoming(traceparent: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(traceparent));
        headers
    }

    #[test]
    fn an_unsampled_decision_passes_the_trace_id_and_baggage_on_with_the_flag_clear() {
        let rule = Rule {
            ratio: 0.0,
            follow_parent: true,
        };
        let mut incoming = incoming("00-00000000000000000000000000004bf9-00000000000000f0-00");
        incoming.insert("baggage", HeaderValue::from_static("tenant=acme"));
        let Inner::Unsampled(current) = decide_by(Some(&rule), Some(&incoming)).0 else {
            panic!("the caller's clear flag is followed");
        };
        let mut out = HeaderMap::new();
        current.inject(&mut out);
        assert_eq!(
            out.get("traceparent").unwrap(),
            "00-00000000000000000000000000004bf9-00000000000000f0-00"
        );
        assert_eq!(out.get("baggage").unwrap(), "tenant=acme");
        // Nobody's context (or one not trusted): a fresh unsampled position, nothing carried.
        let Inner::Unsampled(fresh) = decide_by(Some(&rule), None).0 else {
            panic!("ratio 0 samples no new trace");
        };
        let mut out = HeaderMap::new();
        fresh.inject(&mut out);
        let passed = parse_traceparent(&out).expect("a valid traceparent");
        assert!(passed.trace_id != 0 && passed.span_id != 0 && !passed.sampled);
        assert_eq!(
            passed,
            SpanContext::unsampled(),
            "this process's unsampled position"
        );
        assert!(out.get("baggage").is_none());
    }

    #[test]
    fn a_rule_that_samples_regardless_of_an_unsampled_caller_starts_a_trace_of_its_own() {
        let always = Rule {
            ratio: 1.0,
            follow_parent: false,
        };
        let unsampled = incoming("00-00000000000000000000000000004bf9-00000000000000f0-00");
        let Inner::Sampled { parent, .. } = decide_by(Some(&always), Some(&unsampled)).0 else {
            panic!("ratio 1 samples every request");
        };
        assert_eq!(
            parent, None,
            "the unsampled caller's trace is not continued"
        );
        let sampled = incoming("00-00000000000000000000000000004bf9-00000000000000f0-01");
        let Inner::Sampled { parent, .. } = decide_by(Some(&always), Some(&sampled)).0 else {
            panic!("ratio 1 samples every request");
        };
        assert_eq!(parent.map(|p| p.trace_id), Some(0x4bf9), "a sampled one is");
    }

    #[test]
    fn a_sampled_caller_is_followed_at_ratio_zero_and_its_trace_continued() {
        let rule = Rule {
            ratio: 0.0,
            follow_parent: true,
        };
        let incoming = incoming("00-00000000000000000000000000004bf9-00000000000000f0-01");
        let decision = decide_by(Some(&rule), Some(&incoming));
        assert!(decision.is_sampled());
        let Inner::Sampled {
            parent: Some(parent),
            ..
        } = decision.0
        else {
            panic!("the caller's context is taken up");
        };
        assert_eq!((parent.trace_id, parent.span_id), (0x4bf9, 0xf0));
        // Without the parent-based rule the ratio decides.
        let not_following = Rule {
            ratio: 0.0,
            follow_parent: false,
        };
        assert!(!decide_by(Some(&not_following), Some(&incoming)).is_sampled());
        assert!(!decide_by(None, Some(&incoming)).is_sampled());
    }
}
