//! `limits`: this machine's own ceilings, measured in the same invocation so every figure of a
//! run can be quoted as a ratio: a bare axum handler driven by this generator and by `wrk`
//! (the generator must reach ≥ 70% of wrk, or it would be the bottleneck), `redis-benchmark`
//! (single commands on the same Redis) and `pgbench -N` (small write transactions on the same
//! PostgreSQL).

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::{
    children::{self, Workers},
    programs,
    recorder::Recorder,
    report::Run,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Connections (generator, wrk, redis-benchmark).
    #[arg(long, default_value_t = 64)]
    pub connections: u64,
    /// pgbench clients (the holds benchmark's users, so the two compare).
    #[arg(long, default_value_t = 32)]
    pub pgbench_clients: u64,
    /// The Redis to measure (skipped when absent).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// A PostgreSQL server URL; pgbench runs in a fresh database `ticketing_limits_pgbench` on it.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<Run> {
    let server = children::spawn(&["bare-server"], Workers::PerCore).await?;
    let addr = server.addr;
    let recorder = Arc::new(Recorder::new());
    eprintln!(
        "limits: bare handler at {addr}: this generator, {} connections, {} s",
        args.connections, args.seconds
    );
    let generator = closed_loop(addr, &args, &recorder).await;
    let wrk = match programs::find("wrk") {
        Some(wrk) => {
            eprintln!(
                "limits: wrk, {} connections, {} s",
                args.connections, args.seconds
            );
            Some(run_wrk(&wrk, addr, &args).await)
        }
        None => None,
    };
    drop(server);
    let generator = generator?;
    let wrk = wrk.transpose()?;
    let redis = match &args.redis_url {
        Some(url) => Some(redis_benchmark(url, &args).await?),
        None => None,
    };
    let pgbench = match &args.database_url {
        Some(url) => Some(pgbench(url, &args).await?),
        None => None,
    };
    let bare_limit = wrk.unwrap_or(0.0).max(generator);
    eprintln!(
        "limits: bare handler {generator:.0} req/s by this generator, {} by wrk ({}); redis {}; pgbench -N {}",
        wrk.map_or("—".into(), |w| format!("{w:.0} req/s")),
        wrk.map_or("no wrk".into(), |w| format!(
            "{:.0}% of wrk",
            generator / w * 100.0
        )),
        redis
            .as_ref()
            .map_or("—".into(), |r| format!("{}", r["get"])),
        pgbench.map_or("—".into(), |p| format!("{p:.0} tps")),
    );
    Ok(Run {
        scenario: "limits",
        parameters: json!({
            "seconds": args.seconds, "connections": args.connections,
            "pgbench_clients": args.pgbench_clients,
        }),
        results: json!({
            "bare_handler_rps_generator": generator,
            "bare_handler_rps_wrk": wrk,
            "generator_vs_wrk": wrk.map(|w| generator / w),
            "bare_handler_limit_rps": bare_limit,
            "redis_benchmark_rps": redis,
            "pgbench_n_tps": pgbench,
        }),
        series: recorder.series(),
        summary: recorder.summary(),
        breakdown: None,
    })
}

/// wrk-style: each connection sends its next request as soon as the last answer arrived.
async fn closed_loop(
    addr: std::net::SocketAddr,
    args: &Args,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let connections = (0..args.connections).map(|_| {
        let recorder = recorder.clone();
        tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let _alive = recorder.user();
            let mut done = 0_u64;
            while Instant::now() < deadline {
                let request = hyper::Request::get("/")
                    .header("host", addr.to_string())
                    .body(Empty::<Bytes>::new())?;
                let sent = Instant::now();
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                response.into_body().collect().await?;
                recorder.record_outcome(
                    "GET / (bare handler)",
                    sent.elapsed(),
                    (status != 200).then(|| status.to_string()),
                );
                done += 1;
            }
            anyhow::Ok(done)
        })
    });
    let mut total = 0;
    for connection in futures::future::join_all(connections).await {
        total += connection??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn run_wrk(wrk: &PathBuf, addr: std::net::SocketAddr, args: &Args) -> anyhow::Result<f64> {
    let output = Command::new(wrk)
        .args([
            "-t2",
            &format!("-c{}", args.connections),
            &format!("-d{}s", args.seconds),
            &format!("http://{addr}/"),
        ])
        .output()
        .await?;
    let out = String::from_utf8_lossy(&output.stdout);
    out.lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|n| n.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {out}"))
}

/// Single commands (PING, SET, GET) from `redis-benchmark`, requests/s by command.
async fn redis_benchmark(url: &str, args: &Args) -> anyhow::Result<Value> {
    let Some(binary) = programs::find("redis-benchmark") else {
        return Ok(json!({"skipped": "redis-benchmark is not installed"}));
    };
    let (host, port) = redis_host_port(url);
    eprintln!("limits: redis-benchmark on {host}:{port}");
    let output = Command::new(binary)
        .args(["-h", &host, "-p", &port.to_string()])
        .args(["-c", &args.connections.to_string(), "-n", "200000"])
        .args(["-t", "ping,set,get", "-q", "--csv"])
        .output()
        .await?;
    let out = String::from_utf8_lossy(&output.stdout);
    let mut rates = serde_json::Map::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        if let (Some(name), Some(Ok(rps))) =
            (fields.first(), fields.get(1).map(|r| r.parse::<f64>()))
        {
            rates.insert(name.to_lowercase(), json!(rps));
        }
    }
    if rates.is_empty() {
        bail!("no rates in redis-benchmark's output: {out}");
    }
    Ok(Value::Object(rates))
}

fn redis_host_port(url: &str) -> (String, u16) {
    let rest = url.trim_start_matches("redis://");
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().unwrap_or(6379)),
        None => (authority.to_owned(), 6379),
    }
}

const PGBENCH_DB: &str = "ticketing_limits_pgbench";

/// `pgbench -N` (TPC-B-like without the contended branch/teller updates) on a fresh database.
async fn pgbench(server_url: &str, args: &Args) -> anyhow::Result<f64> {
    let binary = programs::find("pgbench")
        .context("pgbench not found (it ships with the PostgreSQL server packages)")?;
    kit::postgres::drop_database(server_url, PGBENCH_DB).await?;
    let url = kit::postgres::with_database(server_url, PGBENCH_DB).map_err(anyhow::Error::msg)?;
    kit::postgres::ensure_database(&url).await;
    let init = Command::new(&binary)
        .args(["-i", "-s", "10", "-q", &url])
        .output()
        .await?;
    if !init.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    eprintln!(
        "limits: pgbench -N, {} clients, {} s",
        args.pgbench_clients, args.seconds
    );
    let run = Command::new(&binary)
        .args(["-N", "-c", &args.pgbench_clients.to_string(), "-j", "2"])
        .args(["-T", &args.seconds.to_string(), &url])
        .output()
        .await?;
    let out = String::from_utf8_lossy(&run.stdout);
    out.lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {out}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::{Args, closed_loop, redis_host_port};
    use crate::{recorder::Recorder, report::Run};

    /// The generator against a real server on port 0, then the report folder it writes.
    #[tokio::test]
    async fn the_generator_drives_a_real_server_and_writes_a_report_that_opens() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, crate::bare_server::app()).await });
        let recorder = Arc::new(Recorder::new());
        let args = Args {
            seconds: 1,
            connections: 4,
            pgbench_clients: 1,
            redis_url: None,
            database_url: None,
        };
        let rate = closed_loop(addr, &args, &recorder).await.unwrap();
        let summary = recorder.summary();
        assert!(summary.requests > 100, "{summary:?}");
        assert_eq!(summary.errors, 0);
        assert!(rate > 100.0, "{rate}");
        assert_eq!(summary.peak_active_users, 4);

        let folder = std::env::temp_dir().join(format!("loadtest-report-{}", std::process::id()));
        let requests = summary.requests;
        let run = Run {
            scenario: "limits",
            parameters: json!({"seconds": 1}),
            results: json!({"bare_handler_rps_generator": rate}),
            series: recorder.series(),
            summary,
            breakdown: None,
        };
        run.write(&folder).unwrap();
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(written["summary"]["requests"], requests);
        let csv = std::fs::read_to_string(folder.join("series.csv")).unwrap();
        assert!(csv.starts_with("t,requests,"), "{csv}");
        let counted: u64 = csv
            .lines()
            .skip(1)
            .filter_map(|line| line.split(',').nth(1)?.parse::<u64>().ok())
            .sum();
        assert_eq!(counted, requests, "the per-second rows add up to the run");
        let html = std::fs::read_to_string(folder.join("charts.html")).unwrap();
        assert_eq!(html.matches("<svg").count(), 3);
        std::fs::remove_dir_all(&folder).unwrap();
    }

    #[test]
    fn redis_urls_split_into_host_and_port() {
        assert_eq!(
            redis_host_port("redis://127.0.0.1:6380/0"),
            ("127.0.0.1".into(), 6380)
        );
        assert_eq!(redis_host_port("redis://:pw@cache"), ("cache".into(), 6379));
    }
}
