//! Where a task is in its trace, and the W3C `traceparent` / `baggage` headers that carry it
//! from one service to the next.
//!
//! The position is a thread-local set only while a traced future is being polled
//! ([`super::span::Scoped`]): a future's spans are children of whatever was current when they
//! were made, without `tracing`'s per-poll span bookkeeping.

use std::{cell::Cell, sync::Arc};

use http::{HeaderMap, HeaderValue};

/// One span's identity within its trace (W3C Trace Context), and whether the trace is sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl SpanContext {
    /// A new span id in the same trace.
    pub(crate) fn child(self) -> Self {
        Self {
            span_id: new_span_id(),
            ..self
        }
    }

    /// A fresh trace: new trace and span ids.
    pub(crate) fn new_trace(sampled: bool) -> Self {
        Self {
            trace_id: fastrand::u128(1..),
            span_id: new_span_id(),
            sampled,
        }
    }

    /// `00-<trace id>-<span id>-<flags>`, as `traceparent` carries it.
    pub fn traceparent(self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0_u8; 55];
        text[..3].copy_from_slice(b"00-");
        for (i, slot) in text[3..35].iter_mut().enumerate() {
            *slot = HEX[((self.trace_id >> (124 - 4 * i)) & 0xf) as usize];
        }
        text[35] = b'-';
        for (i, slot) in text[36..52].iter_mut().enumerate() {
            *slot = HEX[((self.span_id >> (60 - 4 * i)) & 0xf) as usize];
        }
        text[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        // Only hex digits and dashes: always a valid header value.
        let mut value =
            HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
        // Never indexed by HTTP/2's header compression: a value unique to each call would
        // otherwise enter the connection's table on every call and evict the headers that
        // repeat (content type, te, user agent), which then travel in full again.
        value.set_sensitive(true);
        value
    }
}

fn new_span_id() -> u64 {
    fastrand::u64(1..)
}

/// What a task's new spans hang from: the current span (or an unsampled request's position,
/// which builds no spans but is passed on) and the caller's baggage, which travels along.
#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub(crate) context: SpanContext,
    /// Rare, so shared: a position is moved in and out of the thread-local on every poll.
    pub(crate) baggage: Option<Arc<HeaderValue>>,
}

impl Current {
    /// Writes this position into an outgoing call's headers.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        headers.insert("traceparent", self.context.traceparent());
        if let Some(baggage) = &self.baggage {
            headers.insert("baggage", HeaderValue::clone(baggage));
        }
    }
}

thread_local! {
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
}

/// Runs `f` with the current position.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Current>) -> R) -> R {
    CURRENT.with(|cell| {
        let current = cell.take();
        let result = f(current.as_ref());
        cell.set(current);
        result
    })
}

/// Makes `next` current until the returned guard leaves (or is dropped, also on unwind),
/// which puts back what was current before.
pub(crate) fn enter(next: Current) -> Entered {
    let previous = CURRENT.with(|current| current.replace(Some(next)));
    Entered {
        previous: Some(previous),
    }
}

pub(crate) struct Entered {
    /// What to put back; `None` once it is back.
    previous: Option<Option<Current>>,
}

impl Entered {
    /// Leaves, returning the position that was current (the one entered).
    pub(crate) fn leave(mut self) -> Option<Current> {
        let previous = self.previous.take().flatten();
        CURRENT.with(|current| current.replace(previous))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        // Reached with something to put back only when a poll unwound before `leave`.
        if let Some(previous) = self.previous.take() {
            CURRENT.with(|current| current.replace(previous));
        }
    }
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids nonzero (W3C Trace Context);
/// lowercase hex only, as the specification requires of version 00.
pub(crate) fn parse_traceparent(headers: &HeaderMap) -> Option<SpanContext> {
    let text = headers.get("traceparent")?.as_bytes();
    let text = text.trim_ascii();
    if text.len() != 55 || &text[..3] != b"00-" || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let trace_id = hex(&text[3..35]).filter(|id| *id != 0)?;
    let span_id = u64::try_from(hex(&text[36..52])?)
        .ok()
        .filter(|id| *id != 0)?;
    let flags = hex(&text[53..55])?;
    Some(SpanContext {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// Lowercase hex digits as a number (at most 32 of them).
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0_u128, |value, digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u128::from(nibble))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn headers(traceparent: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", traceparent.parse().unwrap());
        headers
    }

    #[test]
    fn traceparent_is_read_strictly() {
        assert_eq!(
            parse_traceparent(&headers(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            )),
            Some(SpanContext {
                trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
                span_id: 0x00f067aa0ba902b7,
                sampled: true
            })
        );
        assert_eq!(
            parse_traceparent(&headers(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
            ))
            .map(|c| c.sampled),
            Some(false)
        );
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(&headers(bad)), None, "{bad}");
        }
    }

    #[test]
    fn traceparent_is_written_as_it_is_read() {
        for sampled in [true, false] {
            let context = SpanContext {
                trace_id: 0x0af7651916cd43dd8448eb211c80319c,
                span_id: 0xb7ad6b7169203331,
                sampled,
            };
            let written = context.traceparent();
            assert!(written.is_sensitive(), "kept out of HPACK's table");
            let flags = if sampled { "01" } else { "00" };
            assert_eq!(
                written.to_str().unwrap(),
                format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}")
            );
            let mut headers = HeaderMap::new();
            headers.insert("traceparent", written);
            assert_eq!(parse_traceparent(&headers), Some(context));
        }
    }

    #[test]
    fn a_position_entered_is_current_until_it_is_left_and_the_one_before_comes_back() {
        let outer = Current {
            context: SpanContext::new_trace(true),
            baggage: None,
        };
        let inner = Current {
            context: outer.context.child(),
            baggage: None,
        };
        let entered_outer = enter(outer.clone());
        let entered_inner = enter(inner.clone());
        assert_eq!(with_current(|c| c.map(|c| c.context)), Some(inner.context));
        assert_eq!(
            entered_inner.leave().map(|c| c.context),
            Some(inner.context)
        );
        assert_eq!(with_current(|c| c.map(|c| c.context)), Some(outer.context));
        assert_eq!(
            entered_outer.leave().map(|c| c.context),
            Some(outer.context)
        );
        assert!(with_current(|c| c.is_none()));
    }
}
