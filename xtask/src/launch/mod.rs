//! `cargo xtask up`: builds the services in release, starts them against the stores with local
//! defaults (`system`), prints the gateway URL, restarts a service that dies (`crate::supervise`),
//! and stops everything cleanly on Ctrl-C/SIGTERM.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use kit::http_client::HttpClient;
use tokio::process::Child;

mod auth;
mod command;
mod system;

pub use auth::{AuthMode, GatewayAuth};
pub use command::{build_release, serving};
pub use system::{
    MAX_REPLICAS, MetricsAddrs, PresaleSeed, SystemSpec, blocks, start_all, start_all_with,
};

use crate::{
    process,
    stores::{self, StoreArgs},
    supervise, viewer,
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

    /// Processes of each service: N queue, catalog and reservation replicas, each on its own
    /// port (N consecutive ports from the service's address) and supervised on its own, every
    /// client balancing per call over all of them; and N gateways sharing the one gateway
    /// port (SO_REUSEPORT: the kernel spreads connections over them), each with its own
    /// metrics port.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_REPLICAS)))]
    replicas: u16,

    /// Where the gateway listens (every gateway replica on it).
    #[arg(long, env = "GATEWAY_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    gateway_addr: SocketAddr,

    /// Where the queue service listens (its replicas on the next ports) [default:
    /// 127.0.0.1:50051].
    #[arg(long, env = "QUEUE_LISTEN_ADDR")]
    queue_addr: Option<SocketAddr>,

    /// Where the catalog service listens [default: the port after the queue's replicas,
    /// 127.0.0.1:50052 with one replica].
    #[arg(long, env = "CATALOG_LISTEN_ADDR")]
    catalog_addr: Option<SocketAddr>,

    /// Where the reservation service listens [default: the port after the catalog's
    /// replicas, 127.0.0.1:50053 with one replica].
    #[arg(long, env = "RESERVATION_LISTEN_ADDR")]
    reservation_addr: Option<SocketAddr>,

    /// Where the services serve Prometheus text at /metrics: gateway, queue, catalog,
    /// reservation, each replica on the next port [default: consecutive from 127.0.0.1:9180:
    /// gateway 9180, queue 9181, catalog 9182, reservation 9183 with one replica; one left
    /// out takes the ports after the one before it].
    #[arg(long, env = "GATEWAY_METRICS_ADDR")]
    gateway_metrics_addr: Option<SocketAddr>,
    #[arg(long, env = "QUEUE_METRICS_ADDR")]
    queue_metrics_addr: Option<SocketAddr>,
    #[arg(long, env = "CATALOG_METRICS_ADDR")]
    catalog_metrics_addr: Option<SocketAddr>,
    #[arg(long, env = "RESERVATION_METRICS_ADDR")]
    reservation_metrics_addr: Option<SocketAddr>,

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

    /// Run the queue on a private Redis Cluster of three primaries, started from this
    /// machine's redis-server (data under target/stores/redis-cluster/), instead of one Redis.
    #[arg(long)]
    redis_cluster: bool,
}

impl From<&UpArgs> for SystemSpec {
    fn from(args: &UpArgs) -> Self {
        // By default each service's replicas take the next block of consecutive ports: with
        // one replica the ports of old (50051-50053, 9180-9183).
        // Each address left out follows the block before it, as --help says: with only
        // --queue-addr given, catalog and reservation take the ports after the queue's.
        let n = args.replicas;
        let after = |addr: SocketAddr| SocketAddr::new(addr.ip(), addr.port().saturating_add(n));
        let queue = args
            .queue_addr
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 50051)));
        let catalog = args.catalog_addr.unwrap_or(after(queue));
        let reservation = args.reservation_addr.unwrap_or(after(catalog));
        let gateway_metrics = args
            .gateway_metrics_addr
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9180)));
        let queue_metrics = args.queue_metrics_addr.unwrap_or(after(gateway_metrics));
        let catalog_metrics = args.catalog_metrics_addr.unwrap_or(after(queue_metrics));
        Self {
            gateway_addr: args.gateway_addr,
            queue_addr: queue,
            catalog_addr: catalog,
            reservation_addr: reservation,
            replicas: n,
            metrics: MetricsAddrs {
                gateway: gateway_metrics,
                queue: queue_metrics,
                catalog: catalog_metrics,
                reservation: args
                    .reservation_metrics_addr
                    .unwrap_or(after(catalog_metrics)),
            },
            catalog_database: "ticketing_catalog",
            reservation_database: "ticketing_reservation",
            admission_rate: args.admission_rate,
            active_cap: args.active_cap,
            seed: (args.seed_concerts, args.seed_options, args.seed_seats),
            env: Vec::new(),
            // Replaced by `up` with the mode asked for (jwt needs the key created first).
            auth: GatewayAuth::Trusted,
            counted: false,
            profiles: None,
        }
    }
}

pub async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let mut spec = SystemSpec::from(&args);
    spec.check_free()?;
    spec.auth = GatewayAuth::for_mode(args.auth)?;
    let console_credential = console_access(&mut spec)?;
    if !args.no_build {
        build_release(&[]).await?;
    }
    let mut running: Vec<(&'static str, Child)> = Vec::new();
    let mut viewer_binary = None;
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
            viewer_binary = Some(binary);
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
    let mut stores = stores::ensure(&args.stores).await?;
    if args.redis_cluster {
        crate::redis_cluster::serve_queue(&mut stores, &mut spec.env).await?;
    }
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
        for (service, first) in [
            ("gateway", m.gateway),
            ("queue", m.queue),
            ("catalog", m.catalog),
            ("reservation", m.reservation),
        ] {
            let each: Vec<String> = spec
                .replicas_of(first)
                .iter()
                .map(|addr| format!("http://{addr}/metrics"))
                .collect();
            println!("  metrics   {service}: {}", each.join("  "));
        }
        if spec.replicas > 1 {
            println!(
                "  replicas  {} of each service: gRPC on {}, {}, {} and up; the gateways share {}",
                spec.replicas,
                spec.queue_addr,
                spec.catalog_addr,
                spec.reservation_addr,
                spec.gateway_addr
            );
        }
        println!("  stop      Ctrl-C");
        println!();
        // A process that dies is started again, as Kubernetes would (crate::supervise).
        let mut supervisor = supervise::Supervisor::new(supervise::Backoff::default());
        let respawn = |name: &'static str| match (name, &viewer_binary) {
            ("trace-viewer", Some(binary)) => {
                viewer::start(binary, args.otlp_addr, args.traces_ui_addr)
            }
            _ => Ok(serving(name, &spec, &stores)?.spawn()?),
        };
        match supervisor
            .keep_up_until(&mut running, respawn, kit::shutdown::signal())
            .await
        {
            Ok(()) => eprintln!("xtask: stopping"),
            Err(error) => {
                eprintln!("xtask: {error:#}; stopping the rest");
                result = Err(error);
            }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Up {
        #[command(flatten)]
        args: UpArgs,
    }

    fn spec(flags: &[&str]) -> SystemSpec {
        let up = Up::try_parse_from(std::iter::once("up").chain(flags.iter().copied())).unwrap();
        SystemSpec::from(&up.args)
    }

    #[test]
    fn one_replica_keeps_the_old_ports_and_n_replicas_take_blocks_that_never_overlap() {
        // The first ports of the backends' gRPC blocks, then of the four metrics blocks.
        let ports = |spec: &SystemSpec| {
            let m = spec.metrics;
            let grpc = [spec.queue_addr, spec.catalog_addr, spec.reservation_addr];
            let metrics = [m.gateway, m.queue, m.catalog, m.reservation];
            (grpc.map(|a| a.port()), metrics.map(|a| a.port()))
        };
        assert_eq!(
            ports(&spec(&[])),
            ([50051, 50052, 50053], [9180, 9181, 9182, 9183])
        );
        for n in 1..=MAX_REPLICAS {
            let spec = spec(&["--replicas", &n.to_string()]);
            assert_eq!(spec.replicas, n);
            assert!(spec.addresses().is_ok(), "{n} replicas");
        }
        // Addresses left out follow the ones given, block after block.
        let moved = spec(&[
            "--replicas",
            "2",
            "--queue-addr",
            "127.0.0.1:28051",
            "--gateway-metrics-addr",
            "127.0.0.1:29180",
        ]);
        assert_eq!(
            ports(&moved),
            ([28051, 28053, 28055], [29180, 29182, 29184, 29186])
        );
        assert!(Up::try_parse_from(["up", "--replicas", "0"]).is_err());
        assert!(Up::try_parse_from(["up", "--replicas", "9"]).is_err());
    }
}
