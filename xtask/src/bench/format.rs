//! Number formatting for the bench's written results, and reading a figure out of a run's
//! summary.

use std::collections::BTreeMap;

use serde_json::Value;

/// Every run's summary, by run name.
pub type Results = BTreeMap<&'static str, Value>;

pub fn number(results: &Results, run: &str, pointer: &str) -> Option<f64> {
    results.get(run)?.pointer(pointer)?.as_f64()
}

pub fn show(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or("—".into(), format)
}

pub fn int(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 {
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

/// `a → b (+x%)`, or what is known of it.
pub fn change(before: Option<f64>, after: Option<f64>, unit: impl Fn(f64) -> String) -> String {
    match (before, after) {
        (Some(b), Some(a)) if b > 0.0 => {
            format!("{} → {} ({:+.0}%)", unit(b), unit(a), (a / b - 1.0) * 100.0)
        }
        _ => format!("{} → {}", show(before, &unit), show(after, &unit)),
    }
}
