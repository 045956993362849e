//! A run's outcome and the folder it is written to: `summary.json` (parameters, results,
//! per-endpoint latency, the tracing breakdown when spans were collected), `series.csv` (one
//! row per second) and `charts.html` (requests/s, latency percentiles and users over time).

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::{charts, recorder::Summary, series::Second, spans::Breakdown};

#[derive(Serialize, Debug)]
pub struct Run {
    pub scenario: &'static str,
    pub parameters: Value,
    pub results: Value,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
    #[serde(skip)]
    pub series: Vec<Second>,
}

impl Run {
    /// Writes the run's folder (created if missing).
    pub fn write(&self, folder: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        std::fs::write(
            folder.join("summary.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(folder.join("series.csv"), charts::to_csv(&self.series))?;
        let subtitle = format!(
            "{} requests, {:.0}/s (peak {}/s), p95 {:.1} ms, p99 {:.1} ms, {} errors — parameters {}",
            self.summary.requests,
            self.summary.requests_per_second,
            self.summary.peak_requests_per_second,
            self.summary.latency.p95_ms,
            self.summary.latency.p99_ms,
            self.summary.errors,
            self.parameters
        );
        std::fs::write(
            folder.join("charts.html"),
            charts::render_html(self.scenario, &subtitle, &self.series),
        )?;
        Ok(())
    }
}
