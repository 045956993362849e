//! The system `cargo xtask up`, the bench and the fuzz run start: what it is (addresses,
//! databases, identity, seed), its processes' names, and starting them all in order until the
//! gateway is ready (each one's command is `command.rs`'s).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use kit::http_client::HttpClient;
use tokio::process::Child;

use super::{
    auth::GatewayAuth,
    command::{service, serving},
};
use crate::{process::wait_until, stores};

/// The metrics addresses of the four services (of their first replicas; replica `i` serves
/// on the port `i` above).
#[derive(Clone, Copy, Debug)]
pub struct MetricsAddrs {
    pub gateway: SocketAddr,
    pub queue: SocketAddr,
    pub catalog: SocketAddr,
    pub reservation: SocketAddr,
}

impl MetricsAddrs {
    /// Four blocks of `replicas` consecutive ports on 127.0.0.1 from `first`, in the order
    /// above (with one replica: four consecutive ports).
    pub fn from_port(first: u16, replicas: u16) -> Self {
        let [gateway, queue, catalog, reservation] = blocks(first, replicas);
        Self {
            gateway,
            queue,
            catalog,
            reservation,
        }
    }
}

/// The first addresses of `N` blocks of `replicas` consecutive ports on 127.0.0.1, one after
/// another from `first`: where each service's replicas listen.
pub fn blocks<const N: usize>(first: u16, replicas: u16) -> [SocketAddr; N] {
    std::array::from_fn(|i| {
        let offset = u16::try_from(i)
            .unwrap_or(u16::MAX)
            .saturating_mul(replicas);
        SocketAddr::from(([127, 0, 0, 1], first.saturating_add(offset)))
    })
}

/// What to start: addresses, databases, admission and seed sizes.
pub struct SystemSpec {
    /// Where the gateway listens; every gateway replica shares it (SO_REUSEPORT).
    pub gateway_addr: SocketAddr,
    /// Where each backend's first replica listens; replica `i` listens on the port `i` above.
    pub queue_addr: SocketAddr,
    pub catalog_addr: SocketAddr,
    pub reservation_addr: SocketAddr,
    /// Processes of each service (at least 1, at most [`MAX_REPLICAS`]).
    pub replicas: u16,
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
    /// Every service runs under Valgrind's callgrind, which counts the instructions it
    /// executes (the bench's instruction-counting runs; many times slower).
    pub counted: bool,
    /// Where counted services keep their profiles (`<service>.<pid>`, a numbered part per
    /// measured window); `None`: nowhere, only their counts are read.
    pub profiles: Option<PathBuf>,
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
pub(super) const SERVICES: &[&str] = &["queue", "catalog", "reservation", "gateway"];

/// Most processes of one service `up` runs.
pub const MAX_REPLICAS: u16 = 8;

/// Each process's name, by service (in [`SERVICES`] order) and replica: the first replica has
/// the service's own name, the others a number after it.
const PROCESS_NAMES: [[&str; MAX_REPLICAS as usize]; 4] = [
    [
        "queue", "queue-2", "queue-3", "queue-4", "queue-5", "queue-6", "queue-7", "queue-8",
    ],
    [
        "catalog",
        "catalog-2",
        "catalog-3",
        "catalog-4",
        "catalog-5",
        "catalog-6",
        "catalog-7",
        "catalog-8",
    ],
    [
        "reservation",
        "reservation-2",
        "reservation-3",
        "reservation-4",
        "reservation-5",
        "reservation-6",
        "reservation-7",
        "reservation-8",
    ],
    [
        "gateway",
        "gateway-2",
        "gateway-3",
        "gateway-4",
        "gateway-5",
        "gateway-6",
        "gateway-7",
        "gateway-8",
    ],
];

/// The name of `service`'s process number `replica` (from 0).
fn process_name(service: &str, replica: u16) -> anyhow::Result<&'static str> {
    let row = SERVICES
        .iter()
        .position(|s| *s == service)
        .with_context(|| format!("no service is called {service}"))?;
    PROCESS_NAMES[row]
        .get(usize::from(replica))
        .copied()
        .with_context(|| format!("at most {MAX_REPLICAS} replicas"))
}

/// The service and replica (from 0) a process name stands for.
pub(super) fn process_of(name: &str) -> anyhow::Result<(&'static str, u16)> {
    for (row, service) in SERVICES.iter().enumerate() {
        if let Some(replica) = PROCESS_NAMES[row].iter().position(|n| *n == name) {
            return Ok((service, u16::try_from(replica)?));
        }
    }
    bail!("no process is called {name}")
}

/// The address `i` ports above `addr` (replica `i`'s).
pub(super) fn nth(addr: SocketAddr, i: u16) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port().saturating_add(i))
}

impl SystemSpec {
    /// Every replica's address from `first`: `replicas` consecutive ports.
    pub fn replicas_of(&self, first: SocketAddr) -> Vec<SocketAddr> {
        (0..self.replicas).map(|i| nth(first, i)).collect()
    }

    /// Each replica of backend `service` (queue, catalog or reservation): its process's name
    /// and its gRPC address.
    pub fn replicas_named(&self, service: &str) -> anyhow::Result<Vec<(&'static str, SocketAddr)>> {
        let first = match service {
            "queue" => self.queue_addr,
            "catalog" => self.catalog_addr,
            "reservation" => self.reservation_addr,
            other => bail!("{other} is not a gRPC backend"),
        };
        (0..self.replicas)
            .map(|replica| Ok((process_name(service, replica)?, nth(first, replica))))
            .collect()
    }

    /// A backend's URL for its clients: every replica, comma-separated.
    pub(super) fn urls(&self, first: SocketAddr) -> String {
        let urls: Vec<String> = self
            .replicas_of(first)
            .iter()
            .map(|addr| format!("http://{addr}"))
            .collect();
        urls.join(",")
    }

    /// Fails early, and clearly, when an address is taken or two would be the same.
    pub fn check_free(&self) -> anyhow::Result<()> {
        for addr in self.addresses()? {
            if std::net::TcpListener::bind(addr).is_err() {
                bail!(
                    "{addr} is already in use: stop what runs there or pick another address (see --help)"
                );
            }
        }
        Ok(())
    }

    /// Every address the system listens on, each once; an error when two would be the same.
    pub(super) fn addresses(&self) -> anyhow::Result<Vec<SocketAddr>> {
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            bail!("--replicas must be between 1 and {MAX_REPLICAS}");
        }
        let mut addrs = vec![self.gateway_addr];
        for first in [
            self.queue_addr,
            self.catalog_addr,
            self.reservation_addr,
            self.metrics.gateway,
            self.metrics.queue,
            self.metrics.catalog,
            self.metrics.reservation,
        ] {
            if first.port().checked_add(self.replicas - 1).is_none() {
                bail!("{first}: no room for {} ports above it", self.replicas);
            }
            addrs.extend(self.replicas_of(first));
        }
        let mut seen = std::collections::HashSet::new();
        for addr in &addrs {
            if !seen.insert(*addr) {
                bail!(
                    "{addr} would be used twice: with --replicas N each service takes N consecutive ports from its address (see --help)"
                );
            }
        }
        Ok(addrs)
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
    let catalog_db = stores.database(args.catalog_database)?;

    spawn_replicas("queue", args, stores, running)?;

    // Migrate and seed the catalog before it serves (idempotent: existing rows stay).
    let seeded = service("catalog", None)?
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
    for service in ["catalog", "reservation", "gateway"] {
        spawn_replicas(service, args, stores, running)?;
    }
    // Ready means every backend's gRPC health says SERVING (through whichever gateway takes
    // the connection), and every gateway serves.
    let gateway = HttpClient::for_addr(args.gateway_addr);
    wait_until("gateway /readyz", Duration::from_secs(30), || {
        answers_200(&gateway, "/readyz")
    })
    .await?;
    for metrics in args.replicas_of(args.metrics.gateway) {
        let client = HttpClient::for_addr(metrics);
        wait_until("every gateway", Duration::from_secs(30), || {
            answers_200(&client, "/metrics")
        })
        .await?;
    }
    Ok(())
}

/// Starts every replica of `service`.
fn spawn_replicas(
    service: &str,
    args: &SystemSpec,
    stores: &stores::Stores,
    running: &mut Vec<(&'static str, Child)>,
) -> anyhow::Result<()> {
    for replica in 0..args.replicas {
        let name = process_name(service, replica)?;
        let child = serving(name, args, stores)?
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        running.push((name, child));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec(replicas: u16) -> SystemSpec {
        let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        SystemSpec {
            gateway_addr: local(8080),
            queue_addr: local(50051),
            catalog_addr: local(50051 + replicas),
            reservation_addr: local(50051 + 2 * replicas),
            replicas,
            metrics: MetricsAddrs::from_port(9180, replicas),
            catalog_database: "c",
            reservation_database: "r",
            admission_rate: None,
            active_cap: None,
            seed: (1, 1, 1),
            env: Vec::new(),
            auth: GatewayAuth::Trusted,
            counted: false,
            profiles: None,
        }
    }

    #[test]
    fn every_process_name_stands_for_its_service_and_replica() {
        for service in SERVICES {
            for replica in 0..MAX_REPLICAS {
                let name = process_name(service, replica).unwrap();
                assert_eq!(process_of(name).unwrap(), (*service, replica));
            }
            assert!(process_name(service, MAX_REPLICAS).is_err());
        }
        assert_eq!(process_name("reservation", 0).unwrap(), "reservation");
        assert_eq!(process_name("reservation", 1).unwrap(), "reservation-2");
    }

    #[test]
    fn clients_get_every_replica_on_consecutive_ports() {
        let two = spec(2);
        assert_eq!(
            two.urls(two.reservation_addr),
            "http://127.0.0.1:50055,http://127.0.0.1:50056"
        );
        assert_eq!(spec(1).urls(spec(1).queue_addr), "http://127.0.0.1:50051");
    }

    #[test]
    fn each_backend_replica_is_named_with_its_own_address() {
        let two = spec(2);
        let named = two.replicas_named("queue").unwrap();
        assert_eq!(
            named,
            [
                ("queue", "127.0.0.1:50051".parse().unwrap()),
                ("queue-2", "127.0.0.1:50052".parse().unwrap())
            ]
        );
        assert_eq!(
            two.replicas_named("reservation").unwrap()[1].0,
            "reservation-2"
        );
        assert!(two.replicas_named("gateway").is_err());
    }

    #[test]
    fn overlapping_replica_ports_are_refused_before_anything_starts() {
        let mut overlapping = spec(2);
        overlapping.catalog_addr = overlapping.queue_addr;
        overlapping.metrics = MetricsAddrs::from_port(19180, 2);
        assert!(overlapping.addresses().is_err());
        let mut metrics = spec(2);
        // Metrics laid out for one replica: with two they overlap.
        metrics.metrics = MetricsAddrs::from_port(9180, 1);
        assert!(metrics.addresses().is_err());
    }
}
