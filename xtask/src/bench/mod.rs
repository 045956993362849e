//! `cargo xtask bench`: the standard set of load runs, each beside this machine's own limits
//! measured in the same invocation. Every run gets a freshly started system (own ports, fresh
//! databases, own queue key prefix) and writes a report folder under target/bench/<time>/;
//! afterwards docs/benchmarks.md and the README's results table are rewritten from them.

mod auth_cost;
mod cost;
mod format;
mod presale;
mod tables;

use std::{collections::BTreeMap, net::SocketAddr, path::Path, process::ExitCode};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{
    launch::{self, AuthMode, GatewayAuth, SystemSpec},
    process,
    stores::{self, StoreArgs},
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

/// Tracing settings a run is measured under.
#[derive(Clone, Copy, Debug)]
enum Tracing {
    Off,
    Sampled(f64),
}

impl Tracing {
    fn env(self) -> Vec<(&'static str, String)> {
        match self {
            // Also when the user's environment names a collector.
            Self::Off => vec![("OTEL_TRACES_EXPORTER", "none".into())],
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

/// The system a run needs.
#[derive(Clone, Copy, Debug)]
struct System {
    admission_rate: Option<f64>,
    active_cap: Option<u32>,
    /// Concerts × options × seats seeded.
    seed: (i64, i64, i32),
    tracing: Tracing,
    /// The gateway's identity mode (jwt: the development key, tokens minted by the generator).
    auth: AuthMode,
    /// RESERVATION_MAX_SEATS_PER_USER (None: the service's default, 4 per user per concert).
    max_seats_per_user: Option<u32>,
    /// Seats of one presale concert seeded after the others (its own waiting room), and the
    /// operator's admin token given to the run.
    presale_seats: Option<i32>,
}

/// One run of the standard set.
struct Plan {
    name: &'static str,
    /// `None`: the run measures the machine, not the system.
    system: Option<System>,
    args: Vec<String>,
}

fn args(words: &str) -> Vec<String> {
    words.split_whitespace().map(str::to_owned).collect()
}

/// The original waiting room admitted a few per second; these runs use the default (10/s).
const WAITING_ROOM: System = System {
    admission_rate: None,
    active_cap: None,
    seed: (1, 10, 50),
    tracing: Tracing::Off,
    auth: AuthMode::Trusted,
    max_seats_per_user: None,
    presale_seats: None,
};

/// Everyone admitted at once: for runs that measure seats, not the waiting room.
const OPEN_DOORS: System = System {
    admission_rate: Some(10_000.0),
    active_cap: Some(0),
    seed: (1, 100, 1000),
    tracing: Tracing::Off,
    auth: AuthMode::Trusted,
    max_seats_per_user: None,
    presale_seats: None,
};

/// Open doors for `holds`: 32 users hold thousands of seats each, so the per-user seat limit
/// (4 per concert by default) is off — the run measures how fast seats are held, not the
/// limit refusing them.
const HOLDS: System = System {
    max_seats_per_user: Some(0),
    ..OPEN_DOORS
};

/// Admission well above the arrival rate, every span collected for the breakdown.
const BOOKING: System = System {
    admission_rate: Some(50.0),
    active_cap: Some(0),
    seed: (1, 100, 1000),
    tracing: Tracing::Sampled(1.0),
    auth: AuthMode::Trusted,
    max_seats_per_user: None,
    presale_seats: None,
};

/// `cargo xtask up`'s system (demo data, the default admission), for what one request costs.
const COST: System = WAITING_ROOM;

/// A presale concert (its own room) beside the demo data; the run schedules its opening.
const PRESALE: System = System {
    presale_seats: Some(2000),
    ..WAITING_ROOM
};

/// The gateway's per-caller rate limit, far above what any run's users send: the bench
/// measures capacity and cost, not the limiter's policy (in jwt mode the per-subject limiter
/// still runs: part of what jwt costs).
const RATE_LIMIT_UNREACHABLE: &str = "1000000";

/// The standard set: the original report's experiments, then the limits they are judged by.
fn plans(quick: bool) -> Vec<Plan> {
    let pick = |full: &str, short: &str| args(if quick { short } else { full });
    let holds = "holds --users 32 --options 100 --seats 1000";
    let mut plans = vec![
        Plan {
            name: "limits",
            system: None,
            args: pick("limits --seconds 10", "limits --seconds 3"),
        },
        Plan {
            name: "queue-spike-10k",
            system: Some(WAITING_ROOM),
            args: pick(
                "queue-spike --rate 1000 --users 10000 --linger 30",
                "queue-spike --rate 500 --users 2000 --linger 5",
            ),
        },
        Plan {
            name: "queue-spike-50k",
            system: Some(WAITING_ROOM),
            args: pick(
                "queue-spike --rate 2000 --users 50000 --linger 30",
                "queue-spike --rate 1000 --users 5000 --linger 5",
            ),
        },
        Plan {
            name: "capacity",
            system: Some(WAITING_ROOM),
            args: pick(
                "capacity --start-rate 500 --step-rate 500 --step-seconds 5 --overload-seconds 60 --recovery-seconds 30",
                "capacity --start-rate 1000 --step-rate 1000 --step-seconds 2 --overload-seconds 10 --recovery-seconds 10",
            ),
        },
        Plan {
            name: "reserve-flow-7",
            system: Some(BOOKING),
            args: pick(
                "reserve-flow --rate 7 --seconds 60 --linger 30",
                "reserve-flow --rate 7 --seconds 5 --linger 10",
            ),
        },
        Plan {
            name: "reserve-flow-14",
            system: Some(BOOKING),
            args: pick(
                "reserve-flow --rate 14 --seconds 60 --linger 30",
                "reserve-flow --rate 14 --seconds 5 --linger 10",
            ),
        },
        Plan {
            name: "contention",
            system: Some(OPEN_DOORS),
            args: pick(
                "contention --users 2000 --rate 1000 --seats 20",
                "contention --users 300 --rate 300 --seats 10",
            ),
        },
        Plan {
            name: "holds-tracing-off",
            system: Some(HOLDS),
            args: pick(
                &format!("{holds} --seconds 20"),
                &format!("{holds} --seconds 3"),
            ),
        },
        Plan {
            name: "holds-tracing-1pct",
            system: Some(System {
                tracing: Tracing::Sampled(0.01),
                ..HOLDS
            }),
            args: pick(
                &format!("{holds} --seconds 20"),
                &format!("{holds} --seconds 3"),
            ),
        },
        Plan {
            name: "holds-tracing-100pct",
            system: Some(System {
                tracing: Tracing::Sampled(1.0),
                ..HOLDS
            }),
            args: pick(
                &format!("{holds} --seconds 20"),
                &format!("{holds} --seconds 3"),
            ),
        },
    ];
    // What one request of each kind costs every process, under each tracing setting (the
    // holds runs above are the hold's row of the same table).
    for (tracing, name) in [
        (Tracing::Off, "cost-tracing-off"),
        (Tracing::Sampled(0.01), "cost-tracing-1pct"),
        (Tracing::Sampled(1.0), "cost-tracing-100pct"),
    ] {
        plans.push(Plan {
            name,
            system: Some(System { tracing, ..COST }),
            args: pick(
                "cost --seconds 10 --warmup-seconds 2",
                "cost --seconds 2 --warmup-seconds 1",
            ),
        });
    }
    // A scheduled opening: 20,000 fans in the pre-queue for 2,000 seats (concert 2, after
    // the demo concert).
    plans.push(Plan {
        name: presale::RUN,
        system: Some(System {
            presale_seats: Some(if quick { 200 } else { 2000 }),
            ..PRESALE
        }),
        args: pick(
            "presale --fans 20000 --late-fans 300 --prequeue-secs 30 --concert 2 --admission-rate 200 --active-cap 1000",
            "presale --fans 2000 --late-fans 100 --prequeue-secs 10 --concert 2 --admission-rate 200 --active-cap 300",
        ),
    });
    // What verifying bearer tokens costs: the same load with GATEWAY_AUTH=trusted, then =jwt,
    // each on a fresh system, back to back.
    for (mode, name) in [
        (AuthMode::Trusted, "issue-token-trusted"),
        (AuthMode::Jwt, "issue-token-jwt"),
    ] {
        plans.push(Plan {
            name,
            system: Some(System {
                auth: mode,
                ..WAITING_ROOM
            }),
            args: pick(
                "issue-tokens --rate 1000 --seconds 20",
                "issue-tokens --rate 500 --seconds 3",
            ),
        });
    }
    for (mode, name) in [
        (AuthMode::Trusted, "holds-auth-trusted"),
        (AuthMode::Jwt, "holds-auth-jwt"),
    ] {
        plans.push(Plan {
            name,
            system: Some(System {
                auth: mode,
                ..HOLDS
            }),
            args: pick(
                &format!("{holds} --seconds 20"),
                &format!("{holds} --seconds 3"),
            ),
        });
    }
    plans
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
    SystemSpec {
        gateway_addr: addr(18080),
        queue_addr: addr(18051),
        catalog_addr: addr(18052),
        reservation_addr: addr(18053),
        metrics: launch::MetricsAddrs::from_port(19180),
        catalog_database: CATALOG_DB,
        reservation_database: RESERVATION_DB,
        admission_rate: system.admission_rate,
        active_cap: system.active_cap,
        seed: system.seed,
        env,
        auth,
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
    // Every run uses the same ports.
    spec(WAITING_ROOM, "check", &stamp, GatewayAuth::Trusted).check_free()?;
    if !args.no_build {
        launch::build_release(&["loadtest"]).await?;
    }
    for (tool, package) in [("wrk", "wrk"), ("redis-benchmark", "redis-tools")] {
        if process::find_binary(tool).is_none() {
            stores::apt_install(&[package]).await?;
        }
    }
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
                loadtest(&words, None, &out, false, &[], &[]).await
            }
            Some(system) => run_on_system(&stores, plan, system, &stamp, &out).await,
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

/// Starts a fresh system for the run, runs it, notes the services' peak memory, stops it.
async fn run_on_system(
    stores: &stores::Stores,
    plan: &Plan,
    system: System,
    stamp: &str,
    out: &Path,
) -> anyhow::Result<Value> {
    for database in [CATALOG_DB, RESERVATION_DB] {
        kit::postgres::drop_database(&stores.database_url, database).await?;
    }
    let auth = GatewayAuth::for_mode(system.auth)?;
    let mut spec = spec(system, plan.name, stamp, auth);
    let mut presale = launch::PresaleSeed::default();
    // What the load generator's own environment needs: the operator's secret for a run that
    // schedules a room (kept out of its arguments, which the report records).
    let mut loadtest_env = Vec::new();
    // `cost` runs the hold's statement on reservation's own database (other runs ignore it).
    loadtest_env.push((
        "LOADTEST_RESERVATION_DATABASE_URL",
        kit::postgres::with_database(&stores.database_url, RESERVATION_DB)
            .map_err(anyhow::Error::msg)?,
    ));
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
            let collect = matches!(system.tracing, Tracing::Sampled(_));
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
            loadtest(
                &plan.args,
                Some(&gateway),
                out,
                collect,
                &global,
                &loadtest_env,
            )
            .await
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
async fn loadtest(
    words: &[String],
    gateway: Option<&str>,
    out: &Path,
    collect_spans: bool,
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
    if collect_spans {
        command.args(["--collect-spans", COLLECTOR]);
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
