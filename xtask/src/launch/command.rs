//! The command that runs each service's process of a system: its binary (under callgrind when
//! the system is counted), its environment and addresses; and the release build they run from.

use std::{net::SocketAddr, path::Path, process::Stdio};

use anyhow::bail;
use tokio::process::Command;

use super::system::{SERVICES, SystemSpec, nth, process_of};
use crate::{process, stores};

/// The command that runs process `name` (a service's replica: `reservation`,
/// `reservation-2`, …) of the system `args` describes, serving (the catalog's seeding apart):
/// what starts it, and what restarts it when it dies. Clients get every replica of a backend.
pub fn serving(
    name: &'static str,
    args: &SystemSpec,
    stores: &stores::Stores,
) -> anyhow::Result<Command> {
    let (name, replica) = process_of(name)?;
    let callgrind = args
        .counted
        .then(|| callgrind_args(name, args.profiles.as_deref()));
    let mut command = service(name, callgrind)?;
    // Only the identity given here: a JWKS URL or another issuer from the caller's shell
    // would contradict it.
    if name == "gateway" {
        for inherited in [
            "GATEWAY_JWT_JWKS_URL",
            "GATEWAY_JWT_JWKS_FILE",
            "GATEWAY_JWT_ISSUER",
            "GATEWAY_JWT_AUDIENCE",
            "GATEWAY_DEV_SIGN_IN_KEY_FILE",
        ] {
            command.env_remove(inherited);
        }
    }
    command.envs(args.env.iter().map(|(k, v)| (*k, v.as_str())));
    // This replica's own port from a service's first.
    let own = |first: SocketAddr| nth(first, replica).to_string();
    match name {
        "queue" => {
            command
                .env("QUEUE_LISTEN_ADDR", own(args.queue_addr))
                .env("QUEUE_METRICS_ADDR", own(args.metrics.queue))
                .env("REDIS_URL", &stores.redis_url)
                // Seats left per concert and the holds' load: sold-out rooms and adaptive
                // outflow.
                .env("QUEUE_RESERVATION_URL", args.urls(args.reservation_addr));
            if let Some(rate) = args.admission_rate {
                command.env("QUEUE_ADMISSION_RATE", rate.to_string());
            }
            if let Some(cap) = args.active_cap {
                command.env("QUEUE_ACTIVE_CAP", cap.to_string());
            }
        }
        "catalog" => {
            command
                .env("CATALOG_LISTEN_ADDR", own(args.catalog_addr))
                .env("CATALOG_METRICS_ADDR", own(args.metrics.catalog))
                .env(
                    "CATALOG_DATABASE_URL",
                    stores.database(args.catalog_database)?,
                );
        }
        "reservation" => {
            command
                .env("RESERVATION_LISTEN_ADDR", own(args.reservation_addr))
                .env("RESERVATION_METRICS_ADDR", own(args.metrics.reservation))
                .env(
                    "RESERVATION_DATABASE_URL",
                    stores.database(args.reservation_database)?,
                )
                .env("CATALOG_URL", args.urls(args.catalog_addr));
        }
        "gateway" => {
            command
                .envs(args.auth.env())
                // Every gateway on the one port: the kernel spreads connections over them.
                .env("GATEWAY_LISTEN_ADDR", args.gateway_addr.to_string())
                .env("GATEWAY_REUSE_PORT", (args.replicas > 1).to_string())
                .env("GATEWAY_METRICS_ADDR", own(args.metrics.gateway))
                .env("QUEUE_URL", args.urls(args.queue_addr))
                .env("CATALOG_URL", args.urls(args.catalog_addr))
                .env("RESERVATION_URL", args.urls(args.reservation_addr));
        }
        other => bail!("no service is called {other}"),
    }
    Ok(command)
}

/// Tokio workers each service gets from the launcher.
const SERVICE_WORKER_THREADS: &str = "1";

/// A command for a built service binary, logging at info unless RUST_LOG says otherwise; under
/// callgrind with `callgrind`'s arguments when given (its pid is the service's: Valgrind runs it
/// in its own process).
pub(super) fn service(name: &str, callgrind: Option<[String; 2]>) -> anyhow::Result<Command> {
    let binary = process::release_binary(name);
    if !binary.exists() {
        bail!("{} is missing: run without --no-build", binary.display());
    }
    let mut command = match callgrind {
        Some(callgrind) => {
            let mut valgrind = Command::new("valgrind");
            valgrind.args(callgrind).arg(binary);
            valgrind
        }
        None => Command::new(binary),
    };
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

/// Valgrind's arguments for counting `name`'s instructions: its profiles kept in `profiles` as
/// `<name>.<pid>` (the load generator dumps a numbered part of it per window), or, without a
/// folder, nowhere: the counts are read while it runs (`callgrind_control`).
fn callgrind_args(name: &str, profiles: Option<&Path>) -> [String; 2] {
    let out = profiles.map_or_else(
        || "/dev/null".to_owned(),
        |folder| format!("{}/{name}.%p", folder.display()),
    );
    [
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={out}"),
    ]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_service_keeps_its_profiles_only_when_given_a_folder() {
        assert_eq!(
            callgrind_args("queue", Some(Path::new("/tmp/run/callgrind"))),
            [
                "--tool=callgrind",
                "--callgrind-out-file=/tmp/run/callgrind/queue.%p"
            ]
        );
        assert_eq!(
            callgrind_args("queue", None),
            ["--tool=callgrind", "--callgrind-out-file=/dev/null"]
        );
    }
}
