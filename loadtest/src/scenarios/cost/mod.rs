//! `cost`: what one request of each kind costs the system in CPU. Each kind in turn is driven
//! in a closed loop (every connection sends its next request as soon as the last is answered,
//! as wrk does) for a warm-up and then a measured window, in which every `--cpu-pid` process is
//! charged per request, beside req/s and latency. With `--reservation-database-url` the hold's
//! deciding statement (`hold_seat`, services/reservation/src/store/holds.rs) is then run by
//! pgbench on that database, PostgreSQL charged per transaction: the floor a hold's cost is
//! judged against. With `--floor-redis-url` the floor of the queue pair's path is measured
//! too (`floor.rs`): the same hops with nothing of ours in them, and carrying the queue's store.
//! Holds through the gateway are the `holds` scenario's (it needs admitted users and a fresh
//! seat per attempt; `cargo xtask bench` puts both in one table).

mod floor;
mod statement;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::{
    client::{CallResult, Client},
    cpu,
    pacing::Pace,
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
    /// Send at most this many requests per second in all, spread over the connections (each
    /// connection waits its turn, and sends at once when it is behind): the same load for
    /// every setting compared, so CPU per request is not confounded with how busy the machine
    /// was. Without it each connection sends its next request as soon as the last is answered.
    #[arg(long)]
    pub rate: Option<f64>,
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
    /// Measure neither floor (the hold statement, the queue pair's bare path) even with their
    /// URLs: for runs that compare settings of the services, which neither floor crosses.
    #[arg(long)]
    pub no_floors: bool,
    /// pgbench clients for the hold statement (the `holds` runs' users, so the two compare).
    #[arg(long, default_value_t = 32)]
    pub statement_clients: u64,
    /// Run the hold statement at this many transactions per second (pgbench -R) instead of
    /// as fast as it goes: the rate the holds through the gateway ran at, so that the two are
    /// charged for the same rate (PostgreSQL's background work and group commit are shared
    /// among fewer transactions at a lower rate).
    #[arg(long)]
    pub statement_rate: Option<f64>,
    /// The Redis the queue uses: the floor of the queue pair's path (a bare relay, a bare gRPC
    /// server, one script in this Redis) is measured after the kinds, charged to the bare
    /// processes and to the `redis` process of `--cpu-pid`; with `--statement-rate`, again at
    /// that rate over `--statement-clients` connections (the bare hops as the holds ran).
    #[arg(long, env = "LOADTEST_FLOOR_REDIS_URL")]
    pub floor_redis_url: Option<String>,
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

impl Measured {
    /// A window of `requests` over `seconds`, its latency and errors from `recorder`.
    fn of_window(
        endpoint: &'static str,
        requests: u64,
        seconds: f64,
        recorder: &Recorder,
        cpu: Option<cpu::Usage>,
    ) -> Self {
        let recorded = recorder.summary().endpoints.remove(endpoint);
        Self {
            endpoint,
            requests,
            errors: recorded
                .as_ref()
                .map_or(0, |e| e.errors.values().sum::<u64>()),
            seconds,
            requests_per_second: requests as f64 / seconds.max(f64::EPSILON),
            latency: recorded.map(|e| e.latency),
            cpu,
        }
    }
}

pub async fn run(client: &Client, args: Args, probe: &cpu::Probe) -> anyhow::Result<Run> {
    let first = first_user(args.first_user);
    let targets = Arc::new(Targets::prepare(client, &args, first).await?);
    // Under callgrind, what the services do with nothing sent: the kinds' counts less it are
    // what a request adds.
    let idle = probe.idle(args.seconds).await;
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
        let load = Load {
            connections: args.connections,
            rate: args.rate,
        };
        closed_loop(&targets, kind, load, args.warmup_seconds, &warmup).await?;
        let window = probe.start().await;
        let started = Instant::now();
        let requests = closed_loop(&targets, kind, load, args.seconds, &recorder).await?;
        let seconds = started.elapsed().as_secs_f64();
        let result = Measured::of_window(
            kind.endpoint(),
            requests,
            seconds,
            &recorder,
            window.finish(requests).await,
        );
        eprintln!("cost: {}: {}", kind.name(), describe(&result));
        measured.insert(kind.name().into(), serde_json::to_value(&result)?);
    }
    let statement = match &args.reservation_database_url {
        _ if args.no_floors => json!({"skipped": "--no-floors"}),
        Some(url) => statement::hold_statement(url, &args, probe).await?,
        None => json!({"skipped": "no --reservation-database-url"}),
    };
    let floors = floor::measure(&args, probe).await?;
    let summary = recorder.summary();
    Ok(Run {
        scenario: "cost",
        parameters: json!({
            "connections": args.connections, "rate": args.rate, "seconds": args.seconds,
            "warmup_seconds": args.warmup_seconds,
            "kinds": args.kinds, "concert": args.concert, "option": args.option,
            "first_user": first, "statement_clients": args.statement_clients,
            "statement_rate": args.statement_rate,
        }),
        results: json!({
            "kinds": measured, "hold_statement": statement, "floor": floors.flat_out,
            "floor_at_holds_rate": floors.at_holds_rate, "floor_with_store": floors.with_store,
            "idle": idle,
        }),
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

/// How hard a kind is driven: connections, each sending as soon as it is answered, or paced
/// to a total rate.
#[derive(Clone, Copy, Debug)]
struct Load {
    connections: u64,
    rate: Option<f64>,
}

/// `load` sending `kind` until `seconds` are over; the calls made.
async fn closed_loop(
    targets: &Arc<Targets>,
    kind: Kind,
    load: Load,
    seconds: f64,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<u64> {
    let targets = targets.clone();
    let call = move |connection: usize| {
        let targets = targets.clone();
        async move { targets.call(kind, connection).await }
    };
    drive(load, seconds, recorder, kind.endpoint(), call).await
}

/// `load`'s connections each making `call` (given its number) until `seconds` are over,
/// recorded under `endpoint` (200 is success); the calls they made.
async fn drive<C, F>(
    load: Load,
    seconds: f64,
    recorder: &Arc<Recorder>,
    endpoint: &'static str,
    call: C,
) -> anyhow::Result<u64>
where
    C: Fn(usize) -> F + Clone + Send + 'static,
    F: Future<Output = CallResult> + Send,
{
    let start = tokio::time::Instant::now();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    let workers = (0..load.connections).map(|connection| {
        let call = call.clone();
        let recorder = recorder.clone();
        let mut pace = Pace::new(load.rate, load.connections, connection, start);
        tokio::spawn(async move {
            let _alive = recorder.user();
            let mut calls = 0_u64;
            while Instant::now() < deadline {
                pace.turn().await;
                if Instant::now() >= deadline {
                    break;
                }
                let started = Instant::now();
                let result = call(connection as usize).await;
                recorder.record(endpoint, started.elapsed(), &result, |reply| {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::{
        Json, Router,
        routing::{get, post},
    };
    use serde_json::json;

    use super::*;

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
            statement_rate: None,
            rate: None,
            no_floors: false,
            floor_redis_url: None,
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

    /// A paced run never sends faster than its rate: the same load for every setting compared.
    #[tokio::test]
    async fn a_paced_run_sends_no_more_than_its_rate() {
        let app = Router::new().route(
            "/api/concert/get-concerts",
            get(|| async { Json(json!([])) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let targets = Arc::new(Targets {
            client: Client::new(&base),
            next_user: AtomicU64::new(1),
            checks: Vec::new(),
            available_seats: String::new(),
            options_with_counts: String::new(),
        });
        let recorder = Arc::new(Recorder::new());
        let load = Load {
            connections: 4,
            rate: Some(200.0),
        };
        let requests = closed_loop(&targets, Kind::GetConcerts, load, 0.5, &recorder)
            .await
            .unwrap();
        // 200/s for 0.5 s, each connection's first turn at once: at most 100 + 4.
        assert!((1..=104).contains(&requests), "{requests} requests");
        let unpaced = Load {
            connections: 4,
            rate: None,
        };
        let flat_out = closed_loop(&targets, Kind::GetConcerts, unpaced, 0.5, &recorder)
            .await
            .unwrap();
        assert!(flat_out > 104, "{flat_out} requests as fast as answered");
    }
}
