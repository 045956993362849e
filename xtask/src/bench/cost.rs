//! What one request costs, per hop: docs/benchmarks.md's per-hop tables (every process's CPU
//! per request, as fast as the system answers, from `cost-tracing-off` and
//! `holds-tracing-off`) and the README rows that hold each request's total to its budget.
//! What tracing adds to it is `tracing_cost.rs`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    format::{Results, Row, int, micros, ms, number, show, verdict},
    tracing_cost::TRACED,
};

/// The measured processes: the key in a run's `cpu.by_process`, and the column header.
const PROCESSES: [(&str, &str); 6] = [
    ("gateway", "gateway"),
    ("queue", "queue"),
    ("catalog", "catalog"),
    ("reservation", "reservation"),
    ("redis", "Redis"),
    ("postgresql", "PostgreSQL"),
];

/// The closed-loop runs the budgets are judged on: the cost run, the holds run, the heading.
const BUDGETED: (&str, &str, &str) = (
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
const HOLD_HOPS: f64 = 3.0;
const PER_HOP_US: f64 = 60.0;
pub(super) const HOLD_PATH: &[&str] = &["gateway", "queue", "reservation", "redis", "postgresql"];

/// The floor's bare processes and the columns of the services they stand in for.
const FLOOR_STANDS_FOR: [(&str, &str); 2] = [("bare-relay", "gateway"), ("bare-grpc", "queue")];
/// The floor's path, in those columns.
const FLOOR_PATH: &[&str] = &["gateway", "queue", "redis"];
const FLOOR_LABEL: &str = "floor of that path: bare relay → bare gRPC server → one Redis script";

/// The floor measured flat out (against the queue pair), or at the holds' rate and users.
#[derive(Clone, Copy)]
enum Floor {
    FlatOut,
    AtHoldsRate,
}

impl Floor {
    fn pointer(self) -> &'static str {
        match self {
            Floor::FlatOut => "/results/floor",
            Floor::AtHoldsRate => "/results/floor_at_holds_rate",
        }
    }
}

/// One row's figures.
pub(super) struct Figures {
    rps: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    errors: Option<f64>,
    /// µs per request by process key.
    cpu: BTreeMap<&'static str, f64>,
    load_generator: Option<f64>,
}

impl Figures {
    /// From a run's figures at `base`: `rps` and `errors` are the pointers that hold them.
    fn read(run: &Value, base: &str, rps: &str, errors: &str) -> Self {
        let at = |pointer: &str| run.pointer(&format!("{base}{pointer}"));
        let cpu = PROCESSES
            .iter()
            .filter_map(|(key, _)| {
                let us = at(&format!("/cpu/by_process/{key}/us_per_request"))?.as_f64()?;
                Some((*key, us))
            })
            .collect();
        Self {
            rps: at(rps).and_then(Value::as_f64),
            p50_ms: at("/latency/p50_ms").and_then(Value::as_f64),
            p99_ms: at("/latency/p99_ms").and_then(Value::as_f64),
            // A count, or counts by status and code.
            errors: at(errors).and_then(|e| {
                e.as_f64()
                    .or_else(|| Some(e.as_object()?.values().filter_map(Value::as_f64).sum()))
            }),
            cpu,
            load_generator: at("/cpu/load_generator/us_per_request").and_then(Value::as_f64),
        }
    }

    pub(super) fn of_kind(results: &Results, run: &str, kind: &str) -> Option<Self> {
        let run = results.get(run)?;
        let base = format!("/results/kinds/{kind}");
        run.pointer(&base)?;
        Some(Self::read(run, &base, "/requests_per_second", "/errors"))
    }

    /// The floor of the queue pair's path in a cost run: its bare relay in the gateway's column
    /// and its bare gRPC server in the queue's, beside Redis.
    fn of_floor(results: &Results, run: &str, floor: Floor) -> Option<Self> {
        let run = results.get(run)?;
        let base = floor.pointer();
        run.pointer(&format!("{base}/cpu"))?;
        let mut figures = Self::read(run, base, "/requests_per_second", "/errors");
        for (bare, column) in FLOOR_STANDS_FOR {
            let pointer = format!("{base}/cpu/by_process/{bare}/us_per_request");
            if let Some(us) = run.pointer(&pointer).and_then(Value::as_f64) {
                figures.cpu.insert(column, us);
            }
        }
        Some(figures)
    }

    pub(super) fn of_holds(results: &Results, run: &str) -> Option<Self> {
        Some(Self::read(
            results.get(run)?,
            "/results",
            "/attempts_per_second",
            "/errors",
        ))
    }

    /// The sum over `path`; `None` when none of it was measured.
    pub(super) fn total(&self, path: &[&str]) -> Option<f64> {
        let known: Vec<f64> = path
            .iter()
            .filter_map(|key| self.cpu.get(key).copied())
            .collect();
        (!known.is_empty()).then(|| known.iter().sum())
    }

    /// "62 µs (relay 22, gRPC server 20, Redis 20)".
    fn total_with_floor_parts(&self) -> String {
        let part = |key| show(self.cpu.get(key).copied(), |us| format!("{us:.0}"));
        format!(
            "{} (relay {}, gRPC server {}, Redis {})",
            show(self.total(FLOOR_PATH), micros),
            part("gateway"),
            part("queue"),
            part("redis")
        )
    }

    /// "213 µs (gateway 74, queue 73, Redis 66)".
    fn total_with_parts(&self, path: &[&str]) -> String {
        let parts: Vec<String> = PROCESSES
            .iter()
            .filter(|(key, _)| path.contains(key))
            .filter_map(|(key, header)| Some(format!("{header} {:.0}", self.cpu.get(key)?)))
            .collect();
        format!("{} ({})", show(self.total(path), micros), parts.join(", "))
    }
}

/// PostgreSQL's µs per transaction of the hold statement and pgbench's clients, from the cost
/// run of the setting or else the tracing-off one (tracing does not reach pgbench).
fn statement(results: &Results, cost_run: &str) -> Option<(f64, Option<f64>, Option<f64>)> {
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

fn hold_budget(statement_us: f64) -> f64 {
    statement_us + HOLD_HOPS * PER_HOP_US
}

/// The README rows: each request's total under tracing off against its budget.
pub fn rows(results: &Results) -> Vec<Row> {
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
                limit: match Figures::of_floor(results, cost_run, Floor::FlatOut) {
                    Some(floor) if request.path == FLOOR_PATH => format!(
                        "the same hops with nothing of ours in them: {}",
                        floor.total_with_floor_parts()
                    ),
                    _ => String::new(),
                },
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

/// docs/benchmarks.md's per-hop section: one table per tracing setting that ran.
pub fn markdown(results: &Results) -> String {
    // Each table: its runs, its heading, and whether the budgets are held against it.
    let tables: Vec<(&str, &str, &str, bool)> =
        std::iter::once((BUDGETED.0, BUDGETED.1, BUDGETED.2, true))
            .chain(
                TRACED
                    .iter()
                    .map(|(heading, turns, _)| (turns[0].0, turns[0].1, *heading, false)),
            )
            .collect();
    let present: Vec<_> = tables
        .into_iter()
        .filter(|(cost, holds, _, _)| results.contains_key(cost) || results.contains_key(holds))
        .collect();
    if present.is_empty() {
        return String::new();
    }
    let connections = number(results, BUDGETED.0, "/parameters/connections");
    let seconds = number(results, BUDGETED.0, "/parameters/seconds");
    let mut out = format!(
        "\n## What a request costs, per hop\n\n\
         CPU per request of every process (utime + stime from `/proc`, read before and after the \
         measured window, divided by its requests). `cost-tracing-off`: each request kind in a \
         closed loop at {} connections for {} s after a warm-up, on a freshly started system \
         seeded as `cargo xtask up` seeds it (concert 1: 10 options × 50 seats); the hold is \
         the `holds-tracing-off` run (32 users, each attempt a fresh seat). The budgets are \
         held against these. The tables after them are the first turn of each tracing \
         setting (see \"What tracing adds\" for every turn). Redis and PostgreSQL \
         are every process of their command name (`redis-server`, `postgres`: one per \
         connection), so another client of the same servers would be charged too. A request's \
         total is the sum over the processes on its path; figures in parentheses are processes \
         off it (background work such as the queue's admission ticks) and are not in the total. \
         The load generator is the client and is in no total; with tracing on it is also the \
         span collector (the services export to it), so its column is the collector's cost too. \
         The floor row is the queue pair's path with nothing of ours in it, driven the same \
         way: `GET /` to a bare axum relay (in the gateway's column) that makes one \
         grpc.health.v1 Check call to a bare tonic server (the queue's column) that runs a \
         one-command Lua script in the same Redis over one multiplexed connection, each with one \
         Tokio worker as the services run (loadtest/src/bare_chain.rs): the least the hops of \
         issue-token and check-queue cost before identity, JSON, limits, metrics and the \
         queue's own logic; run again paced at the holds' rate over as many connections as the \
         holds' users, it is what two bare hops cost at the rate a hold runs, where fewer \
         requests share each wake-up. \
         The hold statement row is `hold_seat` alone (services/reservation/src/store/holds.rs) \
         run by pgbench on the reservation database at the rate the holds through the gateway \
         ran (`-R`; PostgreSQL's background work and group commit are shared among fewer \
         transactions at a lower rate, so the statement costs more per transaction at 3,000/s \
         than flat out), PostgreSQL's CPU per transaction. A hold's budget is that statement plus {} µs per service it crosses ({}: gateway, queue for the \
         token, reservation).\n",
        show(connections, int),
        show(seconds, |s| format!("{s}")),
        PER_HOP_US,
        HOLD_HOPS,
    );
    for (cost_run, holds_run, heading, budgeted) in present {
        out.push_str(&format!(
            "\n### {}, {cost_run} and {holds_run}\n\n| request | req/s | p50 | p99 | errors |",
            capitalised(heading)
        ));
        for (_, header) in PROCESSES {
            out.push_str(&format!(" {header} |"));
        }
        out.push_str(" total | budget | load generator |\n|---|---|---|---|---|");
        out.push_str(&"---|".repeat(PROCESSES.len() + 3));
        out.push('\n');
        for request in &REQUESTS {
            if let Some(figures) = Figures::of_kind(results, cost_run, request.kind) {
                out.push_str(&table_row(
                    request.label,
                    &figures,
                    request.path,
                    budgeted.then_some(request.budget.total_us),
                ));
            }
        }
        if let Some(floor) = Figures::of_floor(results, cost_run, Floor::FlatOut) {
            out.push_str(&table_row(FLOOR_LABEL, &floor, FLOOR_PATH, None));
        }
        if let Some(floor) = Figures::of_floor(results, cost_run, Floor::AtHoldsRate) {
            let clients = number(results, cost_run, "/results/hold_statement/clients");
            out.push_str(&table_row(
                &format!(
                    "the same floor at the holds' rate ({} connections, paced)",
                    show(clients, int)
                ),
                &floor,
                FLOOR_PATH,
                None,
            ));
        }
        let statement = statement(results, cost_run);
        if results.contains_key(holds_run)
            && let Some(figures) = Figures::of_holds(results, holds_run)
        {
            out.push_str(&table_row(
                "POST /api/reserve (a hold)",
                &figures,
                HOLD_PATH,
                statement
                    .filter(|_| budgeted)
                    .map(|(us, _, _)| hold_budget(us)),
            ));
        }
        if let Some(run) = results.get(cost_run)
            && run.pointer("/results/hold_statement/cpu").is_some()
        {
            let figures = Figures::read(run, "/results/hold_statement", "/tps", "/errors");
            let clients = number(results, cost_run, "/results/hold_statement/clients");
            let at_rate = if run
                .pointer("/results/hold_statement/rate")
                .is_some_and(|r| !r.is_null())
            {
                ", at the holds' rate"
            } else {
                ""
            };
            out.push_str(&table_row(
                &format!(
                    "hold statement alone (pgbench, {} clients{at_rate})",
                    show(clients, int)
                ),
                &figures,
                &["postgresql"],
                None,
            ));
        }
    }
    out
}

fn table_row(label: &str, figures: &Figures, path: &[&str], budget: Option<f64>) -> String {
    let mut row = format!(
        "| {label} | {} | {} | {} | {} |",
        show(figures.rps, int),
        show(figures.p50_ms, |v| format!("{v:.2} ms")),
        show(figures.p99_ms, |v| format!("{v:.2} ms")),
        show(figures.errors, int),
    );
    for (key, _) in PROCESSES {
        let cell = match figures.cpu.get(key) {
            Some(us) if path.contains(&key) => micros(*us),
            Some(us) => format!("({})", micros(*us)),
            None => "—".into(),
        };
        row.push_str(&format!(" {cell} |"));
    }
    let total = figures.total(path);
    let verdict = match (total, budget) {
        (Some(t), Some(b)) => format!("{} ({})", micros(b), verdict(Some(t <= b))),
        (None, Some(b)) => micros(b),
        _ => "—".into(),
    };
    row.push_str(&format!(
        " {} | {verdict} | {} |\n",
        show(total, micros),
        show(figures.load_generator, micros)
    ));
    row
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::{markdown, rows};

    pub(in crate::bench) fn cpu(parts: &[(&str, f64)], load_generator: f64) -> Value {
        let by_process: serde_json::Map<String, Value> = parts
            .iter()
            .map(|(name, us)| ((*name).to_owned(), json!({"us_per_request": us})))
            .collect();
        json!({"by_process": by_process, "load_generator": {"us_per_request": load_generator}})
    }

    fn fixture() -> BTreeMap<&'static str, Value> {
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
            "the same hops with nothing of ours in them: 50 µs (relay 20, gRPC server 18, Redis 12)",
            "the queue pair's floor beside its total"
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

    #[test]
    fn the_per_hop_table_marks_what_is_off_the_path() {
        let markdown = markdown(&fixture());
        assert!(
            markdown.contains("closed loop at 64 connections for 10 s"),
            "{markdown}"
        );
        assert!(markdown.contains(
            "### Tracing off, as fast as answered, cost-tracing-off and holds-tracing-off"
        ));
        assert!(
            !markdown.contains("1% sampling"),
            "only settings that ran have a table"
        );
        assert!(
            markdown.contains("| POST /queue/issue-token (new user) | 7,600 | 8.00 ms | 20.00 ms | 0 | 74 µs | 73 µs | (2.0 µs) | — | 66 µs | (1.0 µs) | 213 µs | 100 µs (**missed**) | 90 µs |\n"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| floor of that path: bare relay → bare gRPC server → one Redis script | 20,000 | 2.00 ms | 5.00 ms | 0 | 20 µs | 18 µs | — | — | 12 µs | — | 50 µs | — | 10 µs |\n"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| the same floor at the holds' rate (32 connections, paced) | 1,900 | 0.50 ms | 1.00 ms | 0 | 60 µs | 50 µs | — | — | 19 µs | — | 129 µs | — | 40 µs |\n"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| POST /api/reserve (a hold) | 1,900 | 14.00 ms | 74.00 ms | 3 | 140 µs | 96 µs | (1.6 µs) | 137 µs | 20 µs | 100 µs | 493 µs | 330 µs (**missed**) | 50 µs |\n"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| hold statement alone (pgbench, 32 clients) | 4,000 | — | — | — | (0.5 µs) | — | — | — | — | 150 µs | 150 µs | — | 1.0 µs |\n"),
            "{markdown}"
        );
        assert_eq!(super::markdown(&BTreeMap::new()), "");
    }
}
