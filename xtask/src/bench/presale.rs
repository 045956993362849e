//! The presale run (`loadtest presale`, a scheduled opening): its README row and
//! docs/benchmarks.md's "Presale" section.

use serde_json::Value;

use super::format::{Results, Row, checks_markdown, int, ms, number, show, verdict};

/// The bench's presale run.
pub const RUN: &str = "presale-20k";

fn seconds(value: f64) -> String {
    format!("{value:.1} s")
}

/// The checks that failed, or `None` when the run reported none.
fn failed_checks(run: &Value) -> Option<Vec<String>> {
    let failed = run.pointer("/results/checks_failed")?.as_array()?;
    Some(
        failed
            .iter()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect(),
    )
}

pub fn rows(results: &Results) -> Vec<Row> {
    let Some(run) = results.get(RUN) else {
        return Vec::new();
    };
    let at = |pointer: &str| number(results, RUN, pointer);
    let failed = failed_checks(run);
    vec![Row {
        measure: format!(
            "presale: {} fans join the pre-queue, {} seats",
            show(at("/parameters/fans"), int),
            show(at("/results/seats"), int)
        ),
        this_system: format!(
            "{} joins/s; {} admitted in {}, sold out in {}; check-queue p99 {}, {} errors",
            show(at("/results/joins_per_second"), int),
            show(at("/results/admitted"), int),
            show(at("/results/room_seconds_to_admit_all"), seconds),
            show(at("/results/seconds_to_sell_out"), seconds),
            show(at("/results/check_queue_ms/p99"), ms),
            show(at("/results/errors"), int),
        ),
        limit: String::new(),
        target: format!(
            "admitted in draw order, nobody overtakes the pre-queue, sold out, the rest told SOLD_OUT ({})",
            verdict(failed.as_ref().map(Vec::is_empty))
        ),
        original: "—",
    }]
}

/// docs/benchmarks.md's section: what the run did, its figures and every check.
pub fn markdown(results: &Results) -> String {
    let Some(run) = results.get(RUN) else {
        return String::new();
    };
    let at = |pointer: &str| number(results, RUN, pointer);
    let text = |pointer: &str| {
        run.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("—")
            .to_owned()
    };
    let mut out = format!(
        "\n## Presale\n\n\
         A scheduled opening (`loadtest presale`, on a system seeded with a presale concert): the \
         run sets the concert's own room to open its pre-queue a second later and the sale {} s \
         later, {} admissions/s up to {} active. {} fans arrive over the pre-queue window and join \
         (PREQUEUE), {} more join after the opening; each polls as `pollAfterSeconds` advises. \
         The doors stay shut over the opening until every pre-queue fan has seen its place in \
         the draw (so those places are exact; {} s at most), then admitted fans book one seat each: free \
         seats, hold a random one (another on SEAT_TAKEN), top up, pay. Times are from the doors \
         opening.\n\n\
         | figure | value |\n|---|---|\n",
        show(at("/parameters/prequeue_secs"), int),
        show(at("/parameters/admission_rate"), int),
        show(at("/parameters/active_cap"), int),
        show(at("/parameters/fans"), int),
        show(at("/parameters/late_fans"), int),
        show(at("/parameters/hold_secs"), int),
    );
    let rows = [
        (
            "pre-queue joins",
            format!(
                "{} joined, {} joins/s",
                show(at("/results/joined"), int),
                show(at("/results/joins_per_second"), int)
            ),
        ),
        (
            "opening (opensAt)",
            format!(
                "{}; doors opened {} later",
                text("/results/opening/opens_at"),
                show(at("/results/opening/doors_opened_after_seconds"), seconds)
            ),
        ),
        (
            "admitted",
            format!(
                "{}; the room's last admission {} after the doors opened, the last fan to see ACTIVE {} after",
                show(at("/results/admitted"), int),
                show(at("/results/room_seconds_to_admit_all"), seconds),
                show(at("/results/seconds_to_admit_all"), seconds)
            ),
        ),
        (
            "sold out",
            format!(
                "{} of {} seats paid by fans, the last {} after the doors opened",
                show(at("/results/paid"), int),
                show(at("/results/seats"), int),
                show(at("/results/seconds_to_sell_out"), seconds)
            ),
        ),
        (
            "fans told SOLD_OUT (seatsMayReturn false)",
            format!(
                "{}; {} still waiting at the end, {} failed, {} lost their place{}",
                show(at("/results/told_sold_out"), int),
                show(at("/results/still_waiting_at_end"), int),
                show(at("/results/failed_journeys"), int),
                show(at("/results/lost_place"), int),
                match (
                    at("/results/lost_place_after_silence_seconds/min"),
                    at("/results/lost_place_after_silence_seconds/max"),
                ) {
                    (Some(low), Some(high)) => format!(
                        " (told so after {} to {} without an answered poll)",
                        seconds(low),
                        seconds(high)
                    ),
                    _ => String::new(),
                }
            ),
        ),
        (
            "requests, errors",
            format!(
                "{}, {}",
                show(at("/results/requests"), int),
                show(at("/results/errors"), int)
            ),
        ),
        (
            "check-queue p50 / p99",
            format!(
                "{} / {}",
                show(at("/results/check_queue_ms/p50"), ms),
                show(at("/results/check_queue_ms/p99"), ms)
            ),
        ),
    ];
    for (figure, value) in rows {
        out.push_str(&format!("| {figure} | {value} |\n"));
    }
    out.push_str(&checks_markdown(run));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    #[test]
    fn the_row_and_section_show_the_figures_and_every_check() {
        let mut results = BTreeMap::new();
        assert!(super::rows(&results).is_empty());
        assert_eq!(super::markdown(&results), "");
        results.insert(
            super::RUN,
            json!({
                "parameters": {"fans": 20000, "late_fans": 300, "prequeue_secs": 30, "hold_secs": 10,
                               "admission_rate": 200.0, "active_cap": 1000},
                "results": {
                    "seats": 2000, "joined": 20300, "joins_per_second": 700.4,
                    "opening": {"opens_at": "2026-01-01T00:00:30Z", "doors_opened_after_seconds": 4.2},
                    "admitted": 2100, "seconds_to_admit_all": 20.0, "room_seconds_to_admit_all": 12.34, "paid": 2000,
                    "seconds_to_sell_out": 15.0, "told_sold_out": 18200,
                    "still_waiting_at_end": 0, "failed_journeys": 0, "lost_place": 0,
                    "requests": 90000, "errors": 0,
                    "check_queue_ms": {"p50": 1.25, "p99": 9.5},
                    "checks": {"sold_out": {"ok": true, "detail": "2000 seats: 2000 sold"},
                               "draw_order": {"ok": false, "detail": "1 out of order"}},
                    "checks_failed": ["draw_order"],
                },
            }),
        );
        let rows = super::rows(&results);
        assert_eq!(
            rows[0].this_system,
            "700 joins/s; 2,100 admitted in 12.3 s, sold out in 15.0 s; check-queue p99 9.5 ms, 0 errors"
        );
        assert!(
            rows[0].target.ends_with("(**missed**)"),
            "{}",
            rows[0].target
        );
        let markdown = super::markdown(&results);
        assert!(
            markdown
                .contains("| opening (opensAt) | 2026-01-01T00:00:30Z; doors opened 4.2 s later |"),
            "{markdown}"
        );
        assert!(markdown.contains("| sold out | 2,000 of 2,000 seats paid by fans, the last 15.0 s after the doors opened |"));
        assert!(markdown.contains("- `draw_order`: **FAILED** — 1 out of order"));
        assert!(markdown.contains("- `sold_out`: ok — 2000 seats: 2000 sold"));
    }
}
