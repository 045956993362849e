//! `cargo xtask up`: builds the services in release, starts them against the stores with local
//! defaults, prints the gateway URL, and stops everything cleanly on Ctrl-C/SIGTERM.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use kit::http_client::HttpClient;
use tokio::process::{Child, Command};

use crate::{
    process::{self, wait_until},
    stores::{self, StoreArgs},
    viewer,
};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    stores: StoreArgs,

    /// Waiters admitted per second per room.
    #[arg(long, env = "QUEUE_ADMISSION_RATE")]
    admission_rate: Option<f64>,

    /// Most concurrently active users per room.
    #[arg(long, env = "QUEUE_ACTIVE_CAP")]
    active_cap: Option<u32>,

    /// Where the gateway listens.
    #[arg(long, env = "GATEWAY_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    gateway_addr: SocketAddr,

    /// Where the queue service listens.
    #[arg(long, env = "QUEUE_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    queue_addr: SocketAddr,

    /// Where the catalog service listens.
    #[arg(long, env = "CATALOG_LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    catalog_addr: SocketAddr,

    /// Where the reservation service listens.
    #[arg(
        long,
        env = "RESERVATION_LISTEN_ADDR",
        default_value = "127.0.0.1:50053"
    )]
    reservation_addr: SocketAddr,

    /// Where the services serve Prometheus text at /metrics: gateway, queue, catalog,
    /// reservation.
    #[arg(long, env = "GATEWAY_METRICS_ADDR", default_value = "127.0.0.1:9180")]
    gateway_metrics_addr: SocketAddr,
    #[arg(long, env = "QUEUE_METRICS_ADDR", default_value = "127.0.0.1:9181")]
    queue_metrics_addr: SocketAddr,
    #[arg(long, env = "CATALOG_METRICS_ADDR", default_value = "127.0.0.1:9182")]
    catalog_metrics_addr: SocketAddr,
    #[arg(
        long,
        env = "RESERVATION_METRICS_ADDR",
        default_value = "127.0.0.1:9183"
    )]
    reservation_metrics_addr: SocketAddr,

    /// Concerts to seed (demo: 1 concert of 10 options × 50 seats, what the original load tests use).
    #[arg(long, default_value_t = 1)]
    seed_concerts: i64,

    /// Options per seeded concert.
    #[arg(long, default_value_t = 10)]
    seed_options: i64,

    /// Seats per seeded option.
    #[arg(long, default_value_t = 50)]
    seed_seats: i32,

    /// Seed one presale concert (its own waiting room, after the seeded ones) and schedule
    /// its opening once the system answers: the pre-queue opens now, the sale SECS later.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    presale: Option<u64>,

    /// Seats of the presale concert (one option).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(i32).range(1..))]
    presale_seats: i32,

    /// Presale concerts seeded with --presale; the newest is scheduled. The databases outlive
    /// `up`, so sold seats stay sold: raise this by one for a fresh concert on the next run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=1000))]
    presale_concerts: i64,

    /// Use the binaries already built instead of building first.
    #[arg(long)]
    no_build: bool,

    /// Export no spans and start no trace viewer. Without it, spans go to the collector that
    /// OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) names when set, else to a trace viewer
    /// started for the run.
    #[arg(long)]
    no_traces: bool,

    /// Where the trace viewer receives OTLP/gRPC.
    #[arg(long, default_value = "127.0.0.1:4317")]
    otlp_addr: SocketAddr,

    /// Where the trace viewer's web UI listens.
    #[arg(long, default_value = "127.0.0.1:16686")]
    traces_ui_addr: SocketAddr,

    /// Who the gateway believes the caller is: `trusted` takes the userId in requests at its
    /// word (what the original clients send); `jwt` verifies `Authorization: Bearer` tokens
    /// against a development key created under target/dev-identity (`cargo xtask token`
    /// mints them).
    #[arg(long, env = "GATEWAY_AUTH", value_enum, default_value_t = AuthMode::Trusted)]
    auth: AuthMode,
}

/// The gateway's identity mode (`GATEWAY_AUTH`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    Trusted,
    Jwt,
}

/// How the gateway is told to identify callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayAuth {
    /// `GATEWAY_AUTH=trusted`.
    Trusted,
    /// `GATEWAY_AUTH=jwt` against the development key in `key_dir` (its jwks.json).
    Jwt { key_dir: PathBuf },
}

impl GatewayAuth {
    /// For `jwt`, creates the development key under target/dev-identity, or reuses the one
    /// there, and (re)writes its JWKS.
    pub fn for_mode(mode: AuthMode) -> anyhow::Result<Self> {
        match mode {
            AuthMode::Trusted => Ok(Self::Trusted),
            AuthMode::Jwt => {
                let key_dir = kit::dev_identity::default_dir(&process::target_dir());
                let key = kit::dev_identity::DevKey::load_or_create(&key_dir)?;
                let jwks = key_dir.join(kit::dev_identity::JWKS_FILE);
                std::fs::write(&jwks, key.jwks_json())
                    .with_context(|| format!("writing {}", jwks.display()))?;
                Ok(Self::Jwt { key_dir })
            }
        }
    }

    pub fn mode(&self) -> AuthMode {
        match self {
            Self::Trusted => AuthMode::Trusted,
            Self::Jwt { .. } => AuthMode::Jwt,
        }
    }

    /// The gateway's GATEWAY_AUTH / GATEWAY_JWT_* variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Trusted => vec![("GATEWAY_AUTH", "trusted".into())],
            Self::Jwt { key_dir } => vec![
                ("GATEWAY_AUTH", "jwt".into()),
                (
                    "GATEWAY_JWT_JWKS_FILE",
                    key_dir
                        .join(kit::dev_identity::JWKS_FILE)
                        .display()
                        .to_string(),
                ),
                ("GATEWAY_JWT_ISSUER", kit::dev_identity::ISSUER.into()),
                ("GATEWAY_JWT_AUDIENCE", kit::dev_identity::AUDIENCE.into()),
            ],
        }
    }
}

/// The metrics addresses of the four services.
#[derive(Clone, Copy, Debug)]
pub struct MetricsAddrs {
    pub gateway: SocketAddr,
    pub queue: SocketAddr,
    pub catalog: SocketAddr,
    pub reservation: SocketAddr,
}

impl MetricsAddrs {
    /// Four consecutive ports on 127.0.0.1 from `first`, in the order above.
    pub fn from_port(first: u16) -> Self {
        let at = |n: u16| SocketAddr::from(([127, 0, 0, 1], first + n));
        Self {
            gateway: at(0),
            queue: at(1),
            catalog: at(2),
            reservation: at(3),
        }
    }
}

/// What to start: addresses, databases, admission and seed sizes.
pub struct SystemSpec {
    pub gateway_addr: SocketAddr,
    pub queue_addr: SocketAddr,
    pub catalog_addr: SocketAddr,
    pub reservation_addr: SocketAddr,
    /// Where each service serves /metrics.
    pub metrics: MetricsAddrs,
    pub catalog_database: &'static str,
    pub reservation_database: &'static str,
    pub admission_rate: Option<f64>,
    pub active_cap: Option<u32>,
    pub seed: (i64, i64, i32),
    /// Extra environment for every service (e.g. the OTEL_* variables).
    pub env: Vec<(&'static str, String)>,
    /// The gateway's identity mode.
    pub auth: GatewayAuth,
}

impl From<&UpArgs> for SystemSpec {
    fn from(args: &UpArgs) -> Self {
        Self {
            gateway_addr: args.gateway_addr,
            queue_addr: args.queue_addr,
            catalog_addr: args.catalog_addr,
            reservation_addr: args.reservation_addr,
            metrics: MetricsAddrs {
                gateway: args.gateway_metrics_addr,
                queue: args.queue_metrics_addr,
                catalog: args.catalog_metrics_addr,
                reservation: args.reservation_metrics_addr,
            },
            catalog_database: "ticketing_catalog",
            reservation_database: "ticketing_reservation",
            admission_rate: args.admission_rate,
            active_cap: args.active_cap,
            seed: (args.seed_concerts, args.seed_options, args.seed_seats),
            env: Vec::new(),
            // Replaced by `up` with the mode asked for (jwt needs the key created first).
            auth: GatewayAuth::Trusted,
        }
    }
}

/// Concerts with their own waiting room to seed besides `SystemSpec::seed` (`catalog seed
/// --presale-concerts`); ids after the seeded concerts.
#[derive(Clone, Copy, Debug, Default)]
pub struct PresaleSeed {
    pub concerts: i64,
    pub seats: i32,
}

impl PresaleSeed {
    /// The first presale concert's id, after the `seed` ones.
    pub fn first_concert(spec: &SystemSpec) -> i64 {
        spec.seed.0 + 1
    }
}

/// The services, in start order.
const SERVICES: &[&str] = &["queue", "catalog", "reservation", "gateway"];

pub async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let mut spec = SystemSpec::from(&args);
    spec.check_free()?;
    spec.auth = GatewayAuth::for_mode(args.auth)?;
    let console_credential = console_access(&mut spec)?;
    if !args.no_build {
        build_release(&[]).await?;
    }
    let mut running: Vec<(&'static str, Child)> = Vec::new();
    let traces = viewer::Traces::from_env(args.no_traces);
    match &traces {
        viewer::Traces::Viewer => {
            for addr in [args.otlp_addr, args.traces_ui_addr] {
                if std::net::TcpListener::bind(addr).is_err() {
                    bail!("{addr} is already in use (or pass --no-traces)");
                }
            }
            let binary = viewer::build().await?;
            running.push((
                "trace-viewer",
                viewer::start(&binary, args.otlp_addr, args.traces_ui_addr)?,
            ));
            spec.env.extend(viewer::service_env(args.otlp_addr));
        }
        // The services inherit the user's OTEL_* settings as they are.
        viewer::Traces::Collector(endpoint) => {
            eprintln!(
                "xtask: spans go to {endpoint} (OTEL_EXPORTER_OTLP_ENDPOINT); no trace viewer"
            );
        }
        // Also when the user's environment names a collector.
        viewer::Traces::Off => spec.env.push(("OTEL_TRACES_EXPORTER", "none".into())),
    }
    let stores = stores::ensure(&args.stores).await?;
    eprintln!(
        "xtask: Redis {}  PostgreSQL {}",
        stores.redis_url, stores.database_url
    );

    let presale = PresaleSeed {
        concerts: if args.presale.is_some() {
            args.presale_concerts
        } else {
            0
        },
        seats: args.presale_seats,
    };
    let mut result = start_all_with(&spec, presale, &stores, &mut running).await;
    let mut scheduled = None;
    if let (Ok(()), Some(seconds)) = (&result, args.presale) {
        let newest = PresaleSeed::first_concert(&spec) + presale.concerts - 1;
        match schedule_presale(&spec, newest, seconds).await {
            Ok(opening) => scheduled = Some(opening),
            Err(error) => result = Err(error),
        }
    }
    if let Err(error) = &result {
        eprintln!("xtask: {error:#}");
    } else {
        println!();
        println!("  gateway   http://{}", args.gateway_addr);
        println!("  fan page  http://{}/", args.gateway_addr);
        println!(
            "  console   http://{}/admin  ({console_credential})",
            args.gateway_addr
        );
        match &traces {
            viewer::Traces::Viewer => println!(
                "  traces    http://{}  (every request, every hop)",
                args.traces_ui_addr
            ),
            viewer::Traces::Collector(endpoint) => {
                println!("  traces    exported to your collector at {endpoint}")
            }
            viewer::Traces::Off => {}
        }
        match &spec.auth {
            GatewayAuth::Trusted => {
                println!(
                    "  identity  trusted: the userId in requests is believed (--auth jwt to verify bearer tokens)"
                );
                println!(
                    "  try       curl -s -X POST http://{}/queue/issue-token -H 'content-type: application/json' -d '{{\"userId\": 1}}'",
                    args.gateway_addr
                );
            }
            GatewayAuth::Jwt { key_dir } => {
                println!(
                    "  identity  jwt: bearer tokens verified against {}; get one with: cargo xtask token --user 1 [--admin] [--ttl 1h]",
                    key_dir.join(kit::dev_identity::JWKS_FILE).display()
                );
                println!(
                    "  try       curl -s -X POST http://{}/queue/issue-token -H \"authorization: Bearer $(cargo xtask token --user 1)\" -H 'content-type: application/json' -d '{{\"userId\": 1}}'",
                    args.gateway_addr
                );
            }
        }
        if let Some(opening) = &scheduled {
            println!(
                "  presale   concert {} ({} seats, its own room): pre-queue open since {}, the sale opens at {} (in {} s); {} of its seats free",
                opening.concert_id,
                opening.seats,
                opening.prequeue_opens_at,
                opening.opens_at,
                opening.seconds,
                opening.free
            );
            println!(
                "  fan page  http://{}/?concert={}",
                args.gateway_addr, opening.concert_id
            );
        }
        let m = spec.metrics;
        println!(
            "  metrics   http://{}/metrics (gateway)  http://{}/metrics (queue)  http://{}/metrics (catalog)  http://{}/metrics (reservation)",
            m.gateway, m.queue, m.catalog, m.reservation
        );
        println!("  stop      Ctrl-C");
        println!();
        tokio::select! {
            () = kit::shutdown::signal() => eprintln!("xtask: stopping"),
            name = process::first_exit(&mut running) => eprintln!("xtask: {name} exited on its own; stopping the rest"),
        }
    }
    process::stop_all(&mut running).await;
    stores.stop().await;
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl SystemSpec {
    /// Fails early, and clearly, when an address is taken.
    pub fn check_free(&self) -> anyhow::Result<()> {
        for addr in [
            self.gateway_addr,
            self.queue_addr,
            self.catalog_addr,
            self.reservation_addr,
            self.metrics.gateway,
            self.metrics.queue,
            self.metrics.catalog,
            self.metrics.reservation,
        ] {
            if std::net::TcpListener::bind(addr).is_err() {
                bail!(
                    "{addr} is already in use: stop what runs there or pick another address (see --help)"
                );
            }
        }
        Ok(())
    }
}

pub async fn start_all(
    args: &SystemSpec,
    stores: &stores::Stores,
    running: &mut Vec<(&'static str, Child)>,
) -> anyhow::Result<()> {
    start_all_with(args, PresaleSeed::default(), stores, running).await
}

/// [`start_all`], with presale concerts seeded besides the shared data set.
pub async fn start_all_with(
    args: &SystemSpec,
    presale: PresaleSeed,
    stores: &stores::Stores,
    running: &mut Vec<(&'static str, Child)>,
) -> anyhow::Result<()> {
    let catalog_db = kit::postgres::with_database(&stores.database_url, args.catalog_database)
        .map_err(anyhow::Error::msg)?;
    let reservation_db =
        kit::postgres::with_database(&stores.database_url, args.reservation_database)
            .map_err(anyhow::Error::msg)?;

    let mut queue = service("queue")?;
    queue.envs(args.env.iter().map(|(k, v)| (*k, v.as_str())));
    queue
        .env("QUEUE_LISTEN_ADDR", args.queue_addr.to_string())
        .env("QUEUE_METRICS_ADDR", args.metrics.queue.to_string())
        .env("REDIS_URL", &stores.redis_url)
        // Seats left per concert and the holds' load: sold-out rooms and adaptive outflow.
        .env(
            "QUEUE_RESERVATION_URL",
            format!("http://{}", args.reservation_addr),
        );
    if let Some(rate) = args.admission_rate {
        queue.env("QUEUE_ADMISSION_RATE", rate.to_string());
    }
    if let Some(cap) = args.active_cap {
        queue.env("QUEUE_ACTIVE_CAP", cap.to_string());
    }
    running.push(("queue", queue.spawn().context("starting queue")?));

    // Migrate and seed the catalog before it serves (idempotent: existing rows stay).
    let seeded = service("catalog")?
        .env("CATALOG_DATABASE_URL", &catalog_db)
        .args(["seed", "--concerts", &args.seed.0.to_string()])
        .args(["--options-per-concert", &args.seed.1.to_string()])
        .args(["--seats-per-option", &args.seed.2.to_string()])
        .args(["--presale-concerts", &presale.concerts.to_string()])
        .args(["--presale-seats", &presale.seats.to_string()])
        .status()
        .await?;
    if !seeded.success() {
        bail!("seeding the catalog failed");
    }
    let mut catalog = service("catalog")?;
    catalog.envs(args.env.iter().map(|(k, v)| (*k, v.as_str())));
    catalog
        .env("CATALOG_LISTEN_ADDR", args.catalog_addr.to_string())
        .env("CATALOG_METRICS_ADDR", args.metrics.catalog.to_string())
        .env("CATALOG_DATABASE_URL", &catalog_db);
    running.push(("catalog", catalog.spawn().context("starting catalog")?));

    let mut reservation = service("reservation")?;
    reservation.envs(args.env.iter().map(|(k, v)| (*k, v.as_str())));
    reservation
        .env("RESERVATION_LISTEN_ADDR", args.reservation_addr.to_string())
        .env(
            "RESERVATION_METRICS_ADDR",
            args.metrics.reservation.to_string(),
        )
        .env("RESERVATION_DATABASE_URL", &reservation_db)
        .env("CATALOG_URL", format!("http://{}", args.catalog_addr));
    running.push((
        "reservation",
        reservation.spawn().context("starting reservation")?,
    ));

    let mut gateway = service("gateway")?;
    // Only the identity given here: a JWKS URL or another issuer from the caller's shell
    // would contradict it.
    for inherited in [
        "GATEWAY_JWT_JWKS_URL",
        "GATEWAY_JWT_JWKS_FILE",
        "GATEWAY_JWT_ISSUER",
        "GATEWAY_JWT_AUDIENCE",
        "GATEWAY_DEV_SIGN_IN_KEY_FILE",
    ] {
        gateway.env_remove(inherited);
    }
    gateway.envs(args.env.iter().map(|(k, v)| (*k, v.as_str())));
    gateway.envs(args.auth.env());
    gateway
        .env("GATEWAY_LISTEN_ADDR", args.gateway_addr.to_string())
        .env("GATEWAY_METRICS_ADDR", args.metrics.gateway.to_string())
        .env("QUEUE_URL", format!("http://{}", args.queue_addr))
        .env("CATALOG_URL", format!("http://{}", args.catalog_addr))
        .env(
            "RESERVATION_URL",
            format!("http://{}", args.reservation_addr),
        );
    running.push(("gateway", gateway.spawn().context("starting gateway")?));
    // Ready means every backend's gRPC health says SERVING.
    let gateway = HttpClient::for_addr(args.gateway_addr);
    wait_until("gateway /readyz", Duration::from_secs(30), || {
        answers_200(&gateway, "/readyz")
    })
    .await
}

/// How an operator signs in to the console, said on the console's line. `jwt`: the gateway's
/// development sign-in (the pages offer it) with the development key. `trusted`: the admin
/// token from GATEWAY_ADMIN_TOKEN, or a fresh one for this run.
fn console_access(spec: &mut SystemSpec) -> anyhow::Result<String> {
    match &spec.auth {
        GatewayAuth::Jwt { key_dir } => {
            let key = key_dir.join(kit::dev_identity::KEY_FILE);
            spec.env
                .push(("GATEWAY_DEV_SIGN_IN_KEY_FILE", key.display().to_string()));
            Ok("development sign-in on the page, or: cargo xtask token --user 1 --admin".into())
        }
        GatewayAuth::Trusted => match std::env::var("GATEWAY_ADMIN_TOKEN") {
            Ok(_) => Ok("admin token: the GATEWAY_ADMIN_TOKEN you set".into()),
            Err(_) => {
                let token = fresh_admin_token()?;
                spec.env.push(("GATEWAY_ADMIN_TOKEN", token.clone()));
                Ok(format!("admin token for this run: {token}"))
            }
        },
    }
}

/// A new operator's secret for one run: 128 random bits as 32 hex digits.
pub fn fresh_admin_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A command for a built service binary, logging at info unless RUST_LOG says otherwise.
/// Tokio workers each service gets from the launcher.
const SERVICE_WORKER_THREADS: &str = "1";

fn service(name: &str) -> anyhow::Result<Command> {
    let binary = process::release_binary(name);
    if !binary.exists() {
        bail!("{} is missing: run without --no-build", binary.display());
    }
    let mut command = Command::new(binary);
    command.stdin(Stdio::null()).kill_on_drop(true);
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    // One Tokio worker per service unless the user says otherwise: four services, Redis and
    // PostgreSQL share this machine's cores, and with a worker per core each request crossed
    // threads at every hop (the cost runs: issue-token 98 -> 89 µs, check-queue 83 -> 71 µs of
    // CPU per request). Kubernetes sets it per pod from its CPU limit.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        command.env("TOKIO_WORKER_THREADS", SERVICE_WORKER_THREADS);
    }
    Ok(command)
}

/// Builds every service, plus `extra` packages, in release.
pub async fn build_release(extra: &[&str]) -> anyhow::Result<()> {
    let mut command = Command::new(process::cargo());
    command
        .current_dir(process::root())
        .args(["build", "--release"]);
    for name in SERVICES.iter().chain(extra) {
        command.args(["-p", name]);
    }
    if !command.status().await?.success() {
        bail!("the release build failed");
    }
    Ok(())
}

/// True when `GET path` answers 200 within 2 s.
async fn answers_200(client: &HttpClient, path: &str) -> bool {
    let reply = client
        .get(path)
        .deadline(Duration::from_secs(2))
        .send()
        .await;
    reply.is_ok_and(|reply| reply.status == 200)
}

/// A presale room's opening as scheduled.
pub struct Opening {
    pub concert_id: i64,
    pub seconds: u64,
    pub prequeue_opens_at: String,
    pub opens_at: String,
    /// Seats of the concert, and how many are free (a rerun on the same database may find
    /// them sold already).
    pub seats: u64,
    pub free: u64,
}

/// Schedules the concert's own room through the operator's API: the pre-queue opens now, the
/// sale `seconds` later.
async fn schedule_presale(
    spec: &SystemSpec,
    concert_id: i64,
    seconds: u64,
) -> anyhow::Result<Opening> {
    let bearer = admin_bearer(spec)?;
    // Whole seconds: what an operator would type, and shorter to read.
    let now = time::OffsetDateTime::from_unix_timestamp(
        time::OffsetDateTime::now_utc().unix_timestamp(),
    )?;
    let at = |t: time::OffsetDateTime| -> anyhow::Result<String> {
        Ok(t.format(&time::format_description::well_known::Rfc3339)?)
    };
    let prequeue_opens_at = at(now)?;
    let opens_at = at(now + Duration::from_secs(seconds))?;
    let body = serde_json::json!({"prequeueOpensAt": prequeue_opens_at, "opensAt": opens_at});
    let reply = HttpClient::for_addr(spec.gateway_addr)
        .patch(&format!("/admin/rooms/concert-{concert_id}"))
        .header("authorization", format!("Bearer {bearer}"))
        .json(body.to_string())
        .deadline(Duration::from_secs(10))
        .send()
        .await
        .context("scheduling the presale room")?;
    if reply.status != 200 {
        bail!(
            "scheduling the presale room of concert {concert_id}: {} {}",
            reply.status,
            reply.text()
        );
    }
    let room = reply.json();
    let sum = |field: &str| -> u64 {
        room["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|option| option[field].as_u64())
            .sum()
    };
    Ok(Opening {
        concert_id,
        seconds,
        prequeue_opens_at,
        opens_at,
        seats: sum("seats"),
        free: sum("free"),
    })
}

/// An operator's bearer for the admin API: the admin token the gateway was given (trusted),
/// or a short-lived admin token from the development key (jwt).
fn admin_bearer(spec: &SystemSpec) -> anyhow::Result<String> {
    match &spec.auth {
        GatewayAuth::Jwt { key_dir } => {
            crate::token::mint(key_dir, 1, true, Duration::from_secs(600))
        }
        GatewayAuth::Trusted => spec
            .env
            .iter()
            .find(|(name, _)| *name == "GATEWAY_ADMIN_TOKEN")
            .map(|(_, token)| token.clone())
            .or_else(|| std::env::var("GATEWAY_ADMIN_TOKEN").ok())
            .context("no GATEWAY_ADMIN_TOKEN for the admin API"),
    }
}
