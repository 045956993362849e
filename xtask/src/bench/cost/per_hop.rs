//! docs/benchmarks.md's per-hop section: one table per tracing setting that ran, every
//! process's CPU per request against the budgets, with the floors beside them.

use super::{
    super::{
        format::{Results, int, micros, number, show, verdict},
        tracing_cost::TRACED,
    },
    BUDGETED, HOLD_HOPS, HOLD_PATH, PER_HOP_US, REQUESTS,
    figures::{FLOOR_LABEL, FLOOR_PATH, Figures, Floor, PROCESSES},
    hold_budget, statement,
};

/// docs/benchmarks.md's per-hop section: one table per tracing setting that ran.
pub(in crate::bench) fn markdown(results: &Results) -> String {
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
         requests share each wake-up. The rows \"carrying the queue's store\" are the same \
         bare hops flat out with the bare gRPC server calling the queue's own store (built as \
         the queue service builds it, its room under a key prefix of the run's own): a poll of \
         one waiting token (check-queue's status script) or an issue to a new user \
         (issue-token's): the queue's work in Redis and the store's Rust, without the gateway \
         and the queue service around them. \
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
        for request in &REQUESTS[..2] {
            if let Some(floor) =
                Figures::of_floor(results, cost_run, Floor::WithStore(request.kind))
            {
                out.push_str(&table_row(
                    &format!("the same hops carrying the queue's store: {}", request.kind),
                    &floor,
                    FLOOR_PATH,
                    None,
                ));
            }
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
mod tests {
    use std::collections::BTreeMap;

    use super::markdown;
    use crate::bench::cost::tests::fixture;

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
            markdown.contains("| the same hops carrying the queue's store: issue-token | 15,000 | 3.00 ms | 6.00 ms | 0 | 21 µs | 26 µs | — | — | 40 µs | — | 87 µs | — | 12 µs |\n"),
            "{markdown}"
        );
        assert!(
            !markdown.contains("carrying the queue's store: check-queue"),
            "only the kinds measured"
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
