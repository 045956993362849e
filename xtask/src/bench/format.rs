//! Number formatting for the bench's written results, reading a figure out of a run's
//! summary, and the results-table row that every section fills.

use std::collections::BTreeMap;

use num_format::{Locale, ToFormattedString};
use serde_json::Value;

/// Every run's summary, by run name.
pub type Results = BTreeMap<&'static str, Value>;

/// One line of the README's results table.
pub(super) struct Row {
    pub measure: String,
    pub this_system: String,
    pub limit: String,
    pub target: String,
    pub original: &'static str,
}

pub fn number(results: &Results, run: &str, pointer: &str) -> Option<f64> {
    results.get(run)?.pointer(pointer)?.as_f64()
}

pub fn show(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or("—".into(), format)
}

/// A whole number, thousands grouped by `num-format` as loadtest's charts group them (English:
/// "1,234"), negatives with a typographic minus ("−1,234"); "—" for what is not a number.
pub fn int(value: f64) -> String {
    if !value.is_finite() {
        return "—".into();
    }
    let magnitude = value.abs().round();
    // Saturates past u128::MAX (3.4e38), far beyond any figure of a run.
    let grouped = (magnitude as u128).to_formatted_string(&Locale::en);
    if value < 0.0 && magnitude > 0.0 {
        format!("−{grouped}")
    } else {
        grouped
    }
}

pub fn ms(value: f64) -> String {
    format!("{value:.1} ms")
}

pub fn percent(value: f64) -> String {
    format!("{:.0}%", value * 100.0)
}

/// Met / missed against a target, as a word a reader scans for.
pub fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

pub fn micros(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.1} µs")
    } else {
        format!("{value:.0} µs")
    }
}

/// A run's checks (`results.checks`: name → ok and detail) as a list, each marked ok or
/// FAILED; nothing when the run has none.
pub fn checks_markdown(run: &Value) -> String {
    let Some(checks) = run.pointer("/results/checks").and_then(Value::as_object) else {
        return String::new();
    };
    let mut out = String::from("\nChecks (each fails the run when broken):\n\n");
    for (name, check) in checks {
        out.push_str(&format!(
            "- `{name}`: {} — {}\n",
            if check["ok"] == true {
                "ok"
            } else {
                "**FAILED**"
            },
            check["detail"].as_str().unwrap_or("")
        ));
    }
    out
}

/// `a → b (+x%)`, or what is known of it.
pub fn change(before: Option<f64>, after: Option<f64>, unit: impl Fn(f64) -> String) -> String {
    match (before, after) {
        (Some(b), Some(a)) if b > 0.0 => {
            format!("{} → {} ({:+.0}%)", unit(b), unit(a), (a / b - 1.0) * 100.0)
        }
        _ => format!("{} → {}", show(before, &unit), show(after, &unit)),
    }
}

#[cfg(test)]
mod tests {
    use super::int;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(int(0.0), "0");
        assert_eq!(int(999.4), "999");
        assert_eq!(int(1234.0), "1,234");
        assert_eq!(int(1_234_567.0), "1,234,567");
    }

    #[test]
    fn ints_round_to_the_nearest_whole_number() {
        assert_eq!(int(999.5), "1,000");
        assert_eq!(int(2598.49), "2,598");
    }

    #[test]
    fn negatives_take_a_typographic_minus_but_zero_has_no_sign() {
        assert_eq!(int(-1234.0), "−1,234");
        assert_eq!(int(-0.4), "0");
    }

    #[test]
    fn what_is_not_a_number_shows_a_dash() {
        assert_eq!(int(f64::NAN), "—");
        assert_eq!(int(f64::INFINITY), "—");
        assert_eq!(int(1e20), "100,000,000,000,000,000,000");
    }
}
