//! A span: what one piece of work recorded (name, kind, times, a few attributes, its status),
//! handed to the exporter when it ends. Not a `tracing` span: nothing happens per poll but
//! making it current ([`Scoped`]), and nothing at all when the trace is not sampled.

use std::{
    borrow::Cow,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use http::{HeaderMap, HeaderValue};
use pin_project_lite::pin_project;

use super::{
    context::{self, Current, SpanContext, with_current},
    export,
    record::{Attributes, Fixed, Kind, Recorded, Value},
    rule,
};

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// A span being recorded (or not: an unsampled or untraced one records nothing). It ends when
/// dropped.
#[derive(Debug, Default)]
pub struct Span {
    recording: Option<Box<Recorded>>,
    /// The position its children hang from while it is in scope; `None` leaves whatever is
    /// current as it is.
    scope: Option<Current>,
}

impl Span {
    /// A span that records nothing and changes nothing.
    pub fn none() -> Self {
        Self::default()
    }

    pub(crate) fn start(
        context: SpanContext,
        parent: Option<(u64, bool)>,
        kind: Kind,
        name: Cow<'static, str>,
        baggage: Option<Arc<HeaderValue>>,
    ) -> Self {
        Self {
            recording: Some(Box::new(Recorded {
                context,
                parent,
                kind,
                name,
                start_unix_nanos: now_unix_nanos(),
                end_unix_nanos: 0,
                fixed: &[],
                attributes: Attributes::default(),
                error: None,
            })),
            scope: Some(Current { context, baggage }),
        }
    }

    /// An unsampled request's position: no span, but what it passes on.
    pub(crate) fn unsampled(current: Current) -> Self {
        Self {
            recording: None,
            scope: Some(current),
        }
    }

    /// A child of the task's current span; where there is none (a background task's work), the
    /// root of a new trace, sampled by the rule. `name` is only called when the span records.
    pub fn child<N: Into<Cow<'static, str>>>(kind: Kind, name: impl FnOnce() -> N) -> Self {
        let Some(rule) = rule::rule() else {
            return Self::none();
        };
        with_current(|current| match current {
            Some(current) if current.context.sampled => Self::start(
                current.context.child(),
                Some((current.context.span_id, false)),
                kind,
                name().into(),
                current.baggage.clone(),
            ),
            // Inside an unsampled request: its position is already current.
            Some(_) => Self::none(),
            None if rule.sample_new_trace() => {
                Self::start(SpanContext::new_trace(), None, kind, name().into(), None)
            }
            None => Self::unsampled(Current {
                context: SpanContext::unsampled(),
                baggage: None,
            }),
        })
    }

    /// Whether this span is recorded (its trace is sampled).
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Its identity, when it is recorded.
    pub fn context(&self) -> Option<SpanContext> {
        self.recording.as_ref().map(|recorded| recorded.context)
    }

    /// The same span carrying `fixed` attributes.
    pub fn with_fixed(mut self, fixed: Fixed) -> Self {
        if let Some(recorded) = &mut self.recording {
            recorded.fixed = fixed;
        }
        self
    }

    /// Records an attribute (nothing when the span is not recorded).
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(recorded) = &mut self.recording {
            recorded.attributes.push(key, value.into());
        }
    }

    /// Marks the work failed, with what went wrong.
    pub fn fail(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(recorded) = &mut self.recording {
            recorded.error = Some(description.into());
        }
    }

    /// Writes the position a call made under this span carries (`traceparent`, and the
    /// caller's `baggage`): this span as the callee's parent, or the unsampled position.
    pub fn inject(&self, headers: &mut HeaderMap) {
        match &self.scope {
            Some(scope) => scope.inject(headers),
            None => with_current(|current| {
                if let Some(current) = current {
                    current.inject(headers);
                }
            }),
        }
    }

    /// `future` with this span current while it is polled (the span itself stays here).
    pub fn scope<F: Future>(&self, future: F) -> Scoped<F> {
        Scoped {
            future,
            current: self.scope.clone(),
        }
    }

    /// Runs `f` with this span current (for work that starts spans before its first poll).
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.scope {
            None => f(),
            Some(scope) => context::within(scope, f),
        }
    }

    /// `future` with this span current while it is polled, the span ending when it is done.
    pub fn wrap<F: Future>(self, future: F) -> Traced<F> {
        Traced {
            inner: self.scope(future),
            span: Some(self),
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(mut recorded) = self.recording.take() {
            recorded.end_unix_nanos = now_unix_nanos().max(recorded.start_unix_nanos);
            export::submit(*recorded);
        }
    }
}

pin_project! {
    /// A future polled with a span current: spans made while it runs are that span's children.
    pub struct Scoped<F> {
        #[pin]
        future: F,
        current: Option<Current>,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.current {
            None => this.future.poll(cx),
            Some(current) => context::within(current, || this.future.poll(cx)),
        }
    }
}

pin_project! {
    /// A future in its own span, which ends when the future is done (or dropped).
    pub struct Traced<F> {
        #[pin]
        inner: Scoped<F>,
        span: Option<Span>,
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = this.inner.poll(cx);
        if result.is_ready() {
            drop(this.span.take());
        }
        result
    }
}
