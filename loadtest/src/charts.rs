//! Self-contained SVG/HTML charts of a run's time series, and its CSV export.
//!
//! The page has no scripts and loads nothing: three inline SVG panels that share the time axis
//! (requests and errors per second, response-time percentiles, active users), the same panels a
//! Locust report shows. Hovering a second anywhere shows that second's numbers (SVG `<title>`).
//!
//! Values that are NaN, infinite or negative are drawn as 0, so every line has one point per
//! second and a bad sample never panics or corrupts the SVG.

// wired into the report by the run writer
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use crate::series::Second;

/// Width and height of one panel's SVG coordinate system.
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 250.0;
/// Plot area inside a panel.
const LEFT: f64 = 70.0;
const RIGHT: f64 = WIDTH - 18.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = HEIGHT - 42.0;
/// Draw a marker on every point when there are at most this many (a lone point has no line).
const MARKER_LIMIT: usize = 40;

const BLUE: &str = "#2f6fde";
const RED: &str = "#e5484d";
const GREEN: &str = "#2f9e66";
const AMBER: &str = "#e8940c";
const PURPLE: &str = "#8e4ec6";
const TEAL: &str = "#0d9488";

/// A complete HTML page charting `series`; `title` and `subtitle` are plain text (escaped here).
pub fn render_html(title: &str, subtitle: &str, series: &[Second]) -> String {
    let mut out = String::with_capacity(16 * 1024 + series.len() * 600);
    // Writing into a String cannot fail; fmt::Write just makes every write return a Result.
    let _ = write_page(&mut out, title, subtitle, series);
    out
}

/// Axis ticks from 0 up to the first multiple of a "nice" step (1, 2 or 5 × 10^k) that is at
/// least `max`, with the step chosen so there are at most about `target_count` intervals.
/// A `max` that is 0, negative or not finite gives the ticks of 0..1.
pub fn nice_ticks(max: f64, target_count: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let target = target_count.clamp(1, 100) as f64;
    let (mult, exp) = nice_step(max / target);
    let step = scaled(mult, exp);
    let intervals = (max / step - 1e-9).ceil().clamp(1.0, 1000.0) as u64;
    let mut ticks = Vec::with_capacity(intervals as usize + 1);
    for k in 0..=intervals {
        let v = scaled(k as f64 * mult, exp);
        if !v.is_finite() {
            break;
        }
        ticks.push(v);
    }
    ticks
}

/// The series as CSV: `t,requests,p50_ms,p95_ms,p99_ms,errors,active_users`, then one
/// `errors_<key>` column per error key seen anywhere in the series (sorted by key). One row per
/// element, in the given order; `errors` is the total over all keys. Non-finite latencies are
/// written as empty fields.
pub fn to_csv(series: &[Second]) -> String {
    let keys: BTreeSet<&str> = series
        .iter()
        .flat_map(|s| s.errors.keys().map(String::as_str))
        .collect();
    let mut out = String::from("t,requests,p50_ms,p95_ms,p99_ms,errors,active_users");
    for key in &keys {
        out.push(',');
        out.push_str(&csv_field(&format!("errors_{key}")));
    }
    out.push('\n');
    for s in series {
        let fields = [
            s.t.to_string(),
            s.requests.to_string(),
            csv_float(s.p50_ms),
            csv_float(s.p95_ms),
            csv_float(s.p99_ms),
            total_errors(s).to_string(),
            s.active_users.to_string(),
        ];
        out.push_str(&fields.join(","));
        for key in &keys {
            out.push(',');
            out.push_str(&s.errors.get(*key).copied().unwrap_or(0).to_string());
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Page

const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body {
  margin: 0; background: #f5f6f8; color: #1f2933;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", "Liberation Sans", sans-serif;
  font-size: 14px; line-height: 1.4;
}
main { max-width: 1060px; margin: 0 auto; padding: 28px 20px 40px; }
h1 { font-size: 22px; font-weight: 650; margin: 0 0 2px; }
.subtitle { color: #52606d; margin: 0 0 18px; }
.stats { display: flex; flex-wrap: wrap; gap: 10px; margin: 0 0 18px; padding: 0; list-style: none; }
.stats li {
  background: #fff; border: 1px solid #e4e7eb; border-radius: 8px; padding: 8px 14px;
  min-width: 128px;
}
.stats .k { display: block; font-size: 12px; color: #7b8794; }
.stats .v { display: block; font-size: 17px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stats .v.bad { color: #d13438; }
.card {
  background: #fff; border: 1px solid #e4e7eb; border-radius: 10px;
  padding: 14px 18px 6px; margin: 0 0 16px; box-shadow: 0 1px 2px rgba(15, 23, 42, 0.04);
}
.head { display: flex; justify-content: space-between; align-items: baseline; flex-wrap: wrap; gap: 6px 18px; }
h2 { font-size: 15px; font-weight: 600; margin: 0; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 13px; color: #3e4c59; }
.legend .sw {
  display: inline-block; width: 18px; height: 3px; border-radius: 2px;
  vertical-align: middle; margin-right: 6px; position: relative; top: -1px;
}
.legend .m { color: #9aa5b1; font-variant-numeric: tabular-nums; }
svg.chart { display: block; width: 100%; height: auto; margin-top: 4px; }
svg.chart text { font-size: 13px; fill: #7b8794; font-variant-numeric: tabular-nums; }
svg.chart text.unit { fill: #52606d; font-size: 13px; }
svg.chart text.nodata { font-size: 18px; fill: #9aa5b1; }
.grid { stroke: #e9ecf0; stroke-width: 1; shape-rendering: crispEdges; }
.axis { stroke: #bcc4cd; stroke-width: 1; shape-rendering: crispEdges; }
.line { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.line, .axis, .grid { vector-effect: non-scaling-stroke; }
.band { fill: #1f2933; fill-opacity: 0; }
.band:hover { fill-opacity: 0.07; }
footer { color: #9aa5b1; font-size: 12px; margin-top: 8px; }
"#;

fn write_page(out: &mut String, title: &str, subtitle: &str, series: &[Second]) -> fmt::Result {
    let mut rows: Vec<&Second> = series.iter().collect();
    rows.sort_by_key(|s| s.t);
    let title = escape(title);
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, "<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">")?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    )?;
    writeln!(out, "<title>{title}</title>\n<style>{CSS}</style>\n</head>")?;
    writeln!(out, "<body>\n<main>\n<h1>{title}</h1>")?;
    if !subtitle.is_empty() {
        writeln!(out, "<p class=\"subtitle\">{}</p>", escape(subtitle))?;
    }
    write_stats(out, &rows)?;

    let frame = Frame::new(&rows);
    let col = |f: fn(&Second) -> f64| rows.iter().map(|s| clean(f(s))).collect::<Vec<f64>>();
    let panels = [
        Panel {
            title: "Requests per second",
            unit: "requests / s",
            integer: true,
            lines: vec![
                Line {
                    label: "requests/s",
                    color: BLUE,
                    values: col(|s| s.requests as f64),
                    fill: true,
                    ms: false,
                },
                Line {
                    label: "errors/s",
                    color: RED,
                    values: col(|s| total_errors(s) as f64),
                    fill: false,
                    ms: false,
                },
            ],
        },
        Panel {
            title: "Response time (ms)",
            unit: "ms",
            integer: false,
            lines: vec![
                Line {
                    label: "p50",
                    color: GREEN,
                    values: col(|s| s.p50_ms),
                    fill: false,
                    ms: true,
                },
                Line {
                    label: "p95",
                    color: AMBER,
                    values: col(|s| s.p95_ms),
                    fill: false,
                    ms: true,
                },
                Line {
                    label: "p99",
                    color: PURPLE,
                    values: col(|s| s.p99_ms),
                    fill: false,
                    ms: true,
                },
            ],
        },
        Panel {
            title: "Users",
            unit: "active users",
            integer: true,
            lines: vec![Line {
                label: "active users",
                color: TEAL,
                values: col(|s| s.active_users as f64),
                fill: true,
                ms: false,
            }],
        },
    ];
    for panel in &panels {
        write_panel(out, panel, frame.as_ref())?;
    }
    writeln!(
        out,
        "<footer>Hover a chart to see that second's numbers. Seconds are counted by when requests completed.</footer>"
    )?;
    writeln!(out, "</main>\n</body>\n</html>")
}

/// The headline numbers above the charts.
fn write_stats(out: &mut String, rows: &[&Second]) -> fmt::Result {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(());
    };
    let duration = last.t.saturating_sub(first.t).saturating_add(1);
    let requests = rows.iter().fold(0u64, |a, s| a.saturating_add(s.requests));
    let errors = rows
        .iter()
        .fold(0u64, |a, s| a.saturating_add(total_errors(s)));
    let peak_rps = rows.iter().map(|s| s.requests).max().unwrap_or(0);
    let peak_users = rows.iter().map(|s| s.active_users).max().unwrap_or(0);
    let worst_p99 = rows.iter().map(|s| clean(s.p99_ms)).fold(0.0, f64::max);
    let error_pct = if requests > 0 {
        errors as f64 / requests as f64 * 100.0
    } else {
        0.0
    };
    let stats = [
        (
            "Duration",
            format!("{} s", group(&duration.to_string())),
            false,
        ),
        ("Requests", group(&requests.to_string()), false),
        (
            "Errors",
            format!("{} ({}%)", group(&errors.to_string()), fixed(error_pct, 2)),
            errors > 0,
        ),
        (
            "Avg req/s",
            fmt_value(requests as f64 / duration as f64),
            false,
        ),
        ("Peak req/s", group(&peak_rps.to_string()), false),
        ("Worst p99", format!("{} ms", fmt_value(worst_p99)), false),
        ("Peak users", group(&peak_users.to_string()), false),
    ];
    writeln!(out, "<ul class=\"stats\">")?;
    for (k, v, bad) in stats {
        let class = if bad { "v bad" } else { "v" };
        writeln!(
            out,
            "<li><span class=\"k\">{k}</span><span class=\"{class}\">{}</span></li>",
            escape(&v)
        )?;
    }
    writeln!(out, "</ul>")
}

// ---------------------------------------------------------------------------------------------
// Panels

struct Line {
    label: &'static str,
    color: &'static str,
    /// One value per row, already cleaned (finite, >= 0).
    values: Vec<f64>,
    /// Shade the area under the line.
    fill: bool,
    /// Values are milliseconds (for the legend's max).
    ms: bool,
}

struct Panel {
    title: &'static str,
    unit: &'static str,
    /// Values are counts: no fractional y ticks.
    integer: bool,
    lines: Vec<Line>,
}

/// The shared time axis: where each row sits horizontally, and its hover band.
struct Frame {
    x_lo: f64,
    x_hi: f64,
    xs: Vec<f64>,
    bands: Vec<(f64, f64)>,
    tips: Vec<String>,
}

impl Frame {
    /// `None` when there is nothing to draw.
    fn new(rows: &[&Second]) -> Option<Frame> {
        let t_lo = rows.first()?.t as f64;
        let t_hi = rows.last()?.t as f64;
        // A lone second sits in the middle of a two-second window.
        let (x_lo, x_hi) = if t_hi > t_lo {
            (t_lo, t_hi)
        } else {
            (t_lo - 1.0, t_lo + 1.0)
        };
        let xs: Vec<f64> = rows
            .iter()
            .map(|s| LEFT + (s.t as f64 - x_lo) / (x_hi - x_lo) * (RIGHT - LEFT))
            .collect();
        let bands = (0..xs.len())
            .map(|i| {
                let from = if i == 0 {
                    LEFT
                } else {
                    (xs[i - 1] + xs[i]) / 2.0
                };
                let to = xs.get(i + 1).map_or(RIGHT, |next| (xs[i] + next) / 2.0);
                (from, to)
            })
            .collect();
        let tips = rows.iter().map(|s| tooltip(s)).collect();
        Some(Frame {
            x_lo,
            x_hi,
            xs,
            bands,
            tips,
        })
    }
}

/// The hover text for one second, escaped for use inside `<title>`.
fn tooltip(s: &Second) -> String {
    let mut tip = format!(
        "t = {} s\nrequests/s: {}\nerrors/s: {}",
        group(&s.t.to_string()),
        group(&s.requests.to_string()),
        group(&total_errors(s).to_string())
    );
    if !s.errors.is_empty() {
        let kinds: Vec<String> = s
            .errors
            .iter()
            .map(|(k, v)| format!("{k}: {}", group(&v.to_string())))
            .collect();
        tip.push_str(&format!(" ({})", kinds.join(", ")));
    }
    tip.push_str(&format!(
        "\np50: {} ms\np95: {} ms\np99: {} ms\nactive users: {}",
        fmt_ms(s.p50_ms),
        fmt_ms(s.p95_ms),
        fmt_ms(s.p99_ms),
        group(&s.active_users.to_string())
    ));
    escape(&tip)
}

fn write_panel(out: &mut String, panel: &Panel, frame: Option<&Frame>) -> fmt::Result {
    writeln!(out, "<section class=\"card\">\n<div class=\"head\">")?;
    writeln!(out, "<h2>{}</h2>", escape(panel.title))?;
    write!(out, "<div class=\"legend\">")?;
    for line in &panel.lines {
        write!(
            out,
            "<span><span class=\"sw\" style=\"background:{}\"></span>{}",
            line.color,
            escape(line.label)
        )?;
        if frame.is_some() {
            let max = line.values.iter().copied().fold(0.0, f64::max);
            let max = if line.ms {
                format!("{} ms", fmt_value(max))
            } else {
                fmt_value(max)
            };
            write!(out, " <span class=\"m\">max {}</span>", escape(&max))?;
        }
        write!(out, "</span>")?;
    }
    writeln!(out, "</div>\n</div>")?;
    writeln!(
        out,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{}\">",
        escape(panel.title)
    )?;
    match frame {
        Some(frame) => write_plot(out, panel, frame)?,
        None => write_no_data(out, panel)?,
    }
    writeln!(out, "</svg>\n</section>")
}

fn write_no_data(out: &mut String, panel: &Panel) -> fmt::Result {
    write_axes(out, panel.unit)?;
    writeln!(
        out,
        "<text class=\"nodata\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" dominant-baseline=\"middle\">no data</text>",
        (LEFT + RIGHT) / 2.0,
        (TOP + BOTTOM) / 2.0
    )
}

fn write_plot(out: &mut String, panel: &Panel, frame: &Frame) -> fmt::Result {
    let max = panel
        .lines
        .iter()
        .flat_map(|l| l.values.iter().copied())
        .fold(0.0, f64::max);
    let (ticks, top) = y_axis(max, panel.integer);
    let y = |v: f64| BOTTOM - (v / top).clamp(0.0, 1.0) * (BOTTOM - TOP);

    write_y_grid(out, &ticks, top, panel.integer)?;
    // Vertical gridlines and labels on round seconds; a lone second is labelled by itself.
    let x_ticks = match frame.xs.len() {
        1 => vec![(frame.x_lo + frame.x_hi) / 2.0],
        _ => span_ticks(frame.x_lo, frame.x_hi, 10),
    };
    for t in x_ticks {
        let x = LEFT + (t - frame.x_lo) / (frame.x_hi - frame.x_lo) * (RIGHT - LEFT);
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{BOTTOM}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            BOTTOM + 17.0,
            fmt_tick(t, 1.0)
        )?;
    }
    write_axes(out, panel.unit)?;

    for line in &panel.lines {
        let points: Vec<String> = frame
            .xs
            .iter()
            .zip(&line.values)
            .map(|(x, v)| format!("{x:.1},{:.1}", y(*v)))
            .collect();
        let points = points.join(" ");
        if line.fill && frame.xs.len() > 1 {
            let first = frame.xs.first().copied().unwrap_or(LEFT);
            let last = frame.xs.last().copied().unwrap_or(RIGHT);
            writeln!(
                out,
                "<polygon points=\"{first:.1},{BOTTOM} {points} {last:.1},{BOTTOM}\" fill=\"{}\" fill-opacity=\"0.08\" stroke=\"none\"/>",
                line.color
            )?;
        }
        writeln!(
            out,
            "<polyline class=\"line\" stroke=\"{}\" points=\"{points}\"><title>{}</title></polyline>",
            line.color,
            escape(line.label)
        )?;
        if frame.xs.len() <= MARKER_LIMIT {
            for (x, v) in frame.xs.iter().zip(&line.values) {
                writeln!(
                    out,
                    "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#fff\" stroke=\"{}\" stroke-width=\"1.5\"/>",
                    y(*v),
                    line.color
                )?;
            }
        }
    }

    // Hover bands last, so they sit on top and catch the pointer.
    writeln!(out, "<g class=\"bands\">")?;
    for ((from, to), tip) in frame.bands.iter().zip(&frame.tips) {
        writeln!(
            out,
            "<rect class=\"band\" x=\"{from:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\"><title>{tip}</title></rect>",
            (to - from).max(0.0),
            BOTTOM - TOP
        )?;
    }
    writeln!(out, "</g>")
}

/// Horizontal gridlines with their labels, for a y axis running from 0 to `top`.
fn write_y_grid(out: &mut String, ticks: &[f64], top: f64, integer: bool) -> fmt::Result {
    let step = match ticks {
        [a, b, ..] => b - a,
        _ => 1.0,
    };
    let step = if integer { step.max(1.0) } else { step };
    for &v in ticks {
        let y = BOTTOM - (v / top).clamp(0.0, 1.0) * (BOTTOM - TOP);
        writeln!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
            LEFT - 8.0,
            fmt_tick(v, step)
        )?;
    }
    Ok(())
}

/// The baseline, the left axis and the units labels.
fn write_axes(out: &mut String, unit: &str) -> fmt::Result {
    writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{BOTTOM}\" x2=\"{RIGHT}\" y2=\"{BOTTOM}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{BOTTOM}\"/>"
    )?;
    let mid = (TOP + BOTTOM) / 2.0;
    writeln!(
        out,
        "<text class=\"unit\" transform=\"translate(16 {mid:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        escape(unit)
    )?;
    writeln!(
        out,
        "<text class=\"unit\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (s)</text>",
        (LEFT + RIGHT) / 2.0,
        HEIGHT - 4.0
    )
}

// ---------------------------------------------------------------------------------------------
// Scales

/// Ticks and the top of a y axis that starts at 0 and must fit `max`.
fn y_axis(max: f64, integer: bool) -> (Vec<f64>, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let mut ticks = nice_ticks(max, 5);
    if integer && ticks.get(1).is_some_and(|&step| step < 1.0) {
        // Counts: 0, 1, 2, ... rather than 0, 0.5, 1, ...
        ticks = (0..=max.ceil() as u64).map(|v| v as f64).collect();
    }
    let top = ticks.last().copied().unwrap_or(max).max(max);
    (ticks, top)
}

/// Whole-second ticks on round values inside `[lo, hi]`, roughly `target` of them.
fn span_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return Vec::new();
    }
    let (mut mult, mut exp) = nice_step(span / target.max(1) as f64);
    if exp < 0 {
        (mult, exp) = (1.0, 0);
    }
    let step = scaled(mult, exp);
    let first = (lo / step).ceil().max(0.0);
    let last = (hi / step).floor();
    let mut ticks = Vec::new();
    let mut k = first;
    while k <= last && ticks.len() <= 4 * target + 4 {
        ticks.push(scaled(k * mult, exp));
        k += 1.0;
    }
    ticks
}

/// The smallest step of the form m × 10^e (m ∈ {1, 2, 5}) that is at least `raw`.
fn nice_step(raw: f64) -> (f64, i32) {
    if !(raw.is_finite() && raw > 0.0) {
        return (1.0, 0);
    }
    let mut exp = raw.log10().floor() as i32;
    let mut frac = raw / scaled(1.0, exp);
    // log10 can land a hair off for exact powers of ten.
    if frac < 1.0 {
        exp -= 1;
        frac = raw / scaled(1.0, exp);
    } else if frac >= 10.0 {
        exp += 1;
        frac = raw / scaled(1.0, exp);
    }
    const SLACK: f64 = 1e-9;
    if frac <= 1.0 + SLACK {
        (1.0, exp)
    } else if frac <= 2.0 + SLACK {
        (2.0, exp)
    } else if frac <= 5.0 + SLACK {
        (5.0, exp)
    } else {
        (1.0, exp + 1)
    }
}

/// `k × 10^exp`, computed so that e.g. 3 × 10^-1 is exactly the literal 0.3.
fn scaled(k: f64, exp: i32) -> f64 {
    if exp >= 0 {
        k * 10f64.powi(exp)
    } else {
        k / 10f64.powi(-exp)
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers and text

/// A drawable value: NaN, infinities and negatives become 0.
fn clean(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}

/// Errors in one second, without overflowing on absurd counts.
fn total_errors(s: &Second) -> u64 {
    s.errors.values().fold(0u64, |a, &v| a.saturating_add(v))
}

/// A tick label: thousands separators below a million, then M/G/T, then exponent notation.
/// `step` is the distance between ticks and decides how many decimals are shown.
fn fmt_tick(v: f64, step: f64) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        return "0".to_string();
    }
    if a >= 1e15 {
        return format!("{v:e}");
    }
    for (unit, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M")] {
        if a >= unit {
            return format!("{}{suffix}", fixed(v / unit, decimals(step / unit)));
        }
    }
    group(&fixed(v, decimals(step)))
}

/// A value for the legend and the summary: whole numbers grouped, fractions to one decimal.
fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    if v.abs() >= 1e15 {
        return format!("{v:.3e}");
    }
    let d = if v.fract() == 0.0 || v.abs() >= 1000.0 {
        0
    } else {
        1
    };
    group(&fixed(v, d))
}

fn fmt_ms(v: f64) -> String {
    if v.is_finite() {
        fmt_value(v)
    } else {
        "–".to_string()
    }
}

/// How many decimals tick labels `step` apart need.
fn decimals(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 0;
    }
    (-step.log10() - 1e-9).ceil().clamp(0.0, 6.0) as usize
}

/// `v` with at most `d` decimals, trailing zeros dropped.
fn fixed(v: f64, d: usize) -> String {
    let s = format!("{v:.d$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Thousands separators in the integer part of a formatted number: "12345.5" -> "12,345.5".
fn group(num: &str) -> String {
    let (sign, rest) = match num.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", num),
    };
    let (int, frac) = match rest.find('.') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !int.bytes().all(|b| b.is_ascii_digit()) {
        return num.to_string();
    }
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}{frac}")
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn csv_float(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        String::new()
    }
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn second(t: u64, requests: u64, errors: &[(&str, u64)], users: u64) -> Second {
        Second {
            t,
            requests,
            p50_ms: 10.0 + t as f64,
            p95_ms: 20.0 + t as f64,
            p99_ms: 40.0 + t as f64,
            errors: errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
            active_users: users,
        }
    }

    fn synthetic(n: u64) -> Vec<Second> {
        (0..n)
            .map(|t| {
                let errs = if t % 7 == 0 {
                    vec![("503", t % 5)]
                } else {
                    vec![]
                };
                second(t, 100 + t * 3, &errs, t.min(50))
            })
            .collect()
    }

    /// The `points` attribute of every `<polyline>`, split into (x, y) pairs.
    fn polylines(html: &str) -> Vec<Vec<(f64, f64)>> {
        html.split("<polyline")
            .skip(1)
            .map(|chunk| {
                let start = chunk.find("points=\"").expect("points attribute") + 8;
                let end = start + chunk[start..].find('"').expect("closing quote");
                chunk[start..end]
                    .split_whitespace()
                    .map(|pair| {
                        let (x, y) = pair.split_once(',').expect("x,y pair");
                        (x.parse().expect("x number"), y.parse().expect("y number"))
                    })
                    .collect()
            })
            .collect()
    }

    fn assert_well_formed(html: &str) {
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        assert_eq!(html.matches("<svg").count(), 3, "three panels");
        assert_eq!(html.matches("</svg>").count(), 3);
        assert_eq!(
            html.matches("<section").count(),
            html.matches("</section>").count()
        );
        assert!(!html.contains("NaN"));
        assert!(!html.contains("inf\""), "no infinite coordinates");
        assert!(!html.contains("<script"));
        // Nothing loaded from anywhere: the only URL is the SVG namespace.
        assert!(
            !html
                .replace("http://www.w3.org/2000/svg", "")
                .contains("http")
        );
        for line in polylines(html) {
            for (x, y) in line {
                assert!(x.is_finite() && (0.0..=WIDTH).contains(&x), "x {x}");
                assert!(y.is_finite() && (0.0..=HEIGHT).contains(&y), "y {y}");
            }
        }
    }

    #[test]
    fn nice_ticks_round_numbers() {
        assert_eq!(
            nice_ticks(100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(
            nice_ticks(95.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(7.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(nice_ticks(1234.0, 4), vec![0.0, 500.0, 1000.0, 1500.0]);
        assert_eq!(nice_ticks(1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(0.03, 3), vec![0.0, 0.01, 0.02, 0.03]);
        assert_eq!(
            nice_ticks(1000.0, 10),
            (0..=10).map(|k| k as f64 * 100.0).collect::<Vec<_>>()
        );
        assert_eq!(nice_ticks(3.0e6, 3), vec![0.0, 1.0e6, 2.0e6, 3.0e6]);
    }

    #[test]
    fn nice_ticks_degenerate_inputs() {
        let unit = vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
        for max in [0.0, -5.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(nice_ticks(max, 5), unit, "max {max}");
        }
        assert_eq!(nice_ticks(10.0, 0), vec![0.0, 10.0]);
        let huge = nice_ticks(f64::MAX, 5);
        assert!(huge.len() >= 2);
        assert!(huge.iter().all(|v| v.is_finite()));
        assert!(huge.windows(2).all(|w| w[0] < w[1]));
        let tiny = nice_ticks(1e-300, 5);
        assert!(tiny.len() >= 2 && tiny.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn tick_labels() {
        assert_eq!(fmt_tick(0.0, 20.0), "0");
        assert_eq!(fmt_tick(1500.0, 500.0), "1,500");
        assert_eq!(fmt_tick(0.2, 0.2), "0.2");
        assert_eq!(fmt_tick(0.05, 0.05), "0.05");
        assert_eq!(fmt_tick(2.5e6, 5e5), "2.5M");
        assert_eq!(fmt_tick(3e9, 1e9), "3G");
        assert_eq!(fmt_tick(2e15, 1e15), "2e15");
        assert_eq!(group("1234567.25"), "1,234,567.25");
        assert_eq!(group("-999"), "-999");
    }

    #[test]
    fn html_has_three_panels_and_escaped_title() {
        let html = render_html("<b>\"Holds\" & co</b>", "run 'x' <1>", &synthetic(30));
        assert_well_formed(&html);
        assert!(html.contains("&lt;b&gt;&quot;Holds&quot; &amp; co&lt;/b&gt;"));
        assert!(html.contains("run &#39;x&#39; &lt;1&gt;"));
        assert!(!html.contains("<b>"));
        for title in ["Requests per second", "Response time (ms)", "Users"] {
            assert!(html.contains(&format!("<h2>{title}</h2>")), "{title}");
        }
        assert!(html.contains(RED), "errors line is red");
        assert!(!html.contains("no data"));
    }

    #[test]
    fn polyline_points_match_series_length() {
        for n in [1, 2, 30, 120] {
            let html = render_html("t", "", &synthetic(n));
            let lines = polylines(&html);
            assert_eq!(lines.len(), 6, "requests, errors, p50, p95, p99, users");
            for line in &lines {
                assert_eq!(line.len(), n as usize);
                assert!(line.windows(2).all(|w| w[0].0 < w[1].0), "x increases");
            }
            // One hover band per second per panel.
            assert_eq!(html.matches("class=\"band\"").count(), 3 * n as usize);
        }
    }

    #[test]
    fn unsorted_input_is_drawn_in_time_order() {
        let mut s = synthetic(10);
        s.reverse();
        let html = render_html("t", "", &s);
        for line in polylines(&html) {
            assert!(line.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    #[test]
    fn empty_series_renders_no_data_panels() {
        let html = render_html("Empty", "nothing ran", &[]);
        assert_well_formed(&html);
        assert_eq!(html.matches("no data").count(), 3);
        assert!(!html.contains("<polyline"));
        assert!(!html.contains("class=\"band\""));
    }

    #[test]
    fn single_point_is_visible() {
        let html = render_html("One", "", &[second(5, 42, &[("timeout", 1)], 3)]);
        assert_well_formed(&html);
        let lines = polylines(&html);
        assert_eq!(lines.len(), 6);
        // Centred, and marked with circles since a one-point line draws nothing.
        assert!(
            lines
                .iter()
                .all(|l| l.len() == 1 && (l[0].0 - (LEFT + RIGHT) / 2.0).abs() < 0.1)
        );
        assert_eq!(html.matches("<circle").count(), 6);
        // The only time label is the point's own second.
        assert_eq!(html.matches("text-anchor=\"middle\">5</text>").count(), 3);
        assert!(html.contains("timeout: 1"));
    }

    #[test]
    fn zeros_nan_infinite_and_huge_values_render() {
        let zeros: Vec<Second> = (0..5)
            .map(|t| Second {
                t,
                ..Second::default()
            })
            .collect();
        assert_well_formed(&render_html("zeros", "", &zeros));

        let mut bad = synthetic(4);
        bad[0].p50_ms = f64::NAN;
        bad[1].p95_ms = f64::INFINITY;
        bad[2].p99_ms = f64::NEG_INFINITY;
        bad[3].p99_ms = -3.0;
        let html = render_html("bad", "", &bad);
        assert_well_formed(&html);
        assert!(polylines(&html).iter().all(|l| l.len() == 4));

        let huge = vec![
            Second {
                t: 0,
                requests: u64::MAX,
                p50_ms: 1e300,
                p95_ms: f64::MAX,
                p99_ms: f64::MAX,
                errors: [("500".to_string(), u64::MAX), ("503".to_string(), u64::MAX)].into(),
                active_users: u64::MAX,
            },
            second(u64::MAX, 1, &[], 1),
        ];
        let html = render_html("huge", "", &huge);
        assert_well_formed(&html);
        assert!(polylines(&html).iter().all(|l| l.len() == 2));
        let csv = to_csv(&huge);
        assert!(csv.contains(&u64::MAX.to_string()));
    }

    #[test]
    fn csv_header_and_rows() {
        let series = vec![
            second(0, 10, &[("503", 2)], 5),
            second(1, 12, &[("timeout", 1), ("503", 1)], 6),
            second(2, 9, &[], 6),
        ];
        let csv = to_csv(&series);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            vec![
                "t,requests,p50_ms,p95_ms,p99_ms,errors,active_users,errors_503,errors_timeout",
                "0,10,10,20,40,2,5,2,0",
                "1,12,11,21,41,2,6,1,1",
                "2,9,12,22,42,0,6,0,0",
            ]
        );
        assert!(csv.ends_with('\n'));
    }

    #[test]
    fn csv_edge_cases() {
        assert_eq!(
            to_csv(&[]),
            "t,requests,p50_ms,p95_ms,p99_ms,errors,active_users\n"
        );
        let mut s = second(3, 1, &[("a,\"b\"", 4)], 1);
        s.p50_ms = 1.5;
        s.p95_ms = f64::NAN;
        let csv = to_csv(&[s]);
        assert_eq!(
            csv,
            "t,requests,p50_ms,p95_ms,p99_ms,errors,active_users,\"errors_a,\"\"b\"\"\"\n\
             3,1,1.5,,43,4,1,4\n"
        );
    }
}
