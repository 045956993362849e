//! What each of the three panels shows: its title, unit, and one line per measure.

use plotters::style::RGBColor;

use crate::series::Second;

pub const BLUE: RGBColor = RGBColor(0x2f, 0x6f, 0xde);
pub const RED: RGBColor = RGBColor(0xe5, 0x48, 0x4d);
pub const GREEN: RGBColor = RGBColor(0x2f, 0x9e, 0x66);
pub const AMBER: RGBColor = RGBColor(0xe8, 0x94, 0x0c);
pub const PURPLE: RGBColor = RGBColor(0x8e, 0x4e, 0xc6);
pub const TEAL: RGBColor = RGBColor(0x0d, 0x94, 0x88);

/// The largest value drawn: beyond it a line runs along the top of its panel. Far above any
/// real count or latency, and small enough for the axis maths to stay finite.
pub const DRAWN_MAX: f64 = 1e15;

pub struct Line {
    pub label: &'static str,
    pub color: RGBColor,
    /// One value per second, cleaned (see [`drawable`]).
    pub values: Vec<f64>,
    /// Shade the area under the line.
    pub fill: bool,
    /// The values are milliseconds (the legend says so).
    pub ms: bool,
}

pub struct Panel {
    pub title: &'static str,
    /// The y axis' description.
    pub unit: &'static str,
    /// The values are counts: no fractional y ticks.
    pub integer: bool,
    pub lines: Vec<Line>,
}

impl Line {
    /// The largest value of the line (0 for none).
    pub fn max(&self) -> f64 {
        self.values.iter().copied().fold(0.0, f64::max)
    }
}

impl Panel {
    /// The largest value of any line (0 for none).
    pub fn max(&self) -> f64 {
        self.lines.iter().map(Line::max).fold(0.0, f64::max)
    }
}

/// A value as drawn: NaN, infinities and negatives become 0, and values above [`DRAWN_MAX`]
/// become [`DRAWN_MAX`], so every line has one point per second and a bad sample never panics
/// or corrupts the SVG.
pub fn drawable(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v.min(DRAWN_MAX)
    } else {
        0.0
    }
}

/// The three panels for `rows` (sorted by time): requests and errors per second, response-time
/// percentiles, active users.
pub fn panels(rows: &[&Second]) -> [Panel; 3] {
    let column = |f: fn(&Second) -> f64| rows.iter().map(|s| drawable(f(s))).collect();
    let line = |label, color, values, fill, ms| Line {
        label,
        color,
        values,
        fill,
        ms,
    };
    [
        Panel {
            title: "Requests per second",
            unit: "requests / s",
            integer: true,
            lines: vec![
                line(
                    "requests/s",
                    BLUE,
                    column(|s| s.requests as f64),
                    true,
                    false,
                ),
                line(
                    "errors/s",
                    RED,
                    column(|s| s.error_count() as f64),
                    false,
                    false,
                ),
            ],
        },
        Panel {
            title: "Response time (ms)",
            unit: "ms",
            integer: false,
            lines: vec![
                line("p50", GREEN, column(|s| s.p50_ms), false, true),
                line("p95", AMBER, column(|s| s.p95_ms), false, true),
                line("p99", PURPLE, column(|s| s.p99_ms), false, true),
            ],
        },
        Panel {
            title: "Users",
            unit: "active users",
            integer: true,
            lines: vec![line(
                "active users",
                TEAL,
                column(|s| s.active_users as f64),
                true,
                false,
            )],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_infinite_and_negative_values_are_drawn_as_zero_and_huge_ones_capped() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -3.0, -0.0] {
            assert_eq!(drawable(v), 0.0, "{v}");
        }
        assert_eq!(drawable(f64::MAX), DRAWN_MAX);
        assert_eq!(drawable(12.5), 12.5);
    }

    #[test]
    fn panels_hold_one_value_per_second_per_line() {
        let rows = [
            Second {
                t: 0,
                requests: 5,
                errors: [("503".to_string(), 2), ("timeout".to_string(), 1)].into(),
                p99_ms: f64::NAN,
                ..Second::default()
            },
            Second {
                t: 1,
                active_users: 7,
                ..Second::default()
            },
        ];
        let rows: Vec<&Second> = rows.iter().collect();
        let [requests, latency, users] = panels(&rows);
        assert_eq!(requests.lines[0].values, [5.0, 0.0]);
        assert_eq!(
            requests.lines[1].values,
            [3.0, 0.0],
            "errors summed over keys"
        );
        assert_eq!(latency.lines[2].values, [0.0, 0.0], "NaN p99 drawn as 0");
        assert_eq!(users.lines[0].values, [0.0, 7.0]);
        assert_eq!(users.max(), 7.0);
    }
}
