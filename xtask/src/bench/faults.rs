//! The faults run (`loadtest faults`, on two replicas of every service and private stores):
//! the processes it is told to inject faults into, its README rows and docs/benchmarks.md's
//! "Faults" section.

use anyhow::Context;
use serde_json::Value;
use tokio::process::Child;

use super::format::{Results, Row, checks_markdown, int, ms, show, verdict};
use crate::{launch::SystemSpec, stores::Stores};

/// The bench's faults run.
pub const RUN: &str = "faults";

/// How soon after a fault ends the system must be back.
const RECOVERY_TARGET_SECONDS: u64 = 2;

/// The load generator's target arguments: the private Redis's pid and PostgreSQL's data
/// directory, the first reservation replica (killed) and every queue replica (restarted in
/// turn), each with its gRPC address.
pub fn targets(
    spec: &SystemSpec,
    running: &[(&'static str, Child)],
    stores: &Stores,
) -> anyhow::Result<Vec<String>> {
    let pid = |name: &str| {
        running
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, child)| child.id())
            .with_context(|| format!("{name} is not running"))
    };
    let redis = stores.private_redis_pid().context("no private Redis")?;
    let postgres = stores
        .private_postgres_dir()
        .context("no private PostgreSQL")?;
    let mut words = vec![
        "--redis-pid".to_owned(),
        redis.to_string(),
        "--postgres-data-dir".to_owned(),
        postgres.display().to_string(),
    ];
    let (name, addr) = spec
        .replicas_named("reservation")?
        .first()
        .copied()
        .context("no reservation replica")?;
    words.extend(["--reservation".to_owned(), format!("{}@{addr}", pid(name)?)]);
    for (name, addr) in spec.replicas_named("queue")? {
        words.extend(["--queue".to_owned(), format!("{}@{addr}", pid(name)?)]);
    }
    Ok(words)
}

/// A fault's name in words, with the run's stall.
fn title(fault: &str, stall: &str) -> String {
    match fault {
        "redis-stall" => format!("Redis stalled {stall} s"),
        "postgres-stall" => format!("PostgreSQL stalled {stall} s"),
        "postgres-restart" => "PostgreSQL restarted (fast shutdown and start)".into(),
        "reservation-kill" => "one reservation replica killed (SIGKILL)".into(),
        "queue-restart" => "the queue service restarted (each replica in turn)".into(),
        other => other.into(),
    }
}

/// Failed requests: how many, and by code.
fn failures(failed: &Value) -> String {
    let total = failed["total"].as_u64().unwrap_or(0);
    let codes: Vec<String> = failed["by_code"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    if codes.is_empty() {
        int(total as f64)
    } else {
        format!("{} ({})", int(total as f64), codes.join(", "))
    }
}

/// "N s after", or that it was not back within the calm window.
fn after(seconds: &Value) -> String {
    seconds
        .as_u64()
        .map_or("not within the window".into(), |s| format!("{s} s after"))
}

fn faults(run: &Value) -> Vec<&Value> {
    run.pointer("/results/faults")
        .and_then(Value::as_array)
        .map(|faults| faults.iter().collect())
        .unwrap_or_default()
}

fn stall(run: &Value) -> String {
    run.pointer("/parameters/stall_seconds")
        .map_or("?".into(), Value::to_string)
}

/// Whether a fault met its targets: back within the target after it ended, and for the killed
/// replica no new request failed (those in flight at the kill may, retriably).
fn met(fault: &Value) -> Option<bool> {
    let recovered = fault["recovered_after_seconds"]
        .as_u64()
        .is_some_and(|s| s <= RECOVERY_TARGET_SECONDS);
    if fault["error"].is_string() {
        return Some(false);
    }
    if fault["fault"] == "reservation-kill" {
        let in_flight = &fault["failed_in_flight_at_start"];
        return Some(
            recovered
                && fault["new_requests_failed"].as_u64() == Some(0)
                && in_flight["total"] == in_flight["retriable"],
        );
    }
    Some(recovered)
}

pub fn rows(results: &Results) -> Vec<Row> {
    let Some(run) = results.get(RUN) else {
        return Vec::new();
    };
    let stall = stall(run);
    let mut rows: Vec<Row> = faults(run)
        .into_iter()
        .map(|fault| {
            let name = fault["fault"].as_str().unwrap_or("?");
            let kill = name == "reservation-kill";
            let failed = if kill {
                format!(
                    "{} in flight at the kill failed ({} retriable), {} new requests failed",
                    failures(&fault["failed_in_flight_at_start"]),
                    int(fault["failed_in_flight_at_start"]["retriable"]
                        .as_f64()
                        .unwrap_or(0.0)),
                    int(fault["new_requests_failed"].as_f64().unwrap_or(0.0)),
                )
            } else {
                let during = fault["failed_in_flight_at_start"]["total"]
                    .as_u64()
                    .unwrap_or(0)
                    + fault["failed_sent_during"]["total"].as_u64().unwrap_or(0);
                format!(
                    "{} failed during it, {} after it",
                    int(during as f64),
                    failures(&fault["failed_sent_after"])
                )
            };
            Row {
                measure: format!("faults: {}", title(name, &stall)),
                this_system: match fault["error"].as_str() {
                    Some(error) => format!("not injected: {error}"),
                    None => format!(
                        "{failed}; recovered {} it ended (baseline p99 {})",
                        after(&fault["recovered_after_seconds"]),
                        show(fault["baseline_p99_ms"].as_f64(), ms)
                    ),
                },
                limit: String::new(),
                target: format!(
                    "recovered ≤ {RECOVERY_TARGET_SECONDS} s after it ends{} ({})",
                    if kill { ", no new request fails" } else { "" },
                    verdict(met(fault))
                ),
                original: "—",
            }
        })
        .collect();
    let at = |pointer: &str| run.pointer(pointer).and_then(Value::as_f64);
    let (lost, twice) = (
        at("/results/confirmed_payments_lost"),
        at("/results/seats_sold_twice"),
    );
    let wallets = run
        .pointer("/results/checks/wallets_exact/ok")
        .and_then(Value::as_bool);
    rows.push(Row {
        measure: "faults: afterwards, through the API and the database".into(),
        this_system: format!(
            "{} payments confirmed to clients: {} lost; {} seats sold twice; wallets {}",
            show(at("/results/payments_confirmed"), int),
            show(lost, int),
            show(twice, int),
            match wallets {
                Some(true) => "exact",
                Some(false) => "**off**",
                None => "not checked",
            }
        ),
        limit: String::new(),
        target: format!(
            "0 confirmed payments lost, 0 seats sold twice, wallets exact ({})",
            verdict(match (lost, twice, wallets) {
                (Some(lost), Some(twice), Some(wallets)) => {
                    Some(lost == 0.0 && twice == 0.0 && wallets)
                }
                _ => None,
            })
        ),
        original: "—",
    });
    rows
}

/// docs/benchmarks.md's section: what the run did, each fault's figures and every check.
pub fn markdown(results: &Results) -> String {
    let Some(run) = results.get(RUN) else {
        return String::new();
    };
    let at = |pointer: &str| run.pointer(pointer).and_then(Value::as_f64);
    let mut out = format!(
        "\n## Faults\n\n\
         The reservation flow (`loadtest faults`) at {} users/s on two replicas of every \
         service, each kept up by a supervisor, and on private Redis and PostgreSQL, while \
         faults are injected one after another with {} s of calm around each. Users are careful \
         clients: top-ups and payments carry an Idempotency-Key, and a call that failed in a way \
         that may pass (503, 504, no answer) is sent again about a second later; every attempt \
         counts. A failed request belongs to the fault it overlapped: in flight at its start, \
         sent while it lasted, or sent after it ended and before the next. Recovered: errors \
         stopped (5 s without one) and p99 back (the 5 s median within twice the baseline or 5 ms \
         over it), counted from the fault's end; the baseline is the median p99 of the calm \
         seconds before it. {} paid of {} users; {} requests.\n\n\
         | fault | what was done | lasted | failed: in flight at its start | sent during it | sent after it | baseline p99 | recovered (target ≤ {RECOVERY_TARGET_SECONDS} s) | worst p99 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        show(at("/parameters/rate"), int),
        show(at("/parameters/calm_seconds"), int),
        show(at("/results/paid"), int),
        show(at("/results/arrivals/arrived"), int),
        show(at("/summary/requests"), int),
    );
    let stall = stall(run);
    for fault in faults(run) {
        let name = fault["fault"].as_str().unwrap_or("?");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} |\n",
            title(name, &stall),
            fault["error"].as_str().map_or_else(
                || fault["what"].as_str().unwrap_or("").to_owned(),
                |e| { format!("**not injected**: {e}") }
            ),
            show(fault["lasted_s"].as_f64(), |s| format!("{s:.1} s")),
            failures(&fault["failed_in_flight_at_start"]),
            failures(&fault["failed_sent_during"]),
            failures(&fault["failed_sent_after"]),
            show(fault["baseline_p99_ms"].as_f64(), ms),
            after(&fault["recovered_after_seconds"]),
            verdict(met(fault)),
            show(fault["worst_p99_ms"].as_f64(), ms),
        ));
    }
    out.push_str(&checks_markdown(run));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    fn fault(name: &str, recovered: u64, in_flight: (u64, u64), new: u64) -> serde_json::Value {
        json!({
            "fault": name, "what": format!("did {name}"), "lasted_s": 5.02,
            "baseline_p99_ms": 4.0, "worst_p99_ms": 1200.0,
            "recovered_after_seconds": recovered,
            "failed_in_flight_at_start": {"total": in_flight.0, "retriable": in_flight.1,
                "by_code": if in_flight.0 > 0 { json!({"503_SERVICE_UNAVAILABLE": in_flight.0}) } else { json!({}) }},
            "failed_sent_during": {"total": new, "retriable": new,
                "by_code": if new > 0 { json!({"504_UPSTREAM_TIMEOUT": new}) } else { json!({}) }},
            "failed_sent_after": {"total": 0, "retriable": 0, "by_code": {}},
            "new_requests_failed": new,
        })
    }

    fn results(faults: Vec<serde_json::Value>, lost: u64) -> super::Results {
        BTreeMap::from([(
            super::RUN,
            json!({
                "parameters": {"rate": 20.0, "stall_seconds": 5, "calm_seconds": 20},
                "summary": {"requests": 31000},
                "results": {
                    "arrivals": {"arrived": 2000}, "paid": 1990,
                    "faults": faults,
                    "payments_confirmed": 1990, "confirmed_payments_lost": lost, "seats_sold_twice": 0,
                    "checks": {
                        "wallets_exact": {"ok": true, "detail": "1990 wallets; 0 differ"},
                        "confirmed_payments_exist": {"ok": lost == 0, "detail": format!("{lost} lost")},
                    },
                },
            }),
        )])
    }

    #[test]
    fn each_fault_has_a_row_judged_by_its_recovery_and_the_kill_also_by_its_new_requests() {
        let results = results(
            vec![
                fault("redis-stall", 1, (3, 3), 40),
                fault("postgres-restart", 4, (0, 0), 0),
                fault("reservation-kill", 0, (2, 2), 0),
            ],
            0,
        );
        let rows = super::rows(&results);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].measure, "faults: Redis stalled 5 s");
        assert_eq!(
            rows[0].this_system,
            "43 failed during it, 0 after it; recovered 1 s after it ended (baseline p99 4.0 ms)"
        );
        assert!(rows[0].target.ends_with("(met)"), "{}", rows[0].target);
        assert!(rows[1].target.ends_with("(**missed**)"), "4 s is over 2 s");
        assert_eq!(
            rows[2].this_system,
            "2 (503_SERVICE_UNAVAILABLE 2) in flight at the kill failed (2 retriable), 0 new requests failed; recovered 0 s after it ended (baseline p99 4.0 ms)"
        );
        assert_eq!(
            rows[2].target,
            "recovered ≤ 2 s after it ends, no new request fails (met)"
        );
        assert_eq!(
            rows[3].this_system,
            "1,990 payments confirmed to clients: 0 lost; 0 seats sold twice; wallets exact"
        );
        assert!(rows[3].target.ends_with("(met)"));
    }

    #[test]
    fn a_new_request_failing_at_the_kill_or_a_lost_payment_misses_its_target() {
        let results = results(vec![fault("reservation-kill", 0, (0, 0), 1)], 1);
        let rows = super::rows(&results);
        assert!(
            rows[0].target.ends_with("(**missed**)"),
            "{}",
            rows[0].target
        );
        assert!(
            rows[1].target.ends_with("(**missed**)"),
            "{}",
            rows[1].target
        );
    }

    #[test]
    fn the_section_has_a_line_per_fault_and_every_check() {
        let mut stalled = fault("postgres-stall", 2, (1, 1), 5);
        stalled["failed_sent_after"] = json!({"total": 2, "retriable": 2, "by_code": {"503_SERVICE_UNAVAILABLE": 1, "timeout": 1}});
        let mut not_injected = fault("queue-restart", 0, (0, 0), 0);
        not_injected["error"] = json!("waited 60s for a process serving at 127.0.0.1:18051");
        let markdown = super::markdown(&results(vec![stalled, not_injected], 0));
        assert!(
            markdown.contains("| PostgreSQL stalled 5 s | did postgres-stall | 5.0 s | 1 (503_SERVICE_UNAVAILABLE 1) | 5 (504_UPSTREAM_TIMEOUT 5) | 2 (503_SERVICE_UNAVAILABLE 1, timeout 1) | 4.0 ms | 2 s after (met) | 1200.0 ms |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| the queue service restarted (each replica in turn) | **not injected**: waited 60s"),
            "{markdown}"
        );
        assert!(markdown.contains("(**missed**)"));
        assert!(markdown.contains("1,990 paid of 2,000 users; 31,000 requests"));
        assert!(markdown.contains("- `wallets_exact`: ok — 1990 wallets; 0 differ"));
    }
}
