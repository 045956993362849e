//! One panel drawn by `plotters` into an SVG document (a String): grid, axes, tick labels, the
//! lines, and where each second sits (for the page's hover bands).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::numbers;
use super::panels::Panel;

/// Plotters draws on whole units: drawing at twice the size the page shows keeps each point's
/// rounding under half a screen pixel, so straight runs look straight.
const SCALE: u32 = 2;
/// The SVG's coordinate system (it scales to the page's width, about 1000 × 250 px).
pub const WIDTH: u32 = 1000 * SCALE;
pub const HEIGHT: u32 = 250 * SCALE;
/// Draw a marker on every point when there are at most this many (a lone point has no line).
const MARKER_LIMIT: usize = 40;
/// At most this many labels (and gridlines) on the time axis and on the y axis.
const X_LABELS: usize = 11;
const Y_LABELS: usize = 6;

const GRID: RGBColor = RGBColor(0xe9, 0xec, 0xf0);
const AXIS: RGBColor = RGBColor(0xbc, 0xc4, 0xcd);
const LABEL: RGBColor = RGBColor(0x7b, 0x87, 0x94);
const UNIT: RGBColor = RGBColor(0x52, 0x60, 0x6d);
const NO_DATA: RGBColor = RGBColor(0x9a, 0xa5, 0xb1);

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A drawn panel.
pub struct Plot {
    pub svg: String,
    /// The plot area's top and bottom, as fractions of the SVG's height.
    pub top: f64,
    pub bottom: f64,
    /// Each second's hover band: where it starts and ends, as fractions of the SVG's width.
    /// Bands meet halfway between seconds and together cover the plot area's width.
    pub bands: Vec<(f64, f64)>,
}

/// Draws `panel`, whose lines hold one value per element of `times` (ascending seconds); no
/// times draw the axes and "no data".
pub fn draw(panel: &Panel, times: &[u64]) -> anyhow::Result<Plot> {
    let mut svg = String::new();
    let (top, bottom, bands) = {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let geometry = match (times.first(), times.last()) {
            (Some(&first), Some(&last)) => draw_lines(&root, panel, times, first, last)?,
            _ => draw_no_data(&root, panel)?,
        };
        root.present()?;
        geometry
    };
    Ok(Plot {
        svg,
        top,
        bottom,
        bands,
    })
}

type Geometry = (f64, f64, Vec<(f64, f64)>);

fn draw_lines(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    times: &[u64],
    first: u64,
    last: u64,
) -> anyhow::Result<Geometry> {
    let (x_lo, x_hi) = (first as f64, last as f64);
    // A lone second sits in the middle of a two-second window.
    let (x_lo, x_hi) = if x_hi > x_lo {
        (x_lo, x_hi)
    } else {
        (x_lo - 1.0, x_lo + 1.0)
    };
    // Whole seconds only: never more labels than there are seconds in the window.
    let x_labels = X_LABELS.min(seconds_in(x_hi - x_lo));
    let max = panel.max();
    let y_labels = if panel.integer {
        // Counts: 0, 1, 2, ... rather than 0, 0.5, 1, ...
        Y_LABELS.min(seconds_in(max))
    } else {
        Y_LABELS
    };
    let y_top = y_top(max, y_labels);

    let mut chart = builder(root).build_cartesian_2d(x_lo..x_hi, 0.0..y_top)?;
    let x_label = |v: &f64| numbers::tick(*v);
    let y_label = |v: &f64| numbers::tick(*v);
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS)
        .set_all_tick_mark_size(4 * SCALE)
        .x_labels(x_labels)
        .y_labels(y_labels)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style(font(13.0, LABEL))
        .axis_desc_style(font(13.0, UNIT))
        .x_desc("time (s)")
        .y_desc(panel.unit)
        .draw()?;

    let xs: Vec<f64> = times.iter().map(|&t| t as f64).collect();
    for line in &panel.lines {
        let points: Vec<(f64, f64)> = xs
            .iter()
            .copied()
            .zip(line.values.iter().copied())
            .collect();
        if line.fill && points.len() > 1 {
            chart.draw_series(AreaSeries::new(
                points.iter().copied(),
                0.0,
                line.color.mix(0.08),
            ))?;
        }
        // Lines and gridlines keep their width on screen, whatever the scale (the page's CSS
        // gives them `vector-effect: non-scaling-stroke`).
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            line.color.stroke_width(2),
        ))?;
        if points.len() <= MARKER_LIMIT {
            chart.draw_series(points.iter().map(|&p| {
                EmptyElement::at(p)
                    + Circle::new((0, 0), 3 * SCALE, WHITE.filled())
                    + Circle::new((0, 0), 3 * SCALE, line.color.stroke_width(3))
            }))?;
        }
    }
    Ok(geometry(&chart, &xs))
}

fn draw_no_data(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
) -> anyhow::Result<Geometry> {
    let mut chart = builder(root).build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .axis_style(AXIS)
        .set_all_tick_mark_size(4 * SCALE)
        .x_labels(0)
        .y_labels(0)
        .axis_desc_style(font(13.0, UNIT))
        .x_desc("time (s)")
        .y_desc(panel.unit)
        .draw()?;
    let centred = font(18.0, NO_DATA).pos(Pos::new(HPos::Center, VPos::Center));
    chart.draw_series(std::iter::once(Text::new("no data", (0.5, 0.5), centred)))?;
    Ok(geometry(&chart, &[]))
}

/// The panel's margins and label areas, the same for every panel so their time axes line up.
fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .margin_top(12 * SCALE)
        .margin_right(18 * SCALE)
        .x_label_area_size(42 * SCALE)
        .y_label_area_size(70 * SCALE);
    builder
}

/// Text shown `px` pixels high: plotters writes `size / 1.24` as the SVG font size.
fn font(px: f64, color: RGBColor) -> TextStyle<'static> {
    ("sans-serif", px * f64::from(SCALE) * 1.24)
        .into_font()
        .color(&color)
}

/// How many whole units fit in `0..=span` (at least 2, so an axis has both ends).
fn seconds_in(span: f64) -> usize {
    if span.is_finite() && span >= 1.0 {
        (span.ceil() as usize).saturating_add(1)
    } else {
        2
    }
}

/// The top of a y axis from 0 that must fit `max`, on one of plotters' own tick values so the
/// top gridline is labelled: `max` itself when plotters puts a tick there, else the next tick
/// after plotters' ticks for `0..max` with one label fewer. Plotters then finds at most
/// `labels` ticks on `0..top`, with a step that divides `top`.
fn y_top(max: f64, labels: usize) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let ticks = |labels: usize| RangedCoordf64::from(0.0..max).key_points(labels.max(2));
    if ticks(labels).last().is_some_and(|&last| last >= max) {
        return max;
    }
    match ticks(labels.saturating_sub(1))[..] {
        [.., b] if b >= max => b,
        [.., a, b] if b > a => b + (b - a),
        _ => max,
    }
}

/// The plot area and each second's hover band, as fractions of the SVG's size.
fn geometry(chart: &Chart<'_, '_>, xs: &[f64]) -> Geometry {
    let (px, py) = chart.plotting_area().get_pixel_range();
    let (w, h) = (f64::from(WIDTH), f64::from(HEIGHT));
    let (left, right) = (f64::from(px.start), f64::from(px.end));
    let centres: Vec<f64> = xs
        .iter()
        .map(|&x| f64::from(chart.backend_coord(&(x, 0.0)).0))
        .collect();
    let bands = (0..centres.len())
        .map(|i| {
            let from = if i == 0 {
                left
            } else {
                (centres[i - 1] + centres[i]) / 2.0
            };
            let to = centres
                .get(i + 1)
                .map_or(right, |next| (centres[i] + next) / 2.0);
            (from / w, to.max(from) / w)
        })
        .collect();
    (f64::from(py.start) / h, f64::from(py.end) / h, bands)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y_top_is_the_first_labelled_tick_at_or_above_the_max() {
        assert_eq!(y_top(4_352.0, 6), 5_000.0);
        assert_eq!(y_top(1_130.0, 6), 1_500.0);
        assert_eq!(y_top(44.5, 6), 50.0);
        assert_eq!(y_top(50.0, 6), 50.0);
        // As the panels ask: latency axes 6 labels, count axes no more than whole counts.
        let latencies = [0.003, 0.7, 3.0, 7.0, 44.5, 99.0, 1_130.0, 1e15].map(|m| (m, Y_LABELS));
        let counts = [1.0, 2.0, 3.0, 5.0, 7.0, 99.0, 1_985.0, 49_763.0]
            .map(|m| (m, Y_LABELS.min(seconds_in(m))));
        for (max, labels) in latencies.into_iter().chain(counts) {
            let top = y_top(max, labels);
            let ticks = RangedCoordf64::from(0.0..top).key_points(labels);
            assert!(top >= max, "{max}: {top}");
            assert!(top <= max * 5.0, "{max}: {top} not far above");
            assert!(ticks.len() <= labels, "{max}: {ticks:?}");
            assert!(
                ticks.last().is_some_and(|&t| (t - top).abs() <= top * 1e-9),
                "{max} with {labels}: top {top} labelled in {ticks:?}"
            );
        }
    }

    #[test]
    fn y_top_of_nothing_or_nonsense_is_one() {
        for max in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            assert_eq!(y_top(max, 6), 1.0, "{max}");
        }
    }

    #[test]
    fn an_axis_never_asks_for_more_labels_than_whole_units() {
        assert_eq!(seconds_in(0.0), 2);
        assert_eq!(seconds_in(2.0), 3);
        assert_eq!(seconds_in(2.2), 4);
        assert_eq!(seconds_in(f64::NAN), 2);
    }
}
