//! A run's time series as a self-contained HTML page of charts, and as CSV.
//!
//! The page has no scripts and loads nothing: three panels that share the time axis (requests
//! and errors per second, response-time percentiles, active users), the same panels a Locust
//! report shows, each an inline SVG drawn by `plotters`. Hovering a second anywhere shows that
//! second's numbers (a `title` on a transparent band over the chart: plotters' SVG backend
//! cannot attach hover text itself). The same numbers are in the CSV.
//!
//! - [`page`]: the HTML around the charts (headline numbers, legends, hover bands).
//! - [`panels`]: what each panel shows, and how bad samples are drawn.
//! - [`plot`]: one panel drawn by plotters.
//! - [`numbers`]: how numbers are written (thousands grouped by `num-format`).
//! - [`export`]: the CSV, written by the `csv` crate.

mod export;
mod numbers;
mod page;
mod panels;
mod plot;

pub use export::to_csv;
pub use page::render_html;
