//! Injects one fault into the processes it is given, and returns once the fault has ended:
//! a stall once its target runs again, a restart or a kill once the replacement serves. The
//! targets are explicit ([`Targets`]: pids, a data directory, gRPC addresses), checked before
//! every signal ([`super::process`]); nothing is looked for by name. Every wait has a deadline.

use std::{
    net::SocketAddr,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::{
    process::{self, Process},
    schedule::Fault,
};

/// A replica of a backend: its process, and the gRPC address where it (and whatever its
/// supervisor starts in its place) serves.
#[derive(Clone, Copy, Debug)]
pub struct Replica {
    pub process: Process,
    pub addr: SocketAddr,
}

/// A replica as the command line names it: `PID@ADDR`.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaArg {
    pub pid: u32,
    pub addr: SocketAddr,
}

impl FromStr for ReplicaArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (pid, addr) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?}: expected PID@ADDR, e.g. 4242@127.0.0.1:50053"))?;
        Ok(Self {
            pid: pid.parse().map_err(|_| format!("{pid:?} is not a pid"))?,
            addr: addr
                .parse()
                .map_err(|_| format!("{addr:?} is not an address"))?,
        })
    }
}

impl ReplicaArg {
    /// The replica, its process taken as it is now.
    pub fn replica(&self) -> anyhow::Result<Replica> {
        Ok(Replica {
            process: Process::named(self.pid)?,
            addr: self.addr,
        })
    }
}

/// What the faults are aimed at.
#[derive(Debug, Default)]
pub struct Targets {
    /// The Redis server stalled.
    pub redis: Option<Process>,
    /// The PostgreSQL cluster stalled and restarted: its data directory (the postmaster is
    /// the pid in its `postmaster.pid`, read at each fault, so a restarted cluster is still
    /// found).
    pub postgres: Option<PathBuf>,
    /// The reservation replica killed.
    pub reservation: Option<Replica>,
    /// The queue replicas, restarted in turn.
    pub queue: Vec<Replica>,
}

impl Targets {
    /// Fails unless every fault in `faults` has its target.
    pub fn check(&self, faults: &[Fault]) -> anyhow::Result<()> {
        for fault in faults {
            let missing = match fault {
                Fault::RedisStall => self.redis.is_none().then_some("--redis-pid"),
                Fault::PostgresStall | Fault::PostgresRestart => {
                    self.postgres.is_none().then_some("--postgres-data-dir")
                }
                Fault::ReservationKill => self.reservation.is_none().then_some("--reservation"),
                Fault::QueueRestart => self.queue.is_empty().then_some("--queue"),
            };
            if let Some(argument) = missing {
                bail!("{} needs its target: {argument}", fault.name());
            }
        }
        Ok(())
    }
}

/// How long a replica may take to be replaced and serve, and a process to exit after SIGTERM
/// (a clean stop drains calls in flight, each bounded by the server's 5 s deadline).
const REPLACED_WITHIN: Duration = Duration::from_secs(60);
const EXITS_WITHIN: Duration = Duration::from_secs(20);
/// How long a PostgreSQL restart may take (pg_ctl's own wait, and ours around it).
const RESTART_WITHIN: Duration = Duration::from_secs(60);
/// How often a condition is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(20);

/// Injects `fault` into `targets` (stalls last `stall`) and answers what was done.
pub async fn inject(fault: Fault, targets: &Targets, stall: Duration) -> anyhow::Result<String> {
    let seconds = stall.as_secs_f64();
    match fault {
        Fault::RedisStall => {
            let redis = targets.redis.context("no Redis target")?;
            stall_processes(stall, || Ok(vec![redis])).await?;
            Ok(format!(
                "SIGSTOP to redis-server (pid {}), SIGCONT {seconds} s later",
                redis.pid()
            ))
        }
        Fault::PostgresStall => {
            let dir = targets
                .postgres
                .as_deref()
                .context("no PostgreSQL target")?;
            let postmaster = process::postmaster(dir)?;
            let stopped = stall_processes(stall, || {
                // The postmaster first, so it starts no new process; then everything it started.
                postmaster.signal(Signal::SIGSTOP)?;
                let mut all = vec![postmaster];
                all.extend(postmaster.children());
                Ok(all)
            })
            .await?;
            Ok(format!(
                "SIGSTOP to the postmaster (pid {}) and its {} processes, SIGCONT {seconds} s later",
                postmaster.pid(),
                stopped - 1
            ))
        }
        Fault::PostgresRestart => {
            let dir = targets
                .postgres
                .as_deref()
                .context("no PostgreSQL target")?;
            restart_postgres(dir).await
        }
        Fault::ReservationKill => {
            let replica = targets.reservation.context("no reservation target")?;
            replica.process.signal(Signal::SIGKILL)?;
            let gone = Instant::now();
            wait_for("the killed replica to exit", EXITS_WITHIN, || async {
                !replica.process.is_alive()
            })
            .await?;
            wait_serving(replica.addr).await?;
            Ok(format!(
                "SIGKILL to reservation (pid {}); a new process served at {} {:.1} s later",
                replica.process.pid(),
                replica.addr,
                gone.elapsed().as_secs_f64()
            ))
        }
        Fault::QueueRestart => {
            for replica in &targets.queue {
                replica.process.signal(Signal::SIGTERM)?;
                wait_for("a stopped queue replica to exit", EXITS_WITHIN, || async {
                    !replica.process.is_alive()
                })
                .await?;
                wait_serving(replica.addr).await?;
            }
            let pids: Vec<String> = targets
                .queue
                .iter()
                .map(|r| r.process.pid().to_string())
                .collect();
            Ok(format!(
                "SIGTERM to each queue replica in turn (pids {}), the next once a new process served at the stopped one's address",
                pids.join(", ")
            ))
        }
    }
}

/// Processes stopped by SIGSTOP, sent SIGCONT when this is dropped: when the stall is over, and
/// also when it fails half-way or is cancelled, so a target is never left stopped by us.
struct Stopped(Vec<Process>);

impl Drop for Stopped {
    fn drop(&mut self) {
        for process in self.0.iter().rev() {
            if let Err(error) = process.signal(Signal::SIGCONT) {
                eprintln!("faults: {error:#}");
            }
        }
    }
}

/// Stops the processes `stop` answers (SIGSTOP to each; again to any it stopped itself, which
/// changes nothing), keeps them stopped for `stall`, then continues them; answers how many were
/// stopped.
async fn stall_processes(
    stall: Duration,
    stop: impl FnOnce() -> anyhow::Result<Vec<Process>>,
) -> anyhow::Result<usize> {
    let mut stopped = Stopped(Vec::new());
    let targets = stop()?;
    for process in targets {
        // A process that exited in between (a PostgreSQL backend whose client left) is fine.
        if process.signal(Signal::SIGSTOP).is_ok() {
            stopped.0.push(process);
        }
    }
    if stopped.0.is_empty() {
        bail!("nothing to stop");
    }
    // The stall counts from when every one has stopped (or exited meanwhile).
    wait_for("the stopped processes to stop", EXITS_WITHIN, || async {
        stopped.0.iter().all(|p| p.is_stopped() || !p.is_alive())
    })
    .await?;
    tokio::time::sleep(stall).await;
    Ok(stopped.0.len())
}

/// `pg_ctl restart -m fast` of the cluster in `data_dir` (fast shutdown: sessions are ended and
/// transactions in flight rolled back, then the server starts again with the options it ran
/// with, from `postmaster.opts`), waiting until it accepts connections. pg_ctl is the one beside
/// the running server's own program, run as the data directory's owner (PostgreSQL refuses to
/// run as root); the server's output after the restart goes to `restart.log` in the data
/// directory. The new server is pg_ctl's child, then an orphan: whoever started the first
/// stops it through the data directory.
async fn restart_postgres(data_dir: &Path) -> anyhow::Result<String> {
    let before = process::postmaster(data_dir)?;
    let pg_ctl = before
        .program()?
        .parent()
        .map(|bin| bin.join("pg_ctl"))
        .context("no folder of the server's program")?;
    let mut command = as_owner_of(data_dir, &pg_ctl)?;
    command
        .args(["restart", "-m", "fast", "-w", "-t"])
        .arg(RESTART_WITHIN.as_secs().to_string())
        .arg("-D")
        .arg(data_dir)
        .arg("-l")
        .arg(data_dir.join("restart.log"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RESTART_WITHIN + Duration::from_secs(5), command.output())
        .await
        .context("pg_ctl restart did not finish in time")?
        .context("running pg_ctl")?;
    if !output.status.success() {
        bail!(
            "pg_ctl restart failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let after = process::postmaster(data_dir)?;
    Ok(format!(
        "pg_ctl restart -m fast -w of {} (postmaster pid {} → {})",
        data_dir.display(),
        before.pid(),
        after.pid()
    ))
}

/// A command running `program` as the owner of `path` (its uid and group, when we are root and
/// the owner is not).
fn as_owner_of(path: &Path, program: &Path) -> anyhow::Result<tokio::process::Command> {
    let owner = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .uid();
    let mut command = tokio::process::Command::new(program);
    if nix::unistd::geteuid().is_root() && owner != 0 {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner))
            .context("looking up the data directory's owner")?
            .with_context(|| format!("no user has uid {owner}"))?;
        command.uid(owner).gid(user.gid.as_raw());
    }
    Ok(command)
}

/// Polls `ready` every [`POLL`] until it says yes; an error after `limit`.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut ready: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if ready().await {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
    bail!("waited {limit:?} for {what}")
}

/// Waits until the gRPC server at `addr` answers grpc.health.v1 SERVING (its stores answer).
async fn wait_serving(addr: SocketAddr) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_millis(500))
        .connect_lazy();
    let client = tonic_health::pb::health_client::HealthClient::new(channel);
    wait_for(
        &format!("a process serving at {addr}"),
        REPLACED_WITHIN,
        || {
            let mut client = client.clone();
            async move {
                let request = tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                };
                client.check(request).await.is_ok_and(|reply| {
                    reply.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                })
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::TcpListener;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;

    #[test]
    fn a_replica_is_named_pid_at_address() {
        let replica: ReplicaArg = "4242@127.0.0.1:50053".parse().unwrap();
        assert_eq!(replica.pid, 4242);
        assert_eq!(replica.addr, "127.0.0.1:50053".parse().unwrap());
        assert!("4242".parse::<ReplicaArg>().is_err());
        assert!("x@127.0.0.1:1".parse::<ReplicaArg>().is_err());
        assert!("1@nowhere".parse::<ReplicaArg>().is_err());
    }

    #[test]
    fn a_fault_without_its_target_is_refused_before_the_run() {
        let none = Targets::default();
        assert!(none.check(&[]).is_ok());
        for fault in Fault::ALL {
            let error = none.check(&[fault]).unwrap_err().to_string();
            assert!(error.starts_with(fault.name()), "{error}");
        }
    }

    /// The machine's redis-server: `TICKETING_REDIS_SERVER` (what `cargo xtask test` sets),
    /// else the one on PATH.
    fn redis_server() -> PathBuf {
        std::env::var_os("TICKETING_REDIS_SERVER")
            .map(PathBuf::from)
            .or_else(|| which::which("redis-server").ok())
            .expect("redis-server: run through `cargo xtask test`, or install it")
    }

    /// PING → PONG within `deadline`.
    async fn answers(port: u16, deadline: Duration) -> bool {
        let ping = async {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.write_all(b"PING\r\n").await.ok()?;
            let mut reply = [0u8; 7];
            stream.read_exact(&mut reply).await.ok()?;
            Some(&reply == b"+PONG\r\n")
        };
        matches!(tokio::time::timeout(deadline, ping).await, Ok(Some(true)))
    }

    /// Waits until `process` is stopped (`stopped`) or runs again (not `stopped`).
    async fn until_stopped(process: Process, stopped: bool) {
        let what = if stopped {
            "the server to be stopped"
        } else {
            "the server to run again"
        };
        wait_for(what, Duration::from_secs(5), || async {
            process.is_stopped() == stopped
        })
        .await
        .unwrap();
    }

    /// A redis-server of our own on a free port, answering.
    async fn own_redis() -> (tokio::process::Child, u16) {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(redis_server())
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_for("the test's redis-server", Duration::from_secs(10), || {
            answers(port, Duration::from_millis(200))
        })
        .await
        .unwrap();
        (child, port)
    }

    #[tokio::test]
    async fn a_redis_stall_stops_the_server_it_is_given_and_continues_it_afterwards() {
        let (child, port) = own_redis().await;
        let redis = Process::named(child.id().unwrap()).unwrap();
        let targets = Targets {
            redis: Some(redis),
            ..Targets::default()
        };
        let stall = tokio::spawn(async move {
            inject(Fault::RedisStall, &targets, Duration::from_secs(2)).await
        });
        until_stopped(redis, true).await;
        assert!(
            !answers(port, Duration::from_millis(300)).await,
            "a stopped server does not answer"
        );
        let what = stall.await.unwrap().unwrap();
        assert!(what.contains(&format!("pid {}", redis.pid())), "{what}");
        until_stopped(redis, false).await;
        assert!(
            answers(port, Duration::from_secs(2)).await,
            "it answers again"
        );
    }

    #[tokio::test]
    async fn a_stall_cut_short_still_continues_its_target() {
        let (child, port) = own_redis().await;
        let redis = Process::named(child.id().unwrap()).unwrap();
        let stall = tokio::spawn(async move {
            stall_processes(Duration::from_secs(600), || Ok(vec![redis])).await
        });
        until_stopped(redis, true).await;
        stall.abort();
        assert!(stall.await.unwrap_err().is_cancelled());
        until_stopped(redis, false).await;
        assert!(answers(port, Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn a_process_that_is_gone_is_not_signalled() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("60")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let sleeper = Process::named(child.id().unwrap()).unwrap();
        child.kill().await.unwrap();
        assert!(!sleeper.is_alive());
        let targets = Targets {
            redis: Some(sleeper),
            ..Targets::default()
        };
        let error = inject(Fault::RedisStall, &targets, Duration::ZERO)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("nothing to stop"), "{error:#}");
    }
}
