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

pub async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let spec = SystemSpec {
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
    };
    spec.check_free()?;
    if !args.no_build {
        launch::build_release(&["loadtest"]).await?;
    }
    let stores = stores::ensure(&args.stores).await?;
    for database in [CATALOG_DB, RESERVATION_DB, PGBENCH_DB] {
        kit::postgres::drop_database(&stores.database_url, database).await?;
    }

    let pgbench = pgbench(&stores.database_url, &args).await;
    let mut running: Vec<(&'static str, Child)> = Vec::new();
    let holds = match launch::start_all(&spec, &stores, &mut running).await {
        Ok(()) => holds(&spec, &args).await,
        Err(error) => Err(error),
    };
    launch::stop_all(&mut running).await;
    stores.stop().await;
    let (pgbench_tps, holds) = (pgbench?, holds?);

    let holds_per_second = holds["holds_per_second"].as_f64().unwrap_or(0.0);
    let ratio = holds_per_second / pgbench_tps;
    let summary = json!({
        "machine_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "pgbench_n_tps": pgbench_tps,
        "holds": holds,
        "holds_vs_pgbench": ratio,
    });
    let dir = launch::target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("holds.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| pgbench -N ({} clients, {} s) | {pgbench_tps:.0} tps |",
        args.users, args.seconds
    );
    println!(
        "| holds through the gateway ({} users) | {holds_per_second:.0} holds/s = {:.0}% of pgbench -N |",
        args.users,
        ratio * 100.0
    );
    println!(
        "| hold latency p50 / p99 | {} / {} ms |",
        holds["latency"]["p50_ms"], holds["latency"]["p99_ms"]
    );
    println!(
        "| double bookings / availability consistent | {} / {} |",
        holds["double_bookings"], holds["availability_consistent"]
    );
    println!("written to {}", path.display());
    let clean = holds["double_bookings"] == 0 && holds["availability_consistent"] == true;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

async fn holds(spec: &SystemSpec, args: &BenchArgs) -> anyhow::Result<Value> {
    let binary = launch::target_dir().join("release").join("loadtest");
    let output = Command::new(binary)
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
        .args(["--options", "100", "--seats", "1000"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("running loadtest")?;
    if !output.status.success() {
        bail!("the holds scenario failed");
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}
