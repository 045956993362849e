//! The hold's deciding statement alone, run by pgbench on reservation's database: the floor a
//! hold's cost is judged against.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::Command;

use super::Args;
use crate::{cpu, programs};

/// The hold's deciding statement as the reservation service sends it (`HOLD` in
/// services/reservation/src/store/holds.rs, prepared, one per transaction, with the seat limit
/// off as in the `holds` runs), on a random seat of a space no seed or run touches: 10^15
/// seats, so two transactions meeting on one seat (a cheaper SEAT_TAKEN) practically never
/// happens.
const HOLD_SCRIPT: &str = "\\set option random(1000000001, 2000000000)\n\
\\set seat random(1, 1000000)\n\
select id, user_id, concert_option_id, seat_no, status, price_minor, grade, created_at, expires_at \
from hold_seat(:option, :seat, :option, 1, 1, 15000, 'R', 300, 0);\n";

/// pgbench runs [`HOLD_SCRIPT`] at `--statement-clients` for `--seconds`; the window charges
/// every `--cpu-pid` process per transaction (PostgreSQL's is the statement's cost).
pub(super) async fn hold_statement(
    url: &str,
    args: &Args,
    probe: &cpu::Probe,
) -> anyhow::Result<Value> {
    let Some(pgbench) = programs::find("pgbench") else {
        return Ok(json!({"skipped": "pgbench not found"}));
    };
    let script = std::env::temp_dir().join(format!("loadtest-hold-{}.sql", std::process::id()));
    std::fs::write(&script, HOLD_SCRIPT)?;
    let seconds = args.seconds.ceil().max(1.0) as u64;
    let rate = args.statement_rate.filter(|rate| *rate >= 1.0);
    eprintln!(
        "cost: the hold statement by pgbench, {} clients, {seconds} s{}",
        args.statement_clients,
        rate.map_or(String::new(), |rate| format!(", at {rate:.0} per second"))
    );
    let mut command = Command::new(pgbench);
    command
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &args.statement_clients.to_string()])
        .args(["-T", &seconds.to_string()]);
    if let Some(rate) = rate {
        command.args(["-R", &format!("{rate:.0}")]);
    }
    let window = probe.start().await;
    let output = command.arg("-f").arg(&script).arg(url).output().await?;
    // Ended backends are reaped by the postmaster a moment after pgbench exits: wait for it,
    // so their CPU has moved to its cutime/cstime (or they are still there to be read).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = std::fs::remove_file(&script);
    let out = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{out}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let parsed = parse_pgbench(&out).with_context(|| format!("pgbench said: {out}"))?;
    let cpu = window.finish(parsed.transactions).await;
    let postgres = cpu
        .as_ref()
        .and_then(|cpu| cpu.by_process.get("postgresql"))
        .map(|usage| usage.us_per_request);
    eprintln!(
        "cost: hold statement: {:.0} tps, {:.2} ms average{}",
        parsed.tps,
        parsed.latency_ms,
        postgres.map_or(String::new(), |us| format!(
            ", PostgreSQL {us:.0} µs per transaction"
        )),
    );
    Ok(json!({
        "clients": args.statement_clients,
        "seconds": seconds,
        "rate": rate,
        "transactions": parsed.transactions,
        "tps": parsed.tps,
        "latency_average_ms": parsed.latency_ms,
        "cpu": cpu,
    }))
}

#[derive(Debug, PartialEq)]
struct Pgbench {
    transactions: u64,
    tps: f64,
    latency_ms: f64,
}

/// The figures of pgbench's report.
fn parse_pgbench(out: &str) -> Option<Pgbench> {
    let after = |prefix: &str| {
        out.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
    };
    Some(Pgbench {
        transactions: after("number of transactions actually processed:")?
            .split('/')
            .next()?
            .parse()
            .ok()?,
        tps: after("tps = ")?.parse().ok()?,
        latency_ms: after("latency average = ")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn pgbench_reports_are_read() {
        let out = "pgbench (16.4)\ntransaction type: /tmp/hold.sql\nscaling factor: 1\n\
                   query mode: prepared\nnumber of clients: 32\nnumber of threads: 2\n\
                   duration: 10 s\nnumber of transactions actually processed: 41234\n\
                   number of failed transactions: 0 (0.000%)\nlatency average = 7.757 ms\n\
                   initial connection time = 25.1 ms\ntps = 4125.3 (without initial connection time)\n";
        assert_eq!(
            parse_pgbench(out),
            Some(Pgbench {
                transactions: 41234,
                tps: 4125.3,
                latency_ms: 7.757
            })
        );
        // -t runs print "done/planned".
        assert_eq!(
            parse_pgbench(&out.replace("41234", "100/100")).map(|p| p.transactions),
            Some(100)
        );
        assert_eq!(parse_pgbench("pgbench: error: connection failed"), None);
    }

    #[test]
    fn the_hold_script_calls_the_deciding_function_with_all_its_arguments() {
        let call = HOLD_SCRIPT.lines().last().unwrap();
        let arguments = call.split("hold_seat(").nth(1).unwrap();
        assert_eq!(arguments.matches(',').count(), 8, "hold_seat takes 9");
        assert!(
            arguments.ends_with(", 0);"),
            "seat limit off, as in the holds runs"
        );
    }
}
