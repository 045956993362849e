//! What `GATEWAY_AUTH=jwt` costs beside `trusted`: the README rows and docs/benchmarks.md's
//! section, from the paired runs.

use super::format::{Results, Row, change, int, micros, number, show};

/// The runs that measure what GATEWAY_AUTH=jwt costs: (row label, trusted run, jwt run).
const AUTH_PAIRS: [(&str, &str, &str); 2] = [
    (
        "issue-token, jwt vs trusted",
        "issue-token-trusted",
        "issue-token-jwt",
    ),
    (
        "hold, jwt vs trusted",
        "holds-auth-trusted",
        "holds-auth-jwt",
    ),
];

/// The services, in the order their CPU is listed.
const SERVICES: [&str; 4] = ["gateway", "queue", "catalog", "reservation"];

pub fn rows(results: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for (label, trusted, jwt) in AUTH_PAIRS {
        if !results.contains_key(trusted) && !results.contains_key(jwt) {
            continue;
        }
        let both = |pointer: &str| {
            (
                number(results, trusted, pointer),
                number(results, jwt, pointer),
            )
        };
        let (gateway_t, gateway_j) = both("/results/cpu/by_process/gateway/us_per_request");
        let (total_t, total_j) = both("/results/cpu/total_us_per_request");
        let (p99_t, p99_j) = both("/results/latency/p99_ms");
        let mut this_system = format!(
            "CPU per request: gateway {}, all services {}; p99 {}",
            change(gateway_t, gateway_j, micros),
            change(total_t, total_j, micros),
            change(p99_t, p99_j, |v| format!("{v:.2} ms")),
        );
        if trusted.starts_with("holds") {
            let (holds_t, holds_j) = both("/results/holds_per_second");
            this_system.push_str(&format!("; holds/s {}", change(holds_t, holds_j, int)));
        }
        rows.push(Row {
            measure: label.into(),
            this_system,
            limit: String::new(),
            target: "recorded (no target)".into(),
            original: "no identity: userId believed",
        });
    }
    rows
}

/// docs/benchmarks.md's section on the identity modes: every service's CPU per request and
/// the latency, trusted beside jwt.
pub fn markdown(results: &Results) -> String {
    let present: Vec<&str> = AUTH_PAIRS
        .iter()
        .flat_map(|(_, trusted, jwt)| [*trusted, *jwt])
        .filter(|run| results.contains_key(run))
        .collect();
    if present.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n## What jwt identity costs\n\n\
         The same load twice, each on a freshly started system: the gateway with \
         `GATEWAY_AUTH=trusted` (the userId in the request is believed), then with `jwt` (every \
         request carries `Authorization: Bearer`, an Ed25519 token the gateway verifies against \
         the development JWKS; the load generator mints one per user before the run). \
         `issue-token-*`: users arrive at a fixed rate and take one queue token each (a rate \
         well below capacity, so latency is cost, not queueing). `holds-auth-*`: the `holds` \
         scenario (32 admitted users holding distinct seats as fast as they are answered). CPU is \
         utime + stime from `/proc/<pid>/stat` of each service process, read before and after \
         the measured window, divided by the requests in it.\n\n\
         Settings of every bench run: the gateway's per-caller rate limit is set out of reach \
         (`GATEWAY_RATE_LIMIT_PER_SEC` = `GATEWAY_RATE_LIMIT_BURST` = 1,000,000; in jwt mode \
         the per-subject limiter still runs and is part of what jwt costs — a trusted caller has \
         no subject to limit), and the `holds` runs start reservation with \
         `RESERVATION_MAX_SEATS_PER_USER=0` (limit off): 32 users hold thousands of seats each, \
         which the default of 4 per user per concert would refuse.\n\n\
         | run | mode | requests | gateway | queue | catalog | reservation | all services | p50 | p99 | throughput |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for run in present {
        let at = |pointer: &str| number(results, run, pointer);
        let mode = results
            .get(run)
            .and_then(|r| r["gateway_auth"].as_str())
            .unwrap_or(if run.ends_with("jwt") {
                "jwt"
            } else {
                "trusted"
            });
        let cpu: Vec<String> = SERVICES
            .iter()
            .map(|service| {
                show(
                    at(&format!("/results/cpu/by_process/{service}/us_per_request")),
                    micros,
                )
            })
            .collect();
        let throughput = if run.starts_with("holds") {
            show(at("/results/holds_per_second"), |h| {
                format!("{} holds/s", int(h))
            })
        } else {
            show(at("/summary/requests_per_second"), |r| {
                format!("{} req/s", int(r))
            })
        };
        out.push_str(&format!(
            "| {run} | {mode} | {} | {} | {} | {} | {} | {} |\n",
            show(at("/results/cpu/requests"), int),
            cpu.join(" | "),
            show(at("/results/cpu/total_us_per_request"), micros),
            show(at("/results/latency/p50_ms"), |v| format!("{v:.2} ms")),
            show(at("/results/latency/p99_ms"), |v| format!("{v:.2} ms")),
            throughput,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    #[test]
    fn jwt_is_compared_with_trusted_per_request_and_per_process() {
        let run = |gateway: f64, total: f64, p99: f64, mode: &str| {
            json!({
                "gateway_auth": mode,
                "results": {
                    "latency": {"p50_ms": 1.0, "p99_ms": p99},
                    "holds_per_second": 1000.0,
                    "cpu": {"requests": 20000, "total_us_per_request": total,
                            "by_process": {"gateway": {"us_per_request": gateway}}},
                },
            })
        };
        let mut results = BTreeMap::new();
        results.insert("holds-auth-trusted", run(100.0, 400.0, 10.0, "trusted"));
        results.insert("holds-auth-jwt", run(150.0, 450.0, 12.0, "jwt"));
        let rows: Vec<(String, String)> = super::rows(&results)
            .into_iter()
            .map(|row| (row.measure, row.this_system))
            .collect();
        assert_eq!(
            rows,
            [(
                "hold, jwt vs trusted".to_owned(),
                "CPU per request: gateway 100 µs → 150 µs (+50%), all services 400 µs → 450 µs (+12%); p99 10.00 ms → 12.00 ms (+20%); holds/s 1,000 → 1,000 (+0%)".to_owned()
            )],
            "only the pair that ran has a row"
        );
        let markdown = super::markdown(&results);
        assert!(
            markdown.contains("| holds-auth-jwt | jwt | 20,000 | 150 µs | — | — | — | 450 µs | 1.00 ms | 12.00 ms | 1,000 holds/s |"),
            "{markdown}"
        );
    }
}
