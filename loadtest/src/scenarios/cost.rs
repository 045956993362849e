//! `cost`: what one request of each kind costs the system in CPU. Each kind in turn is driven
//! in a closed loop (every connection sends its next request as soon as the last is answered,
//! as wrk does) for a warm-up and then a measured window, in which every `--cpu-pid` process is
//! charged per request, beside req/s and latency. With `--reservation-database-url` the hold's
//! deciding statement (`hold_seat`, services/reservation/src/store/holds.rs) is then run by
//! pgbench on that database, PostgreSQL charged per transaction: the floor a hold's cost is
//! judged against. Holds through the gateway are the `holds` scenario's (it needs admitted
//! users and a fresh seat per attempt; `cargo xtask bench` puts both in one table).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::{
    client::{CallResult, Client},
    cpu,
    recorder::Recorder,
    report::Run,
    scenarios::first_user,
    stats,
};

/// A request kind the run measures, named as on the command line.
#[derive(clap::ValueEnum, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A new user each request.
    IssueToken,
    /// Each connection polls the token it was issued before the run.
    CheckQueue,
    /// The free seats of `--option`.
    AvailableSeats,
    GetConcerts,
    /// Every option of `--concert` with its free-seat count.
    OptionsWithCounts,
}

impl Kind {
    /// Issue-token last: the users it leaves waiting are dropped by the queue a minute later,
    /// work that would be charged to whatever ran then.
    const ALL: [Kind; 5] = [
        Kind::CheckQueue,
        Kind::AvailableSeats,
        Kind::GetConcerts,
        Kind::OptionsWithCounts,
        Kind::IssueToken,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::IssueToken => "issue-token",
            Kind::CheckQueue => "check-queue",
            Kind::AvailableSeats => "available-seats",
            Kind::GetConcerts => "get-concerts",
            Kind::OptionsWithCounts => "options-with-counts",
        }
    }

    /// The route template it is recorded under.
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::IssueToken => "POST /queue/issue-token",
            Kind::CheckQueue => "GET /queue/check-queue",
            Kind::AvailableSeats => "GET /api/concert/{id}/available-seats",
            Kind::GetConcerts => "GET /api/concert/get-concerts",
            Kind::OptionsWithCounts => {
                "GET /api/concert/concert/{concertId}/available-concert-options"
            }
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Concurrent connections (closed loop).
    #[arg(long, default_value_t = 64)]
    pub connections: u64,
    /// Seconds each kind is measured.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds each kind runs before its measured window (connections open, caches warm).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_seconds: f64,
    /// The kinds to measure, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Kind::ALL)]
    pub kinds: Vec<Kind>,
    /// The concert whose options are listed with counts.
    #[arg(long, default_value_t = 1)]
    pub concert: u64,
    /// The option whose free seats are listed.
    #[arg(long, default_value_t = 1)]
    pub option: u64,
    #[arg(long)]
    pub first_user: Option<u64>,
    /// The reservation service's own database: pgbench runs the hold's deciding statement on
    /// it (on options above 1,000,000,000, which no seed uses; the rows expire in 5 minutes).
    #[arg(long, env = "LOADTEST_RESERVATION_DATABASE_URL")]
    pub reservation_database_url: Option<String>,
    /// pgbench clients for the hold statement (the `holds` runs' users, so the two compare).
    #[arg(long, default_value_t = 32)]
    pub statement_clients: u64,
}

/// One kind's measured window.
#[derive(Serialize, Debug)]
pub struct Measured {
    pub endpoint: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub latency: Option<stats::Latency>,
    /// The window's CPU per process (with `--cpu-pid`), and this generator's own.
    pub cpu: Option<cpu::Usage>,
}

pub async fn run(client: &Client, args: Args, probe: &cpu::Probe) -> anyhow::Result<Run> {
    let first = first_user(args.first_user);
    let targets = Arc::new(Targets::prepare(client, &args, first).await?);
    let recorder = Arc::new(Recorder::new());
    let mut measured = serde_json::Map::new();
    for kind in &args.kinds {
        let kind = *kind;
        eprintln!(
            "cost: {} — {} connections, {} s warm-up, {} s measured",
            kind.name(),
            args.connections,
            args.warmup_seconds,
            args.seconds
        );
        let warmup = Arc::new(Recorder::new());
        closed_loop(
            &targets,
            kind,
            args.connections,
            args.warmup_seconds,
            &warmup,
        )
        .await?;
        let window = probe.start();
        let started = Instant::now();
        let requests =
            closed_loop(&targets, kind, args.connections, args.seconds, &recorder).await?;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = window.finish(requests);
        let endpoint = recorder.summary().endpoints.remove(kind.endpoint());
        let result = Measured {
            endpoint: kind.endpoint(),
            requests,
            errors: endpoint
                .as_ref()
                .map_or(0, |e| e.errors.values().sum::<u64>()),
            seconds,
            requests_per_second: requests as f64 / seconds.max(f64::EPSILON),
            latency: endpoint.map(|e| e.latency),
            cpu,
        };
        eprintln!("cost: {}: {}", kind.name(), describe(&result));
        measured.insert(kind.name().into(), serde_json::to_value(&result)?);
    }
    let statement = match &args.reservation_database_url {
        Some(url) => hold_statement(url, &args, probe).await?,
        None => json!({"skipped": "no --reservation-database-url"}),
    };
    let summary = recorder.summary();
    Ok(Run {
        scenario: "cost",
        parameters: json!({
            "connections": args.connections, "seconds": args.seconds,
            "warmup_seconds": args.warmup_seconds,
            "kinds": args.kinds, "concert": args.concert, "option": args.option,
            "first_user": first, "statement_clients": args.statement_clients,
        }),
        results: json!({"kinds": measured, "hold_statement": statement}),
        series: recorder.series(),
        summary,
        breakdown: None,
    })
}

/// req/s, latency and CPU in one line, for the reader of stderr.
fn describe(result: &Measured) -> String {
    let latency = result.latency.map_or(String::new(), |l| {
        format!(", p50 {:.2} ms, p99 {:.2} ms", l.p50_ms, l.p99_ms)
    });
    let cpu = result.cpu.as_ref().map_or(String::new(), |cpu| {
        let parts: Vec<String> = cpu
            .by_process
            .iter()
            .map(|(name, usage)| format!("{name} {:.0}", usage.us_per_request))
            .collect();
        format!(
            "; CPU {:.0} µs per request ({}){}",
            cpu.total_us_per_request,
            parts.join(", "),
            cpu.load_generator
                .as_ref()
                .map_or(String::new(), |own| format!(
                    "; this generator {:.0} µs",
                    own.us_per_request
                ))
        )
    });
    format!(
        "{:.0} req/s, {} requests, {} errors{latency}{cpu}",
        result.requests_per_second, result.requests, result.errors
    )
}

/// What each kind's requests need: the next new user, and each connection's issued token.
struct Targets {
    client: Client,
    next_user: AtomicU64,
    /// Per connection: a client calling as its user, and the check-queue path of its token.
    checks: Vec<(Client, String)>,
    available_seats: String,
    options_with_counts: String,
}

impl Targets {
    async fn prepare(client: &Client, args: &Args, first: u64) -> anyhow::Result<Self> {
        let mut checks = Vec::new();
        if args.kinds.contains(&Kind::CheckQueue) {
            client.prepare_users(first, args.connections)?;
            for user in first..first + args.connections {
                let caller = client.as_user(user);
                let reply = caller
                    .post("/queue/issue-token", format!(r#"{{"userId": {user}}}"#))
                    .await?;
                let token = reply.json["token"]
                    .as_str()
                    .with_context(|| format!("issue-token answered {}", reply.status))?;
                checks.push((caller, format!("/queue/check-queue?token={token}")));
            }
        }
        Ok(Self {
            client: client.clone(),
            next_user: AtomicU64::new(first + args.connections),
            checks,
            available_seats: format!("/api/concert/{}/available-seats", args.option),
            options_with_counts: format!(
                "/api/concert/concert/{}/available-concert-options",
                args.concert
            ),
        })
    }

    async fn call(&self, kind: Kind, connection: usize) -> CallResult {
        match kind {
            Kind::IssueToken => {
                // In jwt mode this user's token is minted now (counted as minted late): the
                // number of users a closed loop reaches is not known before it runs.
                let user = self.next_user.fetch_add(1, Ordering::Relaxed);
                self.client
                    .as_user(user)
                    .post("/queue/issue-token", format!(r#"{{"userId": {user}}}"#))
                    .await
            }
            Kind::CheckQueue => match self.checks.get(connection % self.checks.len().max(1)) {
                Some((caller, path)) => caller.get(path).await,
                None => self.client.get("/queue/check-queue").await,
            },
            Kind::AvailableSeats => self.client.get(&self.available_seats).await,
            Kind::GetConcerts => self.client.get("/api/concert/get-concerts").await,
            Kind::OptionsWithCounts => self.client.get(&self.options_with_counts).await,
        }
    }
}

/// `connections` loops sending `kind` until `seconds` are over; the calls they made.
async fn closed_loop(
    targets: &Arc<Targets>,
    kind: Kind,
    connections: u64,
    seconds: f64,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let workers = (0..connections as usize).map(|connection| {
        let targets = targets.clone();
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let _alive = recorder.user();
            let mut calls = 0_u64;
            while Instant::now() < deadline {
                let started = Instant::now();
                let result = targets.call(kind, connection).await;
                recorder.record(kind.endpoint(), started.elapsed(), &result, |reply| {
                    reply.status == 200
                });
                calls += 1;
            }
            calls
        })
    });
    let mut total = 0;
    for calls in futures::future::join_all(workers).await {
        total += calls?;
    }
    Ok(total)
}

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
async fn hold_statement(url: &str, args: &Args, probe: &cpu::Probe) -> anyhow::Result<Value> {
    let Some(pgbench) = find_pgbench() else {
        return Ok(json!({"skipped": "pgbench not found"}));
    };
    let script = std::env::temp_dir().join(format!("loadtest-hold-{}.sql", std::process::id()));
    std::fs::write(&script, HOLD_SCRIPT)?;
    let seconds = args.seconds.ceil().max(1.0) as u64;
    eprintln!(
        "cost: the hold statement by pgbench, {} clients, {seconds} s",
        args.statement_clients
    );
    let window = probe.start();
    let output = Command::new(pgbench)
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &args.statement_clients.to_string()])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(url)
        .output()
        .await?;
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
    let cpu = window.finish(parsed.transactions);
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

/// pgbench on PATH or in PostgreSQL's versioned bin folders (where Debian puts it).
fn find_pgbench() -> Option<PathBuf> {
    which::which_global("pgbench").ok().or_else(|| {
        let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
        let dirs = versions.flatten().map(|entry| entry.path().join("bin"));
        which::which_in_global("pgbench", std::env::join_paths(dirs).ok())
            .ok()?
            .next()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::{
        Json, Router,
        routing::{get, post},
    };
    use serde_json::json;

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

    /// Every kind against a stand-in gateway on port 0: each gets its own measured window and
    /// the requests add up; the stand-in counts what it was sent.
    #[tokio::test]
    async fn each_kind_is_measured_in_its_own_window() {
        let issued = Arc::new(AtomicU64::new(0));
        let counter = issued.clone();
        let app = Router::new()
            .route(
                "/queue/issue-token",
                post(move || {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    async move { Json(json!({"token": format!("t{n}"), "status": "WAITING"})) }
                }),
            )
            .route(
                "/queue/check-queue",
                get(|| async { Json(json!({"status": "WAITING"})) }),
            )
            .route(
                "/api/concert/get-concerts",
                get(|| async { Json(json!([])) }),
            )
            .route(
                "/api/concert/3/available-seats",
                get(|| async { Json(json!([])) }),
            )
            .route(
                "/api/concert/concert/2/available-concert-options",
                get(|| async { Json(json!([])) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let args = Args {
            connections: 2,
            seconds: 0.2,
            warmup_seconds: 0.05,
            kinds: Kind::ALL.to_vec(),
            concert: 2,
            option: 3,
            first_user: Some(1000),
            reservation_database_url: None,
            statement_clients: 1,
        };
        let pid = std::process::id();
        let probe = cpu::Probe::new(vec![format!("stand-in={pid}").parse().unwrap()]);
        let run = run(&Client::new(&base), args, &probe).await.unwrap();
        let kinds = run.results["kinds"].as_object().unwrap();
        assert_eq!(kinds.len(), 5);
        let mut total = 0;
        for kind in Kind::ALL {
            let measured = &kinds[kind.name()];
            assert_eq!(measured["endpoint"], kind.endpoint());
            assert_eq!(measured["errors"], 0, "{}: {measured}", kind.name());
            let requests = measured["requests"].as_u64().unwrap();
            assert!(requests > 0, "{}", kind.name());
            assert_eq!(measured["cpu"]["requests"], requests);
            assert!(measured["cpu"]["load_generator"].is_object());
            assert_eq!(
                run.summary.endpoints[kind.endpoint()].requests,
                requests,
                "the run's recorder holds the measured windows only"
            );
            total += requests;
        }
        assert_eq!(run.summary.requests, total);
        // Two tokens for check-queue before the run; every issue-token call, warm-up included.
        let issue_token = kinds["issue-token"]["requests"].as_u64().unwrap();
        assert!(issued.load(Ordering::Relaxed) >= 2 + issue_token);
        assert_eq!(
            run.results["hold_statement"]["skipped"],
            "no --reservation-database-url"
        );
    }
}
