//! The HTML page around the panels: headline numbers, one card per panel (title, legend with
//! each line's max, the plotters SVG and its hover bands) and a footer. No scripts, nothing
//! loaded: hovering a second shows that second's numbers through the `title` attribute.

use std::fmt::Write as _;

use html_escape::encode_quoted_attribute as escape;

use super::numbers::{self, count, decimal, value};
use super::panels::{self, Panel, drawable};
use super::plot::{self, Plot};
use crate::series::Second;

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
.plot { position: relative; margin-top: 4px; }
.plot svg { display: block; width: 100%; height: auto; }
.plot text { font-family: inherit; font-variant-numeric: tabular-nums; }
.plot line { shape-rendering: crispEdges; }
.plot polyline { stroke-linejoin: round; stroke-linecap: round; }
.plot line, .plot polyline { vector-effect: non-scaling-stroke; }
.bands { position: absolute; left: 0; right: 0; }
.bands span { position: absolute; top: 0; bottom: 0; }
.bands span:hover { background: rgba(31, 41, 51, 0.07); }
footer { color: #9aa5b1; font-size: 12px; margin-top: 8px; }
"#;

/// A complete HTML page charting `series`; `title` and `subtitle` are plain text (escaped here).
pub fn render_html(title: &str, subtitle: &str, series: &[Second]) -> anyhow::Result<String> {
    let mut rows: Vec<&Second> = series.iter().collect();
    rows.sort_by_key(|s| s.t);
    let times: Vec<u64> = rows.iter().map(|s| s.t).collect();
    let tips: Vec<String> = rows.iter().map(|s| tooltip(s)).collect();

    let title = escape(title);
    let mut out = String::with_capacity(64 * 1024 + series.len() * 1500);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // Writing into a String cannot fail; fmt::Write just makes every write return a Result.
    let _ = writeln!(
        out,
        "<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>"
    );
    if !subtitle.is_empty() {
        let _ = writeln!(out, "<p class=\"subtitle\">{}</p>", escape(subtitle));
    }
    stats(&mut out, &rows);
    for panel in &panels::panels(&rows) {
        let plot = plot::draw(panel, &times)?;
        card(&mut out, panel, &plot, &tips);
    }
    out.push_str(
        "<footer>Hover a chart to see that second's numbers. Seconds are counted by when requests completed.</footer>\n\
         </main>\n</body>\n</html>\n",
    );
    Ok(out)
}

/// The headline numbers above the charts.
fn stats(out: &mut String, rows: &[&Second]) {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return;
    };
    let duration = last.t.saturating_sub(first.t).saturating_add(1);
    let requests = rows.iter().fold(0u64, |a, s| a.saturating_add(s.requests));
    let errors = rows
        .iter()
        .fold(0u64, |a, s| a.saturating_add(s.error_count()));
    let peak_rps = rows.iter().map(|s| s.requests).max().unwrap_or(0);
    let peak_users = rows.iter().map(|s| s.active_users).max().unwrap_or(0);
    let worst_p99 = rows.iter().map(|s| drawable(s.p99_ms)).fold(0.0, f64::max);
    let error_pct = if requests > 0 {
        errors as f64 / requests as f64 * 100.0
    } else {
        0.0
    };
    let stats = [
        ("Duration", format!("{} s", count(duration)), false),
        ("Requests", count(requests), false),
        (
            "Errors",
            format!("{} ({}%)", count(errors), decimal(error_pct, 2)),
            errors > 0,
        ),
        ("Avg req/s", value(requests as f64 / duration as f64), false),
        ("Peak req/s", count(peak_rps), false),
        ("Worst p99", format!("{} ms", value(worst_p99)), false),
        ("Peak users", count(peak_users), false),
    ];
    out.push_str("<ul class=\"stats\">\n");
    for (k, v, bad) in stats {
        let class = if bad { "v bad" } else { "v" };
        let _ = writeln!(
            out,
            "<li><span class=\"k\">{k}</span><span class=\"{class}\">{}</span></li>",
            escape(&v)
        );
    }
    out.push_str("</ul>\n");
}

/// One panel's card: title and legend, then the chart with a hover band per second on top.
fn card(out: &mut String, panel: &Panel, plot: &Plot, tips: &[String]) {
    let _ = write!(
        out,
        "<section class=\"card\">\n<div class=\"head\">\n<h2>{}</h2>\n<div class=\"legend\">",
        escape(panel.title)
    );
    for line in &panel.lines {
        let (r, g, b) = (line.color.0, line.color.1, line.color.2);
        let _ = write!(
            out,
            "<span><span class=\"sw\" style=\"background:#{r:02x}{g:02x}{b:02x}\"></span>{}",
            escape(line.label)
        );
        if !tips.is_empty() {
            let max = value(line.max());
            let max = if line.ms { format!("{max} ms") } else { max };
            let _ = write!(out, " <span class=\"m\">max {}</span>", escape(&max));
        }
        out.push_str("</span>");
    }
    let _ = writeln!(
        out,
        "</div>\n</div>\n<div class=\"plot\" role=\"img\" aria-label=\"{}\">",
        escape(panel.title)
    );
    out.push_str(&plot.svg);
    if !plot.bands.is_empty() {
        let _ = writeln!(
            out,
            "<div class=\"bands\" style=\"top:{:.3}%;height:{:.3}%\">",
            plot.top * 100.0,
            (plot.bottom - plot.top) * 100.0
        );
        for ((from, to), tip) in plot.bands.iter().zip(tips) {
            let _ = writeln!(
                out,
                "<span style=\"left:{:.3}%;width:{:.3}%\" title=\"{tip}\"></span>",
                from * 100.0,
                (to - from) * 100.0
            );
        }
        out.push_str("</div>\n");
    }
    out.push_str("</div>\n</section>\n");
}

/// The hover text for one second, escaped for a double-quoted attribute (line breaks kept:
/// browsers show them in the tooltip).
fn tooltip(s: &Second) -> String {
    let ms = |v: f64| {
        if v.is_finite() {
            format!("{} ms", value(v))
        } else {
            numbers::MISSING.to_string()
        }
    };
    let mut tip = format!(
        "t = {} s\nrequests/s: {}\nerrors/s: {}",
        count(s.t),
        count(s.requests),
        count(s.error_count())
    );
    if !s.errors.is_empty() {
        let kinds: Vec<String> = s
            .errors
            .iter()
            .map(|(k, v)| format!("{k}: {}", count(*v)))
            .collect();
        let _ = write!(tip, " ({})", kinds.join(", "));
    }
    let _ = write!(
        tip,
        "\np50: {}\np95: {}\np99: {}\nactive users: {}",
        ms(s.p50_ms),
        ms(s.p95_ms),
        ms(s.p99_ms),
        count(s.active_users)
    );
    escape(&tip).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The series' line colours, as plotters writes them.
    const LINE_COLOURS: [&str; 6] = [
        "#2F6FDE", "#E5484D", "#2F9E66", "#E8940C", "#8E4EC6", "#0D9488",
    ];

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

    fn render(series: &[Second]) -> String {
        render_html("t", "", series).unwrap()
    }

    /// The value of `name="..."` in a tag's text.
    fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let end = start + tag[start..].find('"')?;
        Some(&tag[start..end])
    }

    /// The points of every data line (a polyline in a series colour), in drawing order.
    fn lines(html: &str) -> Vec<Vec<(f64, f64)>> {
        html.split("<polyline")
            .skip(1)
            .filter(|tag| attr(tag, "stroke").is_some_and(|c| LINE_COLOURS.contains(&c)))
            .map(|tag| {
                attr(tag, "points")
                    .unwrap()
                    .split_whitespace()
                    .map(|pair| {
                        let (x, y) = pair.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    /// The unrotated texts plotters wrote into one panel's SVG that are anchored `anchor`: the
    /// time axis' ticks and description ("middle"), the y axis' ticks ("end").
    fn labels(panel: &str, anchor: &str) -> Vec<String> {
        panel
            .split("<text")
            .skip(1)
            .filter(|tag| attr(tag, "text-anchor") == Some(anchor))
            .filter(|tag| attr(tag, "transform").is_none())
            .filter_map(|tag| {
                let body = &tag[tag.find('>')? + 1..tag.find("</text>")?];
                Some(body.trim().to_string())
            })
            .collect()
    }

    /// Each panel's part of the page.
    fn panels(html: &str) -> Vec<&str> {
        html.split("<section class=\"card\">").skip(1).collect()
    }

    /// Every hover band: (left %, width %, title).
    fn bands(html: &str) -> Vec<(f64, f64, String)> {
        html.split("<span style=\"left:")
            .skip(1)
            .map(|chunk| {
                let (left, rest) = chunk.split_once("%;width:").unwrap();
                let (width, rest) = rest.split_once('%').unwrap();
                let title = attr(rest, "title").unwrap().to_string();
                (left.parse().unwrap(), width.parse().unwrap(), title)
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
        assert!(!html.to_lowercase().contains("inf\""), "no infinite values");
        for line in lines(html) {
            for (x, y) in line {
                let (w, h) = (f64::from(plot::WIDTH), f64::from(plot::HEIGHT));
                assert!((0.0..=w).contains(&x), "x {x} inside the panel");
                assert!((0.0..=h).contains(&y), "y {y} inside the panel");
            }
        }
    }

    #[test]
    fn page_is_script_free_and_loads_nothing() {
        let html = render(&synthetic(30));
        assert_well_formed(&html);
        let lower = html.to_lowercase();
        for banned in [
            "<script", " src=", "href=", "url(", "@import", " onload", " onmouse",
        ] {
            assert!(!lower.contains(banned), "{banned}");
        }
        // The only URL is the SVG namespace.
        assert!(
            !html
                .replace("http://www.w3.org/2000/svg", "")
                .contains("http")
        );
    }

    #[test]
    fn three_panels_share_one_time_axis() {
        let html = render(&synthetic(30));
        let panels = panels(&html);
        assert_eq!(panels.len(), 3);
        for (panel, title) in
            panels
                .iter()
                .zip(["Requests per second", "Response time (ms)", "Users"])
        {
            assert!(panel.contains(&format!("<h2>{title}</h2>")), "{title}");
            assert!(panel.contains("time (s)"));
        }
        // The same seconds sit at the same x in every panel, and carry the same labels.
        let lines = lines(&html);
        assert_eq!(lines.len(), 6, "requests, errors, p50, p95, p99, users");
        let xs = |l: &Vec<(f64, f64)>| l.iter().map(|p| p.0).collect::<Vec<_>>();
        assert!(lines.iter().all(|l| xs(l) == xs(&lines[0])));
        let x_labels: Vec<Vec<String>> = panels.iter().map(|p| labels(p, "middle")).collect();
        assert!(x_labels[0].contains(&"10".to_string()), "{:?}", x_labels[0]);
        assert!(x_labels.iter().all(|l| *l == x_labels[0]));
    }

    #[test]
    fn title_and_subtitle_are_escaped() {
        let html = render_html("<b>\"Holds\" & co</b>", "run 'x' <1>", &synthetic(3)).unwrap();
        assert!(html.contains("<h1>&lt;b&gt;&quot;Holds&quot; &amp; co&lt;/b&gt;</h1>"));
        assert!(html.contains("<title>&lt;b&gt;"));
        assert!(html.contains("run &#x27;x&#x27; &lt;1&gt;"));
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn every_line_has_one_point_per_second_in_time_order() {
        for n in [2, 30, 120] {
            let html = render(&synthetic(n));
            assert_well_formed(&html);
            let lines = lines(&html);
            assert_eq!(lines.len(), 6);
            for line in &lines {
                assert_eq!(line.len(), n as usize);
                assert!(line.windows(2).all(|w| w[0].0 < w[1].0), "x increases");
            }
        }
        let mut reversed = synthetic(10);
        reversed.reverse();
        for line in lines(&render(&reversed)) {
            assert!(line.windows(2).all(|w| w[0].0 < w[1].0), "sorted by time");
        }
    }

    #[test]
    fn every_second_has_a_hover_band_with_its_numbers() {
        let mut series = synthetic(20);
        series[14].errors = [("503_OVERLOADED".to_string(), 1234)].into();
        let html = render(&series);
        let bands = bands(&html);
        assert_eq!(bands.len(), 3 * 20, "one band per second per panel");
        for panel in bands.chunks(20) {
            // Side by side, no gaps, left to right.
            assert!(
                panel
                    .windows(2)
                    .all(|w| (w[0].0 + w[0].1 - w[1].0).abs() < 0.01)
            );
            assert!(panel.iter().all(|b| b.1 > 0.0));
        }
        assert_eq!(
            bands[14].2,
            "t = 14 s\nrequests/s: 142\nerrors/s: 1,234 (503_OVERLOADED: 1,234)\n\
             p50: 24 ms\np95: 34 ms\np99: 54 ms\nactive users: 14"
        );
    }

    #[test]
    fn bad_values_neither_panic_nor_corrupt_the_svg() {
        let zeros: Vec<Second> = (0..5)
            .map(|t| Second {
                t,
                ..Second::default()
            })
            .collect();
        assert_well_formed(&render(&zeros));

        let mut bad = synthetic(4);
        bad[0].p50_ms = f64::NAN;
        bad[1].p95_ms = f64::INFINITY;
        bad[2].p99_ms = f64::NEG_INFINITY;
        bad[3].p99_ms = -3.0;
        let html = render(&bad);
        assert_well_formed(&html);
        let lines = lines(&html);
        assert!(lines.iter().all(|l| l.len() == 4));
        // Drawn at 0: on the baseline, where a zero error count sits too.
        let baseline = lines[1][1].1;
        assert_eq!(lines[2][0].1, baseline, "NaN p50");
        assert_eq!(lines[3][1].1, baseline, "infinite p95");
        assert_eq!(lines[4][2].1, baseline, "-inf p99");
        assert_eq!(lines[4][3].1, baseline, "negative p99");
        assert!(
            bands(&html)[0].2.contains("p50: –\n"),
            "NaN shown as a dash"
        );
    }

    #[test]
    fn huge_values_stay_inside_the_panel() {
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
        let html = render(&huge);
        assert_well_formed(&html);
        assert!(lines(&html).iter().all(|l| l.len() == 2));
        assert!(
            html.contains(&count(u64::MAX)),
            "exact count in the hover text"
        );
    }

    #[test]
    fn empty_series_draws_three_no_data_panels() {
        let html = render_html("Empty", "nothing ran", &[]).unwrap();
        assert_well_formed(&html);
        assert_eq!(html.matches("no data").count(), 3);
        assert!(lines(&html).is_empty());
        assert!(bands(&html).is_empty());
        assert!(!html.contains("class=\"stats\""), "no headline numbers");
        assert!(!html.contains("max "), "no legend maxima");
    }

    #[test]
    fn a_single_second_is_centred_and_marked() {
        let html = render(&[second(5, 42, &[("timeout", 1)], 3)]);
        assert_well_formed(&html);
        let lines = lines(&html);
        assert_eq!(lines.len(), 6);
        let bands = bands(&html);
        let (left, width) = (bands[0].0, bands[0].1);
        let centre = (left + width / 2.0) / 100.0 * f64::from(plot::WIDTH);
        for line in &lines {
            assert_eq!(line.len(), 1);
            assert!(
                (line[0].0 - centre).abs() <= 1.0,
                "{} vs {centre}",
                line[0].0
            );
        }
        // A one-point line draws nothing, so each point gets a marker (white fill, outline).
        assert_eq!(html.matches("<circle").count(), 2 * 6);
        for panel in panels(&html) {
            assert!(labels(panel, "middle").contains(&"5".to_string()));
        }
        assert!(bands[0].2.contains("timeout: 1"));
    }

    #[test]
    fn headline_numbers_are_grouped_and_errors_flagged() {
        let series: Vec<Second> = (0..10)
            .map(|t| second(t, 1_500, &[("503", 15)], 2_000 + t))
            .collect();
        let html = render(&series);
        for stat in [
            "<span class=\"k\">Duration</span><span class=\"v\">10 s</span>",
            "<span class=\"k\">Requests</span><span class=\"v\">15,000</span>",
            "<span class=\"k\">Errors</span><span class=\"v bad\">150 (1%)</span>",
            "<span class=\"k\">Avg req/s</span><span class=\"v\">1,500</span>",
            "<span class=\"k\">Worst p99</span><span class=\"v\">49 ms</span>",
            "<span class=\"k\">Peak users</span><span class=\"v\">2,009</span>",
        ] {
            assert!(html.contains(stat), "{stat}");
        }
        assert!(html.contains("active users <span class=\"m\">max 2,009</span>"));
        assert!(html.contains("p99 <span class=\"m\">max 49 ms</span>"));
    }

    #[test]
    fn count_axes_have_whole_ticks_and_a_labelled_top() {
        let series: Vec<Second> = (0..4)
            .map(|t| Second {
                t,
                requests: t % 3,
                p99_ms: 1130.0 * t as f64 / 3.0,
                ..Second::default()
            })
            .collect();
        let html = render(&series);
        let panels = panels(&html);
        let requests = labels(panels[0], "end");
        assert_eq!(requests, ["0", "1", "2"], "no 0.5 requests");
        let latency = labels(panels[1], "end");
        assert_eq!(
            latency.last().map(String::as_str),
            Some("1,500"),
            "{latency:?}"
        );
    }
}
