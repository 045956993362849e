//! `cargo xtask fuzz`: a property-based fuzz of the whole HTTP API from its own OpenAPI document.
//! Starts the system on free private ports (never the defaults `cargo xtask up` uses), with its
//! own databases and Redis key prefix, and runs Schemathesis (pinned in xtask/fuzz/
//! requirements.txt, installed into target/fuzz-venv) against `/openapi.json` with every check:
//! no server errors, responses that match their schemas, documented status codes and content
//! types, rejection of invalid data. Once in `trusted` mode (with an admin token) and once in
//! `jwt` mode (with an operator's bearer token); exits non-zero on any failure.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::{
    launch::{self, AuthMode, GatewayAuth, SystemSpec},
    process,
    stores::{self, StoreArgs},
};

const CATALOG_DB: &str = "ticketing_fuzz_catalog";
const RESERVATION_DB: &str = "ticketing_fuzz_reservation";

#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    #[command(flatten)]
    stores: StoreArgs,

    /// Identity modes to fuzz in, one run each.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [AuthMode::Trusted, AuthMode::Jwt])]
    auth: Vec<AuthMode>,

    /// Test cases Schemathesis generates per operation and phase at most.
    #[arg(long, default_value_t = 100)]
    max_examples: u32,

    /// Use the binaries already built instead of building first.
    #[arg(long)]
    no_build: bool,

    /// Extra arguments for `schemathesis run` (after `--`).
    #[arg(last = true)]
    schemathesis_args: Vec<String>,
}

pub async fn fuzz(args: FuzzArgs) -> anyhow::Result<ExitCode> {
    let schemathesis = ensure_venv().await?;
    if !args.no_build {
        launch::build_release(&[]).await?;
    }
    let stores = stores::ensure(&args.stores).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let out = process::target_dir().join("fuzz").join(stamp.to_string());
    let mut failed = Vec::new();
    for mode in &args.auth {
        let name = match mode {
            AuthMode::Trusted => "trusted",
            AuthMode::Jwt => "jwt",
        };
        eprintln!("\nfuzz: ── {name} ──");
        let passed = run_one(&args, *mode, name, stamp, &stores, &schemathesis, &out).await;
        match passed {
            Ok(true) => {}
            Ok(false) => failed.push(name),
            Err(error) => {
                eprintln!("fuzz: {name}: {error:#}");
                failed.push(name);
            }
        }
    }
    stores.stop().await;
    eprintln!("fuzz: reports in {}", out.display());
    if failed.is_empty() {
        eprintln!("fuzz: no failures");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("fuzz: failures in {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// One system in `mode`, fuzzed; true when Schemathesis found nothing.
async fn run_one(
    args: &FuzzArgs,
    mode: AuthMode,
    name: &str,
    stamp: u128,
    stores: &stores::Stores,
    schemathesis: &Path,
    out: &Path,
) -> anyhow::Result<bool> {
    // Each run starts from the demo data alone.
    for database in [CATALOG_DB, RESERVATION_DB] {
        kit::postgres::drop_database(&stores.database_url, database)
            .await
            .with_context(|| format!("dropping {database}"))?;
    }
    let auth = GatewayAuth::for_mode(mode)?;
    let mut env = vec![
        ("QUEUE_KEY_PREFIX", format!("fuzz-{stamp}-{name}")),
        // Every generated request comes from one caller: no rate limit, no 429 noise.
        ("GATEWAY_RATE_LIMIT_PER_SEC", "0".to_owned()),
    ];
    // Each service's /metrics on a free port too, clear of a system on the default ones.
    for variable in [
        "QUEUE_METRICS_ADDR",
        "CATALOG_METRICS_ADDR",
        "RESERVATION_METRICS_ADDR",
        "GATEWAY_METRICS_ADDR",
    ] {
        env.push((variable, free_addr()?.to_string()));
    }
    let bearer = match &auth {
        GatewayAuth::Trusted => {
            // A private secret for this run only (the admin API is closed without one).
            let token = crate::launch::fresh_admin_token()?;
            env.push(("GATEWAY_ADMIN_TOKEN", token.clone()));
            token
        }
        GatewayAuth::Jwt { key_dir } => {
            crate::token::mint(key_dir, 1, true, Duration::from_secs(3600))?
        }
    };
    let spec = SystemSpec {
        gateway_addr: free_addr()?,
        queue_addr: free_addr()?,
        catalog_addr: free_addr()?,
        reservation_addr: free_addr()?,
        replicas: 1,
        metrics: launch::MetricsAddrs {
            gateway: free_addr()?,
            queue: free_addr()?,
            catalog: free_addr()?,
            reservation: free_addr()?,
        },
        catalog_database: CATALOG_DB,
        reservation_database: RESERVATION_DB,
        // Admitted at once, so the token-taking routes are reached past their token checks.
        admission_rate: Some(1000.0),
        active_cap: None,
        seed: (1, 10, 50),
        env,
        auth,
        counted: false,
        profiles: None,
    };
    let mut running = Vec::new();
    let started = launch::start_all(&spec, stores, &mut running).await;
    let result = match started {
        Ok(()) => {
            let report = out.join(name);
            std::fs::create_dir_all(&report)?;
            let status = Command::new(schemathesis)
                .arg("run")
                .arg(format!("http://{}/openapi.json", spec.gateway_addr))
                .args(["--checks", "all"])
                .args(["--max-examples", &args.max_examples.to_string()])
                .args(["--header", &format!("Authorization: Bearer {bearer}")])
                .args(["--report", "junit", "--report-dir"])
                .arg(&report)
                .arg("--no-color")
                .args(&args.schemathesis_args)
                // Its example database (.hypothesis/) goes beside the report, not into the tree.
                .current_dir(&report)
                .env("SCHEMATHESIS_TELEMETRY", "false")
                .status()
                .await
                .context("running schemathesis")?;
            Ok(status.success())
        }
        Err(error) => Err(error),
    };
    process::stop_all(&mut running).await;
    result
}

/// A free port on the loopback address (the system binds it a moment later).
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// target/fuzz-venv with xtask/fuzz/requirements.txt installed (again when it changes);
/// returns its `schemathesis`.
async fn ensure_venv() -> anyhow::Result<PathBuf> {
    let requirements = process::root()
        .join("xtask")
        .join("fuzz")
        .join("requirements.txt");
    let venv = process::target_dir().join("fuzz-venv");
    let schemathesis = venv.join("bin").join("schemathesis");
    let stamp = venv.join(".requirements");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let installed = std::fs::read_to_string(&stamp).unwrap_or_default();
    if schemathesis.exists() && installed == wanted {
        return Ok(schemathesis);
    }
    let python = venv.join("bin").join("python");
    if !python.exists() {
        eprintln!("fuzz: creating {}", venv.display());
        let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let created = Command::new(&system_python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .await
            .with_context(|| {
                format!("{system_python} not found: install Python 3.10+ (Debian/Ubuntu: apt-get install python3 python3-venv)")
            })?;
        if !created.success() {
            bail!("'{system_python} -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)");
        }
    }
    eprintln!("fuzz: installing {}", requirements.display());
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements)
        .status()
        .await?;
    if !installed.success() {
        bail!("pip could not install {}", requirements.display());
    }
    std::fs::write(&stamp, wanted)?;
    Ok(schemathesis)
}
