//! `cargo xtask bench`: the standard set of load runs, each beside this machine's own limits
//! measured in the same invocation. Every run gets a freshly started system (own ports, fresh
//! databases, own queue key prefix) and writes a report folder under target/bench/<time>/;
//! afterwards docs/benchmarks.md and the README's results table are rewritten from them.

mod auth_cost;
mod cost;
mod faults;
mod format;
mod plans;
mod presale;
mod tables;
mod tracing_cost;
mod tracing_instructions;

use std::{collections::BTreeMap, net::SocketAddr, path::Path, process::ExitCode};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use plans::{
    Plan, RATE_LIMIT_UNREACHABLE, System, Tracing, WAITING_ROOM, plans, with_earlier_figures,
};

use crate::{
    launch::{self, AuthMode, GatewayAuth, SystemSpec},
    process,
    stores::{self, StoreArgs},
    supervise::{Backoff, Supervisor},
};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    stores: StoreArgs,
    /// Short runs with small numbers: checks the machinery, measures little.
    #[arg(long)]
    quick: bool,
    /// Only these runs (names as in the report, e.g. `limits,contention`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Leave docs/benchmarks.md and the README as they are.
    #[arg(long)]
    no_docs: bool,
    /// Use the binaries already built.
    #[arg(long)]
    no_build: bool,
    /// Keep the profile of every measured window of the instruction-counting runs, per service
    /// (in the run's folder: `callgrind/<service>.<pid>.<part>`; read with `callgrind_annotate`).
    #[arg(long)]
    profiles: bool,
}

const CATALOG_DB: &str = "ticketing_bench_catalog";
const RESERVATION_DB: &str = "ticketing_bench_reservation";

/// The stores' processes as the load generator's `--cpu-pid` takes them.
const STORE_PROCESSES: [&str; 2] = ["redis=comm:redis-server", "postgresql=comm:postgres"];

/// Where the load generator receives the services' spans.
const COLLECTOR: &str = "127.0.0.1:14317";

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

fn spec(system: System, name: &str, stamp: &str, auth: GatewayAuth) -> SystemSpec {
    let mut env = system.tracing.env();
    // A fresh waiting room per run, whatever earlier runs left in Redis.
    env.push(("QUEUE_KEY_PREFIX", format!("bench-{stamp}-{name}")));
    env.push(("GATEWAY_RATE_LIMIT_PER_SEC", RATE_LIMIT_UNREACHABLE.into()));
    env.push(("GATEWAY_RATE_LIMIT_BURST", RATE_LIMIT_UNREACHABLE.into()));
    if let Some(seats) = system.max_seats_per_user {
        env.push(("RESERVATION_MAX_SEATS_PER_USER", seats.to_string()));
    }
    let [queue, catalog, reservation] = launch::blocks(18051, system.replicas);
    SystemSpec {
        gateway_addr: addr(18080),
        queue_addr: queue,
        catalog_addr: catalog,
        reservation_addr: reservation,
        replicas: system.replicas,
        metrics: launch::MetricsAddrs::from_port(19180, system.replicas),
        catalog_database: CATALOG_DB,
        reservation_database: RESERVATION_DB,
        admission_rate: system.admission_rate,
        active_cap: system.active_cap,
        seed: system.seed,
        env,
        auth,
        counted: system.counted,
        profiles: None,
    }
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let stamp = timestamp();
    let plans: Vec<Plan> = plans(args.quick)
        .into_iter()
        .filter(|plan| args.only.is_empty() || args.only.iter().any(|n| n == plan.name))
        .collect();
    if plans.is_empty() {
        bail!("no run is called {:?}", args.only);
    }
    // Every run uses the same ports (more of them with more replicas).
    spec(WAITING_ROOM, "check", &stamp, GatewayAuth::Trusted).check_free()?;
    for system in plans.iter().filter_map(|plan| plan.system) {
        spec(system, "check", &stamp, GatewayAuth::Trusted).check_free()?;
    }
    if !args.no_build {
        launch::build_release(&["loadtest"]).await?;
    }
    // callgrind_control: the runs that count instructions (`plans::COUNTED_RUNS`).
    stores::ensure_programs(&[
        ("wrk", "wrk"),
        ("redis-benchmark", "redis-tools"),
        ("callgrind_control", "valgrind"),
    ])
    .await?;
    let stores = stores::ensure(&args.stores).await?;
    let folder = process::target_dir().join("bench").join(&stamp);
    std::fs::create_dir_all(&folder)?;

    let mut results: BTreeMap<&'static str, Value> = BTreeMap::new();
    let mut failures = Vec::new();
    for plan in &plans {
        eprintln!("\nbench: ── {} ──", plan.name);
        let out = folder.join(plan.name);
        let outcome = match plan.system {
            None => {
                let mut words = plan.args.clone();
                words.extend([
                    "--redis-url".into(),
                    stores.redis_url.clone(),
                    "--database-url".into(),
                    stores.database_url.clone(),
                ]);
                loadtest(&words, None, &out, Spans::None, &[], &[]).await
            }
            Some(system) if system.faults => {
                // It stalls and restarts its stores: private ones of its own, stopped after.
                let words = with_earlier_figures(plan, &results);
                match stores::private(faults::RUN).await {
                    Ok(own) => {
                        let result =
                            run_on_system(&own, plan, &words, system, &stamp, &out, args.profiles)
                                .await;
                        own.stop().await;
                        result
                    }
                    Err(error) => Err(error),
                }
            }
            Some(system) => {
                let words = with_earlier_figures(plan, &results);
                run_on_system(&stores, plan, &words, system, &stamp, &out, args.profiles).await
            }
        };
        match outcome {
            Ok(result) => {
                if result["broken"] == true {
                    eprintln!("bench: {} broke a check (recorded)", plan.name);
                    failures.push(plan.name);
                }
                results.insert(plan.name, result);
            }
            Err(error) => {
                eprintln!("bench: {} failed: {error:#}", plan.name);
                failures.push(plan.name);
            }
        }
    }
    stores.stop().await;

    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "when": stamp,
        "quick": args.quick,
    });
    std::fs::write(
        folder.join("summary.json"),
        serde_json::to_string_pretty(&json!({"machine": machine, "runs": results}))?,
    )?;
    std::fs::write(folder.join("index.html"), tables::index_html(&results))?;
    let markdown = tables::benchmarks_markdown(&results, &machine);
    std::fs::write(folder.join("benchmarks.md"), &markdown)?;
    println!("{}", tables::results_table(&results));
    println!("report: {}", folder.join("index.html").display());
    if !args.no_docs && !args.quick && args.only.is_empty() {
        publish(&folder, &markdown, &results)?;
    }
    if !failures.is_empty() {
        eprintln!("bench: runs that failed: {failures:?}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts a fresh system for the run on `stores`, runs it with `words`, notes the services'
/// peak memory, stops it. A counted system keeps its services' profiles in the run's folder
/// when `profiles`.
async fn run_on_system(
    stores: &stores::Stores,
    plan: &Plan,
    words: &[String],
    system: System,
    stamp: &str,
    out: &Path,
    profiles: bool,
) -> anyhow::Result<Value> {
    for database in [CATALOG_DB, RESERVATION_DB] {
        kit::postgres::drop_database(&stores.database_url, database).await?;
    }
    let auth = GatewayAuth::for_mode(system.auth)?;
    let mut spec = spec(system, plan.name, stamp, auth);
    if profiles && spec.counted {
        let folder = out.join("callgrind");
        std::fs::create_dir_all(&folder)?;
        spec.profiles = Some(folder);
    }
    let mut presale = launch::PresaleSeed::default();
    // What the load generator's own environment needs: the operator's secret for a run that
    // schedules a room (kept out of its arguments, which the report records).
    let mut loadtest_env = Vec::new();
    // `cost` runs the hold's statement on reservation's own database and the queue pair's bare
    // path against the queue's Redis (other runs ignore both).
    loadtest_env.push((
        "LOADTEST_RESERVATION_DATABASE_URL",
        stores.database(RESERVATION_DB)?,
    ));
    loadtest_env.push(("LOADTEST_FLOOR_REDIS_URL", stores.redis_url.clone()));
    if let Some(seats) = system.presale_seats {
        presale = launch::PresaleSeed { concerts: 1, seats };
        if spec.auth == GatewayAuth::Trusted {
            let token = launch::fresh_admin_token()?;
            spec.env.push(("GATEWAY_ADMIN_TOKEN", token.clone()));
            loadtest_env.push(("GATEWAY_ADMIN_TOKEN", token));
        }
    }
    let mut running: Vec<(&'static str, Child)> = Vec::new();
    let result = match launch::start_all_with(&spec, presale, stores, &mut running).await {
        Ok(()) => {
            let gateway = format!("http://{}", spec.gateway_addr);
            let spans = match system.tracing {
                Tracing::Off => Spans::None,
                Tracing::Sampled(_) => Spans::Collected,
                Tracing::Discarded(_) => Spans::Discarded,
            };
            // The services' and the stores' CPU is charged to the runs that measure it (holds,
            // issue-tokens, cost). The stores by command name: PostgreSQL is one process per
            // connection, and either store may be the machine's own server, not our child.
            let mut global: Vec<String> = running
                .iter()
                .filter_map(|(name, child)| Some(format!("--cpu-pid={name}={}", child.id()?)))
                .collect();
            global.extend(STORE_PROCESSES.iter().map(|p| format!("--cpu-pid={p}")));
            if let GatewayAuth::Jwt { key_dir } = &spec.auth {
                global.push("--auth-key-dir".into());
                global.push(key_dir.display().to_string());
            }
            if system.faults {
                // The processes the faults go to, and a supervisor that starts a killed or
                // stopped service again, as `up` does (the stores are the run's own).
                let mut words = words.to_vec();
                words.extend(faults::targets(&spec, &running, stores)?);
                let load = loadtest(&words, Some(&gateway), out, spans, &global, &loadtest_env);
                let respawn = |name| Ok(launch::serving(name, &spec, stores)?.spawn()?);
                Supervisor::new(Backoff::default())
                    .keep_up_until(&mut running, respawn, load)
                    .await
                    .and_then(|result| result)
            } else {
                loadtest(words, Some(&gateway), out, spans, &global, &loadtest_env).await
            }
        }
        Err(error) => Err(error),
    };
    let memory = peak_memory(&running);
    process::stop_all(&mut running).await;
    let mut result = result?;
    result["services_peak_rss_mb"] = memory;
    result["gateway_auth"] = json!(match spec.auth.mode() {
        AuthMode::Trusted => "trusted",
        AuthMode::Jwt => "jwt",
    });
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    Ok(result)
}

/// Each service's peak resident memory (VmHWM) in MB, and their total.
fn peak_memory(running: &[(&'static str, Child)]) -> Value {
    let mut by_service = serde_json::Map::new();
    let mut total = 0.0;
    for (name, child) in running {
        let Some(pid) = child.id() else { continue };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
        {
            by_service.insert((*name).into(), json!(kb / 1024.0));
            total += kb / 1024.0;
        }
    }
    json!({"total": total, "by_service": by_service})
}

/// Runs the load generator; its JSON report on stdout is ours, its progress on stderr the
/// reader's.
/// What the load generator does with the services' span exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spans {
    /// None are sent.
    None,
    /// Collected for the run's breakdown of where the time went.
    Collected,
    /// Answered and discarded.
    Discarded,
}

async fn loadtest(
    words: &[String],
    gateway: Option<&str>,
    out: &Path,
    spans: Spans,
    global: &[String],
    env: &[(&str, String)],
) -> anyhow::Result<Value> {
    let binary = process::release_binary("loadtest");
    let mut command = Command::new(binary);
    command.args(global);
    command.envs(env.iter().map(|(name, value)| (*name, value.as_str())));
    if let Some(gateway) = gateway {
        command.args(["--gateway", gateway]);
    }
    command.arg("--out").arg(out);
    match spans {
        Spans::None => {}
        Spans::Collected => {
            command.args(["--collect-spans", COLLECTOR]);
        }
        Spans::Discarded => {
            command.args(["--discard-spans", COLLECTOR]);
        }
    }
    command.args(words);
    let output = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("running loadtest")?
        .wait_with_output()
        .await?;
    let report: Option<Value> = serde_json::from_slice(&output.stdout).ok();
    match report {
        Some(report) if output.status.success() => Ok(report),
        // A check the run found broken: its figures are still the run's, and say what broke.
        Some(mut report) if report["scenario"].is_string() => {
            report["broken"] = json!(true);
            Ok(report)
        }
        _ => bail!("loadtest {} failed", words.join(" ")),
    }
}

/// Copies the run's charts and summaries into docs/benchmarks/ and rewrites
/// docs/benchmarks.md and the README's results table.
fn publish(
    folder: &Path,
    markdown: &str,
    results: &BTreeMap<&'static str, Value>,
) -> anyhow::Result<()> {
    let docs = process::root().join("docs");
    let charts = docs.join("benchmarks");
    // A run the standard set no longer has (renamed or dropped) leaves no stale folder behind.
    for entry in std::fs::read_dir(&charts)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if path.is_dir() && !results.contains_key(name) {
            std::fs::remove_dir_all(&path)?;
        }
    }
    for name in results.keys() {
        let to = charts.join(name);
        std::fs::create_dir_all(&to)?;
        for file in ["charts.html", "summary.json", "series.csv"] {
            let from = folder.join(name).join(file);
            if from.exists() {
                std::fs::copy(&from, to.join(file))?;
            }
        }
    }
    std::fs::write(charts.join("index.html"), tables::index_html(results))?;
    std::fs::write(docs.join("benchmarks.md"), markdown)?;
    let readme_path = process::root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path)?;
    let updated = tables::replace_between_markers(&readme, &tables::results_table(results))
        .context("README.md has no <!-- bench:results --> markers")?;
    std::fs::write(readme_path, updated)?;
    eprintln!(
        "bench: refreshed docs/benchmarks.md, docs/benchmarks/ and the README's results table"
    );
    Ok(())
}

/// UTC time as `YYYYMMDD-HHMMSS`, for folder names.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
