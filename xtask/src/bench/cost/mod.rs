//! What one request costs: the budgets, and the README rows that hold each request's total to
//! its budget (tracing off, as fast as the system answers: `cost-tracing-off` and
//! `holds-tracing-off`). The figures are read in `figures.rs`, docs/benchmarks.md's per-hop
//! tables written in `per_hop.rs`; what tracing adds is `tracing_cost.rs`.

mod figures;
mod per_hop;

pub(super) use figures::Figures;
pub(super) use per_hop::markdown;

use super::format::{Results, Row, int, micros, ms, number, show, verdict};
use figures::{FLOOR_PATH, Floor};

/// The closed-loop runs the budgets are judged on: the cost run, the holds run, the heading.
pub(super) const BUDGETED: (&str, &str, &str) = (
    "cost-tracing-off",
    "holds-tracing-off",
    "tracing off, as fast as answered",
);

/// What a request may cost: CPU in total over the processes on its path, and for some a rate
/// and a p99 at the run's concurrency.
struct Budget {
    total_us: f64,
    min_rps: Option<f64>,
    max_p99_ms: Option<f64>,
}

/// A request kind of the `cost` run: its key in `results.kinds`, its label, the processes on
/// its path (whose sum is its total) and its budget.
pub(super) struct Request {
    pub(super) kind: &'static str,
    label: &'static str,
    pub(super) path: &'static [&'static str],
    budget: Budget,
}

const fn total(total_us: f64) -> Budget {
    Budget {
        total_us,
        min_rps: None,
        max_p99_ms: None,
    }
}

pub(super) const REQUESTS: [Request; 5] = [
    Request {
        kind: "issue-token",
        label: "POST /queue/issue-token (new user)",
        path: &["gateway", "queue", "redis"],
        budget: total(100.0),
    },
    Request {
        kind: "check-queue",
        label: "GET /queue/check-queue",
        path: &["gateway", "queue", "redis"],
        budget: total(75.0),
    },
    Request {
        kind: "available-seats",
        label: "GET /api/concert/1/available-seats",
        path: &["gateway", "catalog", "reservation", "postgresql"],
        budget: Budget {
            total_us: 100.0,
            min_rps: Some(10_000.0),
            max_p99_ms: Some(20.0),
        },
    },
    Request {
        kind: "get-concerts",
        label: "GET /api/concert/get-concerts",
        path: &["gateway", "catalog", "postgresql"],
        budget: total(100.0),
    },
    Request {
        kind: "options-with-counts",
        label: "GET …/available-concert-options",
        path: &["gateway", "catalog", "reservation", "postgresql"],
        budget: total(100.0),
    },
];

/// A hold crosses three services: the gateway, the queue (the gateway asks it whether the
/// token is active, a Redis lookup) and reservation, which sends the deciding statement. Each
/// hop may add 60 µs to the statement's own cost; Redis's lookup counts against the queue's
/// allowance.
pub(super) const HOLD_HOPS: f64 = 3.0;
pub(super) const PER_HOP_US: f64 = 60.0;
pub(super) const HOLD_PATH: &[&str] = &["gateway", "queue", "reservation", "redis", "postgresql"];

/// PostgreSQL's µs per transaction of the hold statement and pgbench's clients, from the cost
/// run of the setting or else the tracing-off one (tracing does not reach pgbench).
pub(super) fn statement(
    results: &Results,
    cost_run: &str,
) -> Option<(f64, Option<f64>, Option<f64>)> {
    [cost_run, "cost-tracing-off"].iter().find_map(|run| {
        let us = number(
            results,
            run,
            "/results/hold_statement/cpu/by_process/postgresql/us_per_request",
        )?;
        Some((
            us,
            number(results, run, "/results/hold_statement/clients"),
            number(results, run, "/results/hold_statement/tps"),
        ))
    })
}

pub(super) fn hold_budget(statement_us: f64) -> f64 {
    statement_us + HOLD_HOPS * PER_HOP_US
}

/// For a queue-pair request: its hops with nothing of ours in them, and the same hops carrying
/// the queue's store doing its work.
fn floors(results: &Results, cost_run: &str, request: &Request) -> String {
    if request.path != FLOOR_PATH {
        return String::new();
    }
    let mut limits = Vec::new();
    if let Some(floor) = Figures::of_floor(results, cost_run, Floor::FlatOut) {
        limits.push(format!(
            "the same hops with nothing of ours in them: {}",
            floor.total_with_floor_parts()
        ));
    }
    if let Some(floor) = Figures::of_floor(results, cost_run, Floor::WithStore(request.kind)) {
        limits.push(format!(
            "carrying the queue's store (its script and its Rust) and nothing else of ours: {}",
            floor.total_with_floor_parts()
        ));
    }
    limits.join("; ")
}

/// The README rows: each request's total under tracing off against its budget.
pub(super) fn rows(results: &Results) -> Vec<Row> {
    let (cost_run, holds_run, _) = BUDGETED;
    let mut rows = Vec::new();
    if results.contains_key(cost_run) {
        for request in &REQUESTS {
            let figures = Figures::of_kind(results, cost_run, request.kind);
            let total = figures.as_ref().and_then(|f| f.total(request.path));
            let budget = &request.budget;
            let mut target = format!("≤ {} total", micros(budget.total_us));
            let mut met = total.map(|t| t <= budget.total_us);
            let rps = figures.as_ref().and_then(|f| f.rps);
            let p99 = figures.as_ref().and_then(|f| f.p99_ms);
            if let Some(min) = budget.min_rps {
                target.push_str(&format!(", ≥ {} req/s", int(min)));
                met = both(met, rps.map(|r| r >= min));
            }
            if let Some(max) = budget.max_p99_ms {
                target.push_str(&format!(", p99 ≤ {}", ms(max)));
                met = both(met, p99.map(|p| p <= max));
            }
            rows.push(Row {
                measure: format!("CPU per request: {}", request.label),
                this_system: match &figures {
                    Some(f) => format!(
                        "{} at {} req/s, p99 {}",
                        f.total_with_parts(request.path),
                        show(rps, int),
                        show(p99, ms)
                    ),
                    None => "—".into(),
                },
                limit: floors(results, cost_run, request),
                target: format!("{target} ({})", verdict(met)),
                original: "—",
            });
        }
    }
    let statement = statement(results, cost_run);
    if results.contains_key(holds_run) || statement.is_some() {
        let figures = Figures::of_holds(results, holds_run);
        let total = figures.as_ref().and_then(|f| f.total(HOLD_PATH));
        let budget = statement.map(|(us, _, _)| hold_budget(us));
        rows.push(Row {
            measure: "CPU per request: POST /api/reserve (a hold)".into(),
            this_system: match &figures {
                Some(f) => format!(
                    "{} at {} attempts/s",
                    f.total_with_parts(HOLD_PATH),
                    show(f.rps, int)
                ),
                None => "—".into(),
            },
            limit: {
                let mut limit = match statement {
                    Some((us, clients, tps)) => format!(
                        "its statement alone: PostgreSQL {} (pgbench, {} clients, {} tps)",
                        micros(us),
                        show(clients, int),
                        show(tps, int)
                    ),
                    None => String::new(),
                };
                if let Some(floor) = Figures::of_floor(results, cost_run, Floor::AtHoldsRate) {
                    limit.push_str(&format!(
                        "; two bare hops at its rate: {}",
                        floor.total_with_floor_parts()
                    ));
                }
                limit
            },
            target: format!(
                "≤ statement + {} × {}: {} ({})",
                HOLD_HOPS,
                micros(PER_HOP_US),
                show(budget, micros),
                verdict(match (total, budget) {
                    (Some(t), Some(b)) => Some(t <= b),
                    _ => None,
                })
            ),
            original: "—",
        });
    }
    rows
}

/// Met only when every part is; unknown when any part is.
pub(super) fn both(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    Some(a? && b?)
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::rows;

    pub(in crate::bench) fn cpu(parts: &[(&str, f64)], load_generator: f64) -> Value {
        let by_process: serde_json::Map<String, Value> = parts
            .iter()
            .map(|(name, us)| ((*name).to_owned(), json!({"us_per_request": us})))
            .collect();
        json!({"by_process": by_process, "load_generator": {"us_per_request": load_generator}})
    }

    pub(super) fn fixture() -> BTreeMap<&'static str, Value> {
        let mut results = BTreeMap::new();
        results.insert(
            "cost-tracing-off",
            json!({
                "parameters": {"connections": 64, "seconds": 10.0},
                "results": {
                    "kinds": {
                        "issue-token": {
                            "requests_per_second": 7600.0, "errors": 0,
                            "latency": {"p50_ms": 8.0, "p99_ms": 20.0},
                            "cpu": cpu(&[("gateway", 74.0), ("queue", 73.0), ("redis", 66.0),
                                         ("catalog", 2.0), ("postgresql", 1.0)], 90.0),
                        },
                        "available-seats": {
                            "requests_per_second": 12000.0, "errors": 3,
                            "latency": {"p50_ms": 4.0, "p99_ms": 15.0},
                            "cpu": cpu(&[("gateway", 40.0), ("catalog", 30.0),
                                         ("reservation", 20.0), ("postgresql", 5.0)], 30.0),
                        },
                    },
                    "floor": {
                        "requests_per_second": 20000.0, "errors": 0,
                        "latency": {"p50_ms": 2.0, "p99_ms": 5.0},
                        "cpu": cpu(&[("bare-relay", 20.0), ("bare-grpc", 18.0), ("redis", 12.0)], 10.0),
                    },
                    "floor_at_holds_rate": {
                        "requests_per_second": 1900.0, "errors": 0,
                        "latency": {"p50_ms": 0.5, "p99_ms": 1.0},
                        "cpu": cpu(&[("bare-relay", 60.0), ("bare-grpc", 50.0), ("redis", 19.0)], 40.0),
                    },
                    "floor_with_store": {
                        "issue-token": {
                            "requests_per_second": 15000.0, "errors": 0,
                            "latency": {"p50_ms": 3.0, "p99_ms": 6.0},
                            "cpu": cpu(&[("bare-relay", 21.0), ("bare-grpc", 26.0), ("redis", 40.0)], 12.0),
                        },
                    },
                    "hold_statement": {
                        "clients": 32, "tps": 4000.0,
                        "cpu": cpu(&[("postgresql", 150.0), ("gateway", 0.5)], 1.0),
                    },
                },
            }),
        );
        results.insert(
            "holds-tracing-off",
            json!({"results": {
                "attempts_per_second": 1900.0, "errors": {"503": 2, "timeout": 1},
                "latency": {"p50_ms": 14.0, "p99_ms": 74.0},
                "cpu": cpu(&[("gateway", 140.0), ("queue", 96.0), ("reservation", 137.0),
                             ("redis", 20.0), ("postgresql", 100.0), ("catalog", 1.6)], 50.0),
            }}),
        );
        results
    }

    #[test]
    fn totals_are_held_to_their_budgets_over_the_path_only() {
        let rows: BTreeMap<String, (String, String, String)> = rows(&fixture())
            .into_iter()
            .map(|row| (row.measure, (row.this_system, row.limit, row.target)))
            .collect();
        let issue = &rows["CPU per request: POST /queue/issue-token (new user)"];
        assert_eq!(
            issue.0, "213 µs (gateway 74, queue 73, Redis 66) at 7,600 req/s, p99 20.0 ms",
            "catalog's and PostgreSQL's background is off the path"
        );
        assert_eq!(issue.2, "≤ 100 µs total (**missed**)");
        assert_eq!(
            issue.1,
            "the same hops with nothing of ours in them: 50 µs (relay 20, gRPC server 18, Redis 12); \
             carrying the queue's store (its script and its Rust) and nothing else of ours: 87 µs \
             (relay 21, gRPC server 26, Redis 40)",
            "the queue pair's floors beside its total"
        );
        let seats = &rows["CPU per request: GET /api/concert/1/available-seats"];
        assert_eq!(seats.1, "", "another path: no floor");
        assert_eq!(
            seats.2,
            "≤ 100 µs total, ≥ 10,000 req/s, p99 ≤ 20.0 ms (met)"
        );
        // Not in the fixture: shown, not judged.
        let concerts = &rows["CPU per request: GET /api/concert/get-concerts"];
        assert_eq!(concerts.0, "—");
        assert_eq!(concerts.2, "≤ 100 µs total (not measured)");
        // Hold: 140 + 96 + 137 + 20 + 100 = 493 against 150 + 3 × 60 = 330.
        let hold = &rows["CPU per request: POST /api/reserve (a hold)"];
        assert!(hold.0.starts_with("493 µs (gateway 140, queue 96, reservation 137, Redis 20, PostgreSQL 100) at 1,900 attempts/s"), "{}", hold.0);
        assert_eq!(
            hold.1,
            "its statement alone: PostgreSQL 150 µs (pgbench, 32 clients, 4,000 tps); two bare hops at its rate: 129 µs (relay 60, gRPC server 50, Redis 19)"
        );
        assert_eq!(hold.2, "≤ statement + 3 × 60 µs: 330 µs (**missed**)");
        assert!(super::rows(&BTreeMap::new()).is_empty());
    }
}
