//! The sampling rule (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`), and whether this
//! process records spans at all: set once, when the span export starts.

use std::sync::OnceLock;

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

    pub(crate) fn sample_new_trace(&self) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && fastrand::f64() < self.ratio)
    }
}

/// The rule in force; unset while nothing records spans.
static RULE: OnceLock<Rule> = OnceLock::new();

/// Set when the span pipeline starts. The first rule set stays.
pub(crate) fn set_rule(rule: Rule) {
    let _ = RULE.set(rule);
}

/// The rule in force, if spans are recorded in this process.
pub(crate) fn rule() -> Option<&'static Rule> {
    RULE.get()
}

/// Whether this process records spans at all.
pub fn enabled() -> bool {
    RULE.get().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_sampler_names_become_a_rule() {
        let rule = |s, a| Rule::parse(s, a);
        let expect = |ratio, follow_parent| Rule {
            ratio,
            follow_parent,
        };
        assert_eq!(rule(None, None), expect(1.0, true));
        assert_eq!(rule(None, Some("0.01")), expect(0.01, true));
        assert_eq!(rule(Some("traceidratio"), Some("0.5")), expect(0.5, false));
        assert_eq!(rule(Some("always_off"), Some("0.5")), expect(0.0, false));
        assert_eq!(rule(Some("always_on"), Some("0.5")), expect(1.0, false));
        assert_eq!(
            rule(Some("parentbased_always_off"), None),
            expect(0.0, true)
        );
        assert_eq!(
            rule(Some("parentbased_always_on"), Some("0")),
            expect(1.0, true)
        );
        assert_eq!(
            rule(Some("parentbased_traceidratio"), Some("2")),
            expect(1.0, true)
        );
        assert_eq!(rule(Some("nonsense"), None), expect(1.0, true));
    }
}
