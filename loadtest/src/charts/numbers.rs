//! How the page writes numbers: thousands grouped by `num-format` (English: "12,345.5").

use num_format::{Locale, ToFormattedString};

/// What is shown for a value that is not a number (NaN or infinite).
pub const MISSING: &str = "–";

/// A count with thousands separators: 12345 → "12,345".
pub fn count(n: u64) -> String {
    n.to_formatted_string(&Locale::en)
}

/// `v` rounded to at most `decimals` decimals, trailing zeros dropped, integer part grouped:
/// 12345.50 → "12,345.5". Beyond what an integer can hold, exponent notation.
pub fn decimal(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return MISSING.to_string();
    }
    let rounded = format!("{:.*}", decimals, v.abs());
    let (int, frac) = rounded.split_once('.').unwrap_or((&rounded, ""));
    let Ok(int) = int.parse::<u128>() else {
        return format!("{v:.3e}");
    };
    let frac = frac.trim_end_matches('0');
    let sign = if v < 0.0 && (int > 0 || !frac.is_empty()) {
        "-"
    } else {
        ""
    };
    let int = int.to_formatted_string(&Locale::en);
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// A value in the legend, the summary or a hover text: whole numbers and values from 1,000 up
/// without decimals, others to one decimal.
pub fn value(v: f64) -> String {
    let decimals = if v.fract() == 0.0 || v.abs() >= 1000.0 {
        0
    } else {
        1
    };
    decimal(v, decimals)
}

/// An axis label: grouped below a million, then M/G/T, then exponent notation, so that even
/// absurd values fit beside the axis.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if !a.is_finite() {
        return MISSING.to_string();
    }
    if a >= 1e15 {
        return format!("{v:.1e}");
    }
    for (unit, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M")] {
        if a >= unit {
            return format!("{}{suffix}", decimal(v / unit, 2));
        }
    }
    decimal(v, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn decimals_are_rounded_trimmed_and_grouped() {
        assert_eq!(decimal(1_234_567.25, 2), "1,234,567.25");
        assert_eq!(decimal(12_345.50, 2), "12,345.5");
        assert_eq!(decimal(33.8219, 2), "33.82");
        assert_eq!(decimal(2.0, 2), "2");
        assert_eq!(decimal(0.30000000000000004, 3), "0.3");
        assert_eq!(decimal(-1_500.0, 0), "-1,500");
        assert_eq!(decimal(-0.0001, 2), "0", "no negative zero");
        assert_eq!(decimal(1e300, 0), "1.000e300");
    }

    #[test]
    fn values_keep_one_decimal_only_below_a_thousand() {
        assert_eq!(value(44.53), "44.5");
        assert_eq!(value(4_352.0), "4,352");
        assert_eq!(value(2_551.3), "2,551");
        assert_eq!(value(7.0), "7");
    }

    #[test]
    fn non_finite_values_show_a_dash() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(decimal(v, 1), MISSING);
            assert_eq!(value(v), MISSING);
            assert_eq!(tick(v), MISSING);
        }
    }

    #[test]
    fn tick_labels_shorten_millions_and_beyond() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(1_500.0), "1,500");
        assert_eq!(tick(2_500_000.0), "2.5M");
        assert_eq!(tick(3e9), "3G");
        assert_eq!(tick(4e12), "4T");
        assert_eq!(tick(2e15), "2.0e15");
    }
}
