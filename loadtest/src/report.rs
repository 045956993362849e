//! A run's outcome and the folder it is written to: `summary.json` (parameters, results,
//! per-endpoint latency, the tracing breakdown when spans were collected), `series.csv` (one
//! row per second) and `charts.html` (requests/s, latency percentiles and users over time).

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::{charts, recorder::Summary, series::Second, spans::Breakdown};

/// One correctness check's verdict. A run lists its checks by name in `results.checks` and
/// the names of the broken ones in `results.checks_failed`; one broken check fails the run
/// ([`Run::broken_check`]).
#[derive(Debug, Serialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

pub fn check(ok: bool, detail: String) -> Check {
    Check { ok, detail }
}

/// Prints each check on stderr under the scenario's name and answers the report's
/// `checks` (name → verdict) and `checks_failed` (the broken ones' names).
pub fn checks_report(
    scenario: &str,
    checks: &[(&'static str, Check)],
) -> (Value, Vec<&'static str>) {
    for (name, check) in checks {
        eprintln!(
            "{scenario}: check {name}: {} — {}",
            if check.ok { "ok" } else { "FAILED" },
            check.detail
        );
    }
    let verdicts: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, check)| ((*name).to_owned(), serde_json::json!(check)))
        .collect();
    let failed = checks
        .iter()
        .filter(|(_, check)| !check.ok)
        .map(|(name, _)| *name)
        .collect();
    (Value::Object(verdicts), failed)
}

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
    /// A correctness check the scenario found broken: a seat sold or held twice, availability
    /// that disagrees with the sales. A run with one fails, whatever its speed.
    pub fn broken_check(&self) -> Option<String> {
        let results = &self.results;
        if let Some(twice) = results["double_bookings"].as_u64().filter(|n| *n > 0) {
            return Some(format!("{twice} seats held twice"));
        }
        if let Some(twice) = results["sold_twice"].as_u64().filter(|n| *n > 0) {
            return Some(format!("{twice} seats sold twice"));
        }
        if let Some(failed) = results["checks_failed"]
            .as_array()
            .filter(|failed| !failed.is_empty())
        {
            let names: Vec<&str> = failed.iter().filter_map(|name| name.as_str()).collect();
            return Some(format!("checks failed: {}", names.join(", ")));
        }
        for check in ["availability_consistent", "consistent"] {
            if results[check] == false {
                return Some(format!("{check} is false"));
            }
        }
        None
    }

    /// Writes the run's folder (created if missing).
    pub fn write(&self, folder: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        std::fs::write(
            folder.join("summary.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(folder.join("series.csv"), charts::to_csv(&self.series)?)?;
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
            charts::render_html(self.scenario, &subtitle, &self.series)?,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Run;
    use crate::recorder::Recorder;

    fn run(results: serde_json::Value) -> Run {
        Run {
            scenario: "test",
            parameters: json!({}),
            results,
            summary: Recorder::new().summary(),
            breakdown: None,
            series: Vec::new(),
        }
    }

    #[test]
    fn a_double_sale_or_inconsistent_availability_breaks_the_run() {
        assert_eq!(
            run(json!({"double_bookings": 0, "consistent": true})).broken_check(),
            None
        );
        assert!(run(json!({"double_bookings": 2})).broken_check().is_some());
        assert!(run(json!({"sold_twice": 1})).broken_check().is_some());
        assert!(
            run(json!({"availability_consistent": false}))
                .broken_check()
                .is_some()
        );
        assert!(run(json!({"consistent": false})).broken_check().is_some());
        assert_eq!(run(json!({"checks_failed": []})).broken_check(), None);
        assert_eq!(
            run(json!({"checks_failed": ["sold_out", "draw_order"]})).broken_check(),
            Some("checks failed: sold_out, draw_order".into())
        );
    }
}
