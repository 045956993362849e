//! Where a task is in its trace, and the W3C `traceparent` / `baggage` headers that carry it
//! from one service to the next.
//!
//! The position is current only while a traced future is being polled
//! ([`super::span::Scoped`]): a future's spans are children of whatever was current when they
//! were made, without `tracing`'s per-poll span bookkeeping. Entering sets a thread-local
//! pointer to the future's own position for the length of the poll (`scoped-tls`); moving the
//! position itself in and out on every poll was a fifth of what tracing at 1% cost a request.

use std::sync::{Arc, LazyLock};

use http::{HeaderMap, HeaderName, HeaderValue};

/// The W3C Trace Context headers, parsed once (a name given as text is parsed on every use).
pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub(crate) static BAGGAGE: HeaderName = HeaderName::from_static("baggage");

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

    /// A fresh sampled trace: new trace and span ids.
    pub(crate) fn new_trace() -> Self {
        Self {
            trace_id: fastrand::u128(1..),
            span_id: new_span_id(),
            sampled: true,
        }
    }

    /// The position of every trace this process starts unsampled: one for all of them. Nothing
    /// is recorded for an unsampled trace anywhere, so ids of its own would only be paid for:
    /// a `traceparent` value that repeats is sent by HTTP/2 as a reference into the
    /// connection's header table, where one unique to each call is Huffman-coded on one side
    /// and decoded on the other every time (half of what tracing at 1% cost a check-queue,
    /// counted in instructions).
    pub(crate) fn unsampled() -> Self {
        UNSAMPLED.0
    }

    /// `00-<trace id>-<span id>-<flags>`, as `traceparent` carries it.
    pub fn traceparent(self) -> HeaderValue {
        let (unsampled, written) = &*UNSAMPLED;
        if self == *unsampled {
            return written.clone();
        }
        write_traceparent(self)
    }
}

/// This process's unsampled position, and its `traceparent` (written once, shared).
static UNSAMPLED: LazyLock<(SpanContext, HeaderValue)> = LazyLock::new(|| {
    let context = SpanContext {
        trace_id: fastrand::u128(1..),
        span_id: new_span_id(),
        sampled: false,
    };
    (context, write_traceparent(context))
});

fn write_traceparent(context: SpanContext) -> HeaderValue {
    let mut text = [0_u8; 55];
    text[..3].copy_from_slice(b"00-");
    write_hex(&context.trace_id.to_be_bytes(), &mut text[3..35]);
    text[35] = b'-';
    write_hex(&context.span_id.to_be_bytes(), &mut text[36..52]);
    text[52..].copy_from_slice(if context.sampled { b"-01" } else { b"-00" });
    // Only hex digits and dashes: always a valid header value.
    let mut value = HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
    // A sampled span's value is unique to its call: never indexed by HTTP/2's header
    // compression, where it would enter the connection's table on every call and evict the
    // headers that repeat (content type, te, user agent), which then travel in full again. An
    // unsampled position repeats (this process's, or a caller's passed on), so it is left to
    // be indexed.
    value.set_sensitive(context.sampled);
    value
}

fn new_span_id() -> u64 {
    fastrand::u64(1..)
}

/// What a task's new spans hang from: the current span (or an unsampled request's position,
/// which builds no spans but is passed on) and the caller's baggage, which travels along.
#[derive(Clone, Debug)]
pub(crate) struct Current {
    pub(crate) context: SpanContext,
    /// Rare, so shared: a position is copied into every future it scopes.
    pub(crate) baggage: Option<Arc<HeaderValue>>,
}

impl Current {
    /// Writes this position into an outgoing call's headers.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        headers.insert(&TRACEPARENT, self.context.traceparent());
        if let Some(baggage) = &self.baggage {
            headers.insert(&BAGGAGE, HeaderValue::clone(baggage));
        }
    }
}

scoped_tls::scoped_thread_local!(static CURRENT: Current);

/// Runs `f` with the current position.
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Current>) -> R) -> R {
    if CURRENT.is_set() {
        CURRENT.with(|current| f(Some(current)))
    } else {
        f(None)
    }
}

/// Runs `f` with `current` as the position; the one before is current again when `f` returns
/// (or unwinds).
pub(crate) fn within<R>(current: &Current, f: impl FnOnce() -> R) -> R {
    CURRENT.set(current, f)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids nonzero (W3C Trace Context);
/// lowercase hex only, as the specification requires of version 00.
pub(crate) fn parse_traceparent(headers: &HeaderMap) -> Option<SpanContext> {
    let text = headers.get(&TRACEPARENT)?.as_bytes();
    let text = text.trim_ascii();
    if text.len() != 55 || &text[..3] != b"00-" || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let trace_id = u128::from_be_bytes(read_hex(&text[3..35])?);
    let span_id = u64::from_be_bytes(read_hex(&text[36..52])?);
    let [flags] = read_hex(&text[53..55])?;
    (trace_id != 0 && span_id != 0).then_some(SpanContext {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Each lowercase hex digit's value; anything else has its high bits set.
const NIBBLES: [u8; 256] = {
    let mut nibbles = [0xff; 256];
    let mut digit = 0;
    while digit < 16 {
        nibbles[HEX[digit] as usize] = digit as u8;
        digit += 1;
    }
    nibbles
};

/// `bytes` as lowercase hex into `out`, two digits a byte.
fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
}

/// `N` bytes from `2N` lowercase hex digits.
fn read_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut bytes = [0; N];
    // Any digit that is not one sets a high bit here; checked once, after the loop.
    let mut invalid = 0;
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
        invalid |= high | low;
        *byte = high << 4 | low;
    }
    (invalid & 0xf0 == 0).then_some(bytes)
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
            assert_eq!(
                written.is_sensitive(),
                sampled,
                "a sampled span's value is kept out of HPACK's table, an unsampled one repeats"
            );
            let flags = if sampled { "01" } else { "00" };
            assert_eq!(
                written.to_str().unwrap(),
                format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}")
            );
            let mut headers = HeaderMap::new();
            headers.insert("traceparent", written);
            assert_eq!(parse_traceparent(&headers), Some(context));
        }
        for _ in 0..1000 {
            let context = SpanContext {
                trace_id: fastrand::u128(1..),
                span_id: fastrand::u64(1..),
                sampled: fastrand::bool(),
            };
            let mut headers = HeaderMap::new();
            headers.insert("traceparent", context.traceparent());
            assert_eq!(parse_traceparent(&headers), Some(context));
        }
    }

    #[test]
    fn the_traces_a_process_starts_unsampled_share_one_position_and_sampled_ones_have_their_own() {
        let unsampled = SpanContext::unsampled();
        assert!(!unsampled.sampled && unsampled.trace_id != 0 && unsampled.span_id != 0);
        assert_eq!(SpanContext::unsampled(), unsampled);
        let written = unsampled.traceparent();
        assert_eq!(unsampled.traceparent(), written);
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", written);
        assert_eq!(parse_traceparent(&headers), Some(unsampled));
        let (first, second) = (SpanContext::new_trace(), SpanContext::new_trace());
        assert!(first.sampled && second.sampled);
        assert_ne!(first.trace_id, second.trace_id);
        assert_ne!(first.traceparent(), second.traceparent());
    }

    #[test]
    fn a_position_is_current_within_its_scope_and_the_one_before_comes_back_after() {
        let outer = Current {
            context: SpanContext::new_trace(),
            baggage: None,
        };
        let inner = Current {
            context: outer.context.child(),
            baggage: None,
        };
        let current = || with_current(|c| c.map(|c| c.context));
        assert_eq!(current(), None);
        within(&outer, || {
            assert_eq!(current(), Some(outer.context));
            within(&inner, || assert_eq!(current(), Some(inner.context)));
            assert_eq!(current(), Some(outer.context));
            // Also when the inner scope unwinds.
            let unwound = std::panic::catch_unwind(|| within(&inner, || panic!("in a poll")));
            assert!(unwound.is_err());
            assert_eq!(current(), Some(outer.context));
        });
        assert_eq!(current(), None);
    }
}
