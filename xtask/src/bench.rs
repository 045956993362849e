//! `cargo xtask bench`: the system against this machine's own limits, measured in one run.
//! Starts the system on its own ports and fresh databases (100 options × 1,000 seats), runs
//! `pgbench -N` on the same PostgreSQL, then the `holds` load scenario through the gateway, and
//! prints holds/s as a ratio of pgbench's transactions/s.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{
    launch::{self, SystemSpec},
    stores::{self, StoreArgs},
};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    stores: StoreArgs,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent users (load-test) and clients (pgbench).
    #[arg(long, default_value_t = 32)]
    users: u64,
    /// Use the binaries already built.
    #[arg(long)]
    no_build: bool,
}

const CATALOG_DB: &str = "ticketing_bench_catalog";
const RESERVATION_DB: &str = "ticketing_bench_reservation";
const PGBENCH_DB: &str = "ticketing_bench_pgbench";

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Where the load generator receives the services' spans.
const COLLECTOR: &str = "127.0.0.1:14317";

/// Tracing settings a run is measured under.
#[derive(Clone, Copy, Debug)]
enum Tracing {
    Off,
    Sampled(f64),
}

impl Tracing {
    fn label(self) -> String {
        match self {
            Self::Off => "tracing off".into(),
            Self::Sampled(ratio) => format!("tracing at {}% sampling", ratio * 100.0),
        }
    }

    fn env(self) -> Vec<(&'static str, String)> {
        match self {
            Self::Off => Vec::new(),
            Self::Sampled(ratio) => vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{COLLECTOR}")),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".into()),
                ("OTEL_TRACES_SAMPLER_ARG", ratio.to_string()),
                // Export often and buffer enough that a 100% run loses no spans.
                ("OTEL_BSP_SCHEDULE_DELAY", "500".into()),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "262144".into()),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096".into()),
            ],
        }
    }
}

fn spec(tracing: Tracing) -> SystemSpec {
    SystemSpec {
        gateway_addr: addr(18080),
        queue_addr: addr(18051),
        catalog_addr: addr(18052),
        reservation_addr: addr(18053),
        catalog_database: CATALOG_DB,
        reservation_database: RESERVATION_DB,
        // Admit the benchmark's users at once: this measures holds, not the waiting room.
        admission_rate: Some(10_000.0),
        active_cap: Some(0),
        seed: (1, 100, 1000),
        env: tracing.env(),
    }
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    spec(Tracing::Off).check_free()?;
    if !args.no_build {
        launch::build_release(&["loadtest"]).await?;
    }
    let stores = stores::ensure(&args.stores).await?;
    kit::postgres::drop_database(&stores.database_url, PGBENCH_DB).await?;
    let pgbench = pgbench(&stores.database_url, &args).await;

    let mut runs = Vec::new();
    for tracing in [Tracing::Off, Tracing::Sampled(0.01), Tracing::Sampled(1.0)] {
        eprintln!("bench: holds with {}", tracing.label());
        runs.push((tracing, run_holds(&stores, &args, tracing).await));
    }
    stores.stop().await;
    let pgbench_tps = pgbench?;
    let mut results = Vec::new();
    for (tracing, run) in runs {
        results.push((tracing, run?));
    }

    let holds_per_second = |holds: &Value| holds["holds_per_second"].as_f64().unwrap_or(0.0);
    let baseline = holds_per_second(&results[0].1);
    println!();
    println!(
        "| measure | holds/s | vs pgbench -N | vs tracing off | p50 ms | p99 ms | double bookings |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| pgbench -N ({} clients, {} s) | {pgbench_tps:.0} tps | 100% | | | | |",
        args.users, args.seconds
    );
    let mut clean = true;
    for (tracing, holds) in &results {
        let rate = holds_per_second(holds);
        println!(
            "| holds, {} ({} users) | {rate:.0} | {:.0}% | {:+.1}% | {} | {} | {} |",
            tracing.label(),
            args.users,
            rate / pgbench_tps * 100.0,
            (rate / baseline - 1.0) * 100.0,
            holds["latency"]["p50_ms"],
            holds["latency"]["p99_ms"],
            holds["double_bookings"],
        );
        clean &= holds["double_bookings"] == 0 && holds["availability_consistent"] == true;
    }
    let summary = json!({
        "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "pgbench_n_tps": pgbench_tps,
        "runs": results.iter().map(|(tracing, holds)| json!({"tracing": tracing.label(), "holds": holds})).collect::<Vec<_>>(),
    });
    let dir = launch::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("holds.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    println!(
        "written to {} (the 100% run carries the per-hop breakdown)",
        path.display()
    );
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One holds run on fresh databases, with the system started under `tracing`.
async fn run_holds(
    stores: &stores::Stores,
    args: &BenchArgs,
    tracing: Tracing,
) -> anyhow::Result<Value> {
    for database in [CATALOG_DB, RESERVATION_DB] {
        kit::postgres::drop_database(&stores.database_url, database).await?;
    }
    let spec = spec(tracing);
    let mut running: Vec<(&'static str, Child)> = Vec::new();
    let result = match launch::start_all(&spec, stores, &mut running).await {
        Ok(()) => holds(&spec, args, tracing).await,
        Err(error) => Err(error),
    };
    launch::stop_all(&mut running).await;
    result
}

/// `pgbench -N` (TPC-B-like without the contended branch/teller updates) on a fresh database
/// of the same server: this machine's limit for small write transactions.
async fn pgbench(server_url: &str, args: &BenchArgs) -> anyhow::Result<f64> {
    let binary = pgbench_binary()
        .context("pgbench not found (it ships with the PostgreSQL server package)")?;
    let url = kit::postgres::with_database(server_url, PGBENCH_DB).map_err(anyhow::Error::msg)?;
    let server =
        kit::postgres::with_database(server_url, "postgres").map_err(anyhow::Error::msg)?;
    sqlx_create_database(&server, PGBENCH_DB).await?;
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
    eprintln!("bench: pgbench -N for {} s", args.seconds);
    let clients = args.users.to_string();
    let run = Command::new(&binary)
        .args([
            "-N",
            "-c",
            &clients,
            "-j",
            "2",
            "-T",
            &args.seconds.to_string(),
            &url,
        ])
        .output()
        .await?;
    let out = String::from_utf8_lossy(&run.stdout);
    let tps = out
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line["tps = ".len()..].split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench output: {out}"))?;
    eprintln!("bench: pgbench -N {tps:.0} tps");
    Ok(tps)
}

async fn sqlx_create_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let url = kit::postgres::with_database(server_url, name).map_err(anyhow::Error::msg)?;
    kit::postgres::ensure_database(&url).await;
    Ok(())
}

fn pgbench_binary() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|dir| PathBuf::from(dir).join("pgbench"))
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path().join("bin/pgbench")),
        )
        .find(|candidate| candidate.is_file())
}

async fn holds(spec: &SystemSpec, args: &BenchArgs, tracing: Tracing) -> anyhow::Result<Value> {
    let binary = launch::target_dir().join("release").join("loadtest");
    let mut command = Command::new(binary);
    command
        .args([
            "--gateway",
            &format!("http://{}", spec.gateway_addr),
            "holds",
        ])
        .args([
            "--users",
            &args.users.to_string(),
            "--seconds",
            &args.seconds.to_string(),
        ])
        .args(["--options", "100", "--seats", "1000"]);
    if let Tracing::Sampled(_) = tracing {
        command.args(["--collect-spans", COLLECTOR]);
    }
    // Its JSON report on stdout is ours; its progress and breakdown on stderr are the reader's.
    let output = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .context("running loadtest")?
        .wait_with_output()
        .await?;
    if !output.status.success() {
        bail!("the holds scenario failed");
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}
