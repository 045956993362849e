//! The bench's written results: the README's results table, docs/benchmarks.md and an index
//! page linking every run's charts — each figure beside the machine's limit from the same
//! invocation and the original report's figure.

use serde_json::Value;

use super::{
    auth_cost, cost, faults,
    format::{Results, Row, int, ms, number, percent, show, verdict},
    presale, tracing_cost,
};

const START: &str = "<!-- bench:results:start -->";
const END: &str = "<!-- bench:results:end -->";

fn rows(results: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    let bare = number(results, "limits", "/results/bare_handler_limit_rps");
    let wrk = number(results, "limits", "/results/bare_handler_rps_wrk");
    let generator = number(results, "limits", "/results/bare_handler_rps_generator");
    let pgbench = number(results, "limits", "/results/pgbench_n_tps");
    rows.push(Row {
        measure: "load generator vs wrk, bare axum handler".into(),
        this_system: show(generator, |g| format!("{} req/s", int(g))),
        limit: show(wrk, |w| format!("wrk {} req/s", int(w))),
        target: match (generator, wrk) {
            (Some(g), Some(w)) => format!(
                "≥ 70% of wrk: {} ({})",
                percent(g / w),
                verdict(Some(g / w >= 0.7))
            ),
            _ => "≥ 70% of wrk".into(),
        },
        original: "—",
    });

    let knee = number(results, "capacity", "/results/knee/requests_per_second");
    let half = number(results, "capacity", "/results/half_knee/p99_ms");
    rows.push(Row {
        measure: "issue-token + check-queue capacity (p99 ≤ 50 ms, < 1% errors)".into(),
        this_system: show(knee, |k| format!("{} req/s", int(k))),
        limit: show(bare, |b| format!("bare handler {} req/s", int(b))),
        target: match (knee, bare) {
            (Some(k), Some(b)) => format!(
                "≥ 30% of bare: {} ({})",
                percent(k / b),
                verdict(Some(k / b >= 0.3))
            ),
            _ => "≥ 30% of bare".into(),
        },
        original: "~3,000 req/s peak on 8 cores",
    });
    rows.push(Row {
        measure: "p99 at half that load".into(),
        this_system: show(half, ms),
        limit: String::new(),
        target: format!("≤ 10 ms ({})", verdict(half.map(|h| h <= 10.0))),
        original: "—",
    });

    for (run, label, original) in [
        (
            "queue-spike-10k",
            "queue spike, 10,000 users at 1,000/s",
            "~3,000 req/s, p95 up to 2,500 ms",
        ),
        (
            "queue-spike-50k",
            "queue spike, 50,000 users at 2,000/s",
            "~2,500 req/s falling, p95 > 3,000 ms",
        ),
    ] {
        let peak = number(results, run, "/summary/peak_requests_per_second");
        let p95 = number(results, run, "/summary/latency/p95_ms");
        let errors = number(results, run, "/summary/errors");
        let rss = number(results, run, "/services_peak_rss_mb/total");
        let is_big = run.ends_with("50k");
        let target = if is_big {
            format!(
                "0 errors, p95 ≤ 50 ms, RSS ≤ 256 MB ({})",
                verdict(match (errors, p95, rss) {
                    (Some(e), Some(p), Some(r)) => Some(e == 0.0 && p <= 50.0 && r <= 256.0),
                    _ => None,
                })
            )
        } else {
            String::new()
        };
        rows.push(Row {
            measure: label.into(),
            this_system: format!(
                "peak {} req/s, p95 {}, {} errors, services' RSS {}",
                show(peak, int),
                show(p95, ms),
                show(errors, int),
                show(rss, |r| format!("{r:.0} MB"))
            ),
            limit: show(bare, |b| format!("bare handler {} req/s", int(b))),
            target,
            original,
        });
    }

    let recovered = results
        .get("capacity")
        .and_then(|run| run.pointer("/results/overload/recovered_after_seconds"));
    let worst = number(results, "capacity", "/results/overload/worst_p99_ms");
    let after = |field: &str| match results
        .get("capacity")
        .and_then(|run| run.pointer(&format!("/results/overload/{field}")))
    {
        Some(Value::Number(n)) => format!("{n} s after"),
        _ => "not within the window".into(),
    };
    rows.push(Row {
        measure: "60 s at 2× capacity, then back to half".into(),
        this_system: match recovered {
            Some(_) => format!(
                "errors stopped {}, p99 back {} (5 s windows; worst p99 {})",
                after("errors_stopped_after_seconds"),
                after("p99_back_after_seconds"),
                show(worst, ms)
            ),
            None => "—".into(),
        },
        limit: String::new(),
        target: format!(
            "≤ 10 s ({})",
            verdict(recovered.map(|r| r.as_u64().is_some_and(|s| s <= 10)))
        ),
        original: "backlog took 40 min to clear",
    });

    let at_overload =
        |field: &str| number(results, "capacity", &format!("/results/overload/{field}"));
    let (served, shed) = (
        at_overload("served_during_overload"),
        at_overload("shed_during_overload"),
    );
    let (served_p99, shed_p99) = (
        at_overload("served_p99_during_overload_ms"),
        at_overload("shed_p99_during_overload_ms"),
    );
    rows.push(Row {
        measure: "the same 60 s at 2× capacity: served and shed answers".into(),
        this_system: format!(
            "{} served (p99 {}), {} shed with 503 (p99 {})",
            show(served, int),
            show(served_p99, ms),
            show(shed, int),
            show(shed_p99, ms)
        ),
        limit: String::new(),
        target: format!(
            "served p99 ≤ 50 ms, shed p99 < 5 ms ({})",
            verdict(match (served_p99, shed_p99, shed) {
                (Some(served), Some(shed), _) => Some(served <= 50.0 && shed < 5.0),
                // Nothing shed: the served requests alone decide.
                (Some(served), None, Some(0.0)) => Some(served <= 50.0),
                _ => None,
            })
        ),
        original: "—",
    });

    for (run, label, original) in [
        (
            "reserve-flow-7",
            "reservation flow, 7 users/s",
            "100–150 TPS, p95 spikes",
        ),
        (
            "reserve-flow-14",
            "reservation flow, 14 users/s",
            "200–250 TPS, then falls; 40 min backlog",
        ),
    ] {
        let rps = number(results, run, "/summary/requests_per_second");
        let p95 = number(results, run, "/summary/latency/p95_ms");
        let errors = number(results, run, "/summary/errors");
        let paid = number(results, run, "/results/paid");
        let arrived = number(results, run, "/results/arrivals/arrived");
        rows.push(Row {
            measure: label.into(),
            this_system: format!(
                "{} of {} users paid, {} req/s, p95 {}, {} errors",
                show(paid, int),
                show(arrived, int),
                show(rps, int),
                show(p95, ms),
                show(errors, int)
            ),
            limit: String::new(),
            target: "every user books, no backlog".into(),
            original,
        });
    }

    let holds = number(results, "holds-tracing-off", "/results/holds_per_second");
    rows.push(Row {
        measure: "seat holds through the gateway (32 users)".into(),
        this_system: format!(
            "{} holds/s, p99 {}, {} double bookings",
            show(holds, int),
            show(
                number(results, "holds-tracing-off", "/results/latency/p99_ms"),
                ms
            ),
            show(
                number(results, "holds-tracing-off", "/results/double_bookings"),
                int
            )
        ),
        limit: show(pgbench, |p| format!("pgbench -N {} tps", int(p))),
        target: match (holds, pgbench) {
            (Some(h), Some(p)) => format!(
                "≥ 60% of pgbench: {} ({})",
                percent(h / p),
                verdict(Some(h / p >= 0.6))
            ),
            _ => "≥ 60% of pgbench -N".into(),
        },
        original: "100–250 TPS",
    });
    let consistent = results
        .get("contention")
        .and_then(|run| run.pointer("/results/consistent"))
        .and_then(Value::as_bool);
    rows.push(Row {
        measure: "contention: many users, few seats".into(),
        this_system: format!(
            "{} sold, {} SEAT_TAKEN, {} sold twice",
            show(number(results, "contention", "/results/sold"), int),
            show(number(results, "contention", "/results/seat_taken"), int),
            show(number(results, "contention", "/results/sold_twice"), int),
        ),
        limit: String::new(),
        target: format!(
            "no seat sold twice, counts add up ({})",
            verdict(consistent)
        ),
        original: "—",
    });
    rows.extend(cost::rows(results));
    rows.extend(tracing_cost::tracing_rows(results));
    rows.extend(auth_cost::rows(results));
    rows.extend(presale::rows(results));
    rows.extend(faults::rows(results));
    rows
}

/// The README's results table (between its markers).
pub fn results_table(results: &Results) -> String {
    let mut out = String::from(
        "| measure | this system (2 cores) | this machine's limit, same run | target | original (8 cores) |\n|---|---|---|---|---|\n",
    );
    for row in rows(results) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.measure, row.this_system, row.limit, row.target, row.original
        ));
    }
    out
}

pub fn replace_between_markers(text: &str, table: &str) -> Option<String> {
    let start = text.find(START)? + START.len();
    let end = text.find(END)?;
    (start <= end).then(|| format!("{}\n{}{}", &text[..start], table, &text[end..]))
}

/// docs/benchmarks.md: the table, then each run's parameters, endpoints and the tracing
/// breakdown.
pub fn benchmarks_markdown(results: &Results, machine: &Value) -> String {
    let mut out = format!(
        "# Benchmarks\n\nWritten by `cargo xtask bench` (run {}, {} cores). Every run starts the system afresh on \
         its own ports and databases; the machine's limits are measured in the same invocation, so compare \
         ratios, not absolute figures, between machines. Charts: [docs/benchmarks/](benchmarks/index.html) \
         (one page per run: requests/s, latency percentiles and users over time).\n\n",
        machine["when"].as_str().unwrap_or("?"),
        machine["cores"]
    );
    out.push_str(&results_table(results));
    out.push_str(&cost::markdown(results));
    out.push_str(&tracing_cost::tracing_markdown(results));
    out.push_str(&auth_cost::markdown(results));
    out.push_str(&presale::markdown(results));
    out.push_str(&faults::markdown(results));
    out.push_str(&prequeue_draw());
    for (name, run) in results {
        out.push_str(&format!("\n## {name}\n\n"));
        out.push_str(&format!(
            "Parameters: `{}` — [charts](benchmarks/{name}/charts.html), [summary](benchmarks/{name}/summary.json), [per second](benchmarks/{name}/series.csv)\n\n",
            run["parameters"]
        ));
        if let Some(endpoints) = run.pointer("/summary/endpoints").and_then(Value::as_object)
            && !endpoints.is_empty()
        {
            out.push_str("| endpoint | requests | errors | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|---|\n");
            for (endpoint, stats) in endpoints {
                let errors: f64 = stats["errors"]
                    .as_object()
                    .map(|e| e.values().filter_map(Value::as_f64).sum())
                    .unwrap_or(0.0);
                let latency = |q: &str| show(stats["latency"][q].as_f64(), ms);
                out.push_str(&format!(
                    "| {endpoint} | {} | {} | {} | {} | {} | {} |\n",
                    show(stats["requests"].as_f64(), int),
                    int(errors),
                    latency("p50_ms"),
                    latency("p95_ms"),
                    latency("p99_ms"),
                    latency("max_ms"),
                ));
            }
        }
        out.push_str(&format!("\nResults: `{}`\n", run["results"]));
        if let Some(memory) = run.get("services_peak_rss_mb") {
            out.push_str(&format!("\nServices' peak RSS (MB): `{memory}`\n"));
        }
        if let Some(breakdown) = run.get("breakdown") {
            out.push_str(&breakdown_markdown(breakdown));
        }
    }
    out
}

/// Where the time went, from the spans the services exported during the run.
fn breakdown_markdown(breakdown: &Value) -> String {
    let mut out = format!(
        "\nWhere the time went ({} spans in {} traces; self time = not covered by child spans):\n\n\
         | span | count | p50 | p99 | self p50 | self p99 |\n|---|---|---|---|---|---|\n",
        breakdown["spans"], breakdown["traces"]
    );
    for row in breakdown["by_name"]
        .as_array()
        .into_iter()
        .flatten()
        .take(25)
    {
        let at = |p: &str| show(row.pointer(p).and_then(Value::as_f64), ms);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row["name"].as_str().unwrap_or("?"),
            row["count"],
            at("/duration/p50_ms"),
            at("/duration/p99_ms"),
            at("/self_time/p50_ms"),
            at("/self_time/p99_ms"),
        ));
    }
    out.push('\n');
    for path in breakdown["slowest"].as_array().into_iter().flatten() {
        let hops: Vec<String> = path["hops"]
            .as_array()
            .into_iter()
            .flatten()
            .take(3)
            .filter_map(|hop| {
                Some(format!(
                    "{:.1} ms in {}",
                    hop[1].as_f64()?,
                    hop[0].as_str()?
                ))
            })
            .collect();
        out.push_str(&format!(
            "- {} p99 {}: {}\n",
            path["root"].as_str().unwrap_or("?"),
            show(path["p99_ms"].as_f64(), ms),
            hops.join(", ")
        ));
    }
    out
}

/// A page linking every run's charts.
pub fn index_html(results: &Results) -> String {
    let mut links = String::new();
    for name in results.keys() {
        links.push_str(&format!(
            "<li><a href=\"{name}/charts.html\">{name}</a> — <a href=\"{name}/summary.json\">summary</a>, <a href=\"{name}/series.csv\">per second</a></li>\n"
        ));
    }
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>ticketing benchmarks</title>\
         <body style=\"font-family:system-ui,sans-serif;max-width:60em;margin:2em auto\">\
         <h1>Benchmark runs</h1><ul>\n{links}</ul></body>\n"
    )
}

/// docs/benchmarks.md's section on the pre-queue's draw with a million entrants: the table the
/// queue's `draw` benchmark last wrote (a separate, minutes-long run, not part of this one).
fn prequeue_draw() -> String {
    let table =
        std::fs::read_to_string(crate::process::root().join("docs/benchmarks/prequeue-draw.md"))
            .unwrap_or_else(|_| {
                "Not measured yet: run `cargo bench -p queue --bench draw`.\n".to_owned()
            });
    format!(
        "\n## The pre-queue's draw, 1,000,000 entrants\n\n\
         The order is drawn as each fan joins (a secret uniform score, `services/queue/lua/issue.lua`), \
         so nothing moves at the opening instant; the alternative, drawing in one script at the \
         opening, would stop Redis for everyone for as long as the last row says.\n\n{table}"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::{replace_between_markers, results_table};

    #[test]
    fn the_table_replaces_only_what_sits_between_the_markers() {
        let text = "a\n<!-- bench:results:start -->\nold\n<!-- bench:results:end -->\nb\n";
        let out = replace_between_markers(text, "new\n").unwrap();
        assert_eq!(
            out,
            "a\n<!-- bench:results:start -->\nnew\n<!-- bench:results:end -->\nb\n"
        );
        assert!(replace_between_markers("no markers", "x").is_none());
    }

    #[test]
    fn ratios_and_verdicts_come_from_the_same_run() {
        let mut results = BTreeMap::new();
        results.insert(
            "limits",
            json!({"results": {"pgbench_n_tps": 1000.0, "bare_handler_limit_rps": 10000.0}}),
        );
        results.insert(
            "holds-tracing-off",
            json!({"results": {"holds_per_second": 500.0}}),
        );
        let table = results_table(&results);
        assert!(
            table.contains("≥ 60% of pgbench: 50% (**missed**)"),
            "{table}"
        );
        assert!(table.contains("pgbench -N 1,000 tps"), "{table}");
    }
}
