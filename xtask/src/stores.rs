//! Finds or starts the stores the services need, in this order for each:
//! 1. the URL in the environment (`REDIS_URL`, `DATABASE_URL`);
//! 2. a server already answering on the default local port;
//! 3. a private instance started from this machine's own binaries, data under target/stores/;
//! 4. on Debian/Ubuntu as root, the Debian package installed with apt, then as 3;
//! 5. otherwise a one-line message saying what to install.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

use crate::process::{self, find_binary, is_root, wait_until};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct StoreArgs {
    /// Ignore servers on the default ports and start private instances.
    #[arg(long)]
    pub private_stores: bool,
}

#[derive(Default)]
pub struct Stores {
    pub redis_url: String,
    pub database_url: String,
    children: Vec<(&'static str, Child)>,
    /// The private PostgreSQL's data directory, when one was started.
    postgres_dir: Option<PathBuf>,
}

impl Stores {
    /// The URL of database `name` on the PostgreSQL server found.
    pub fn database(&self, name: &str) -> anyhow::Result<String> {
        kit::postgres::with_database(&self.database_url, name).map_err(anyhow::Error::msg)
    }

    pub fn has_private_instances(&self) -> bool {
        !self.children.is_empty()
    }

    /// The private Redis's process, when one was started.
    pub fn private_redis_pid(&self) -> Option<u32> {
        self.children
            .iter()
            .find(|(name, _)| *name == "redis")
            .and_then(|(_, child)| child.id())
    }

    /// The private PostgreSQL's data directory, when one was started.
    pub fn private_postgres_dir(&self) -> Option<&Path> {
        self.postgres_dir.as_deref()
    }

    /// Redis is at `url` from now on, served by `children` (stopped with the other private
    /// instances); a private Redis started before stays up until then.
    pub fn use_redis(&mut self, url: String, children: Vec<(&'static str, Child)>) {
        self.redis_url = url;
        self.children.extend(children);
    }

    /// Stops private instances: a private PostgreSQL through its data directory first
    /// (`pg_ctl stop -m fast`: whichever server runs there, also one that someone restarted —
    /// the faults run's `pg_ctl restart` — which is no longer our child), then each child
    /// still running (SIGTERM, then SIGKILL after a grace).
    pub async fn stop(mut self) {
        if let Some(dir) = &self.postgres_dir
            && dir.join("postmaster.pid").exists()
            && let Err(error) = stop_postgres(dir).await
        {
            eprintln!("xtask: {error:#}");
        }
        for (name, child) in &mut self.children {
            process::terminate(name, child, Duration::from_secs(10)).await;
        }
    }
}

pub async fn ensure(args: &StoreArgs) -> anyhow::Result<Stores> {
    let mut stores = Stores::default();
    stores.redis_url = match redis(args).await? {
        Some(url) => url,
        None => stores.start_redis(&data_dir("redis")).await?,
    };
    stores.database_url = match postgres(args).await? {
        Some(url) => url,
        None => stores.start_postgres(&data_dir("postgres")).await?,
    };
    Ok(stores)
}

/// Private Redis and PostgreSQL instances of our own, whatever the environment or the
/// default ports offer, with their data under target/stores/`name`/ (so they never share a
/// data directory with `up`'s or `test`'s private instances).
pub async fn private(name: &str) -> anyhow::Result<Stores> {
    let mut stores = Stores::default();
    let dir = data_dir(name);
    stores.redis_url = stores.start_redis(&dir.join("redis")).await?;
    stores.database_url = stores.start_postgres(&dir.join("postgres")).await?;
    Ok(stores)
}

impl Stores {
    async fn start_redis(&mut self, dir: &Path) -> anyhow::Result<String> {
        let (url, child) = private_redis(dir).await?;
        self.children.push(("redis", child));
        Ok(url)
    }

    async fn start_postgres(&mut self, dir: &Path) -> anyhow::Result<String> {
        let (url, child) = private_postgres(dir).await?;
        self.children.push(("postgres", child));
        self.postgres_dir = Some(dir.to_path_buf());
        Ok(url)
    }
}

pub fn data_dir(name: &str) -> PathBuf {
    process::root().join("target").join("stores").join(name)
}

// ---------------------------------------------------------------- Redis

/// The Redis to use when one is there already (None: start a private one).
async fn redis(args: &StoreArgs) -> anyhow::Result<Option<String>> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return Ok(Some(url));
    }
    let default: SocketAddr = ([127, 0, 0, 1], 6379).into();
    if !args.private_stores && redis_answers(default).await {
        return Ok(Some("redis://127.0.0.1:6379".into()));
    }
    Ok(None)
}

/// A private Redis on a free port, data in `dir`.
async fn private_redis(dir: &Path) -> anyhow::Result<(String, Child)> {
    let binary = redis_server().await?;
    let port = free_port()?;
    let child = start_redis(&binary, port, dir, &[]).await?;
    eprintln!(
        "xtask: started a private Redis on 127.0.0.1:{port} (data in {})",
        dir.display()
    );
    Ok((format!("redis://127.0.0.1:{port}"), child))
}

/// Starts `binary` on 127.0.0.1:`port` without persistence, with `extra` arguments, its data
/// and its log (redis.log) in `dir`, and waits until it answers.
pub async fn start_redis(
    binary: &Path,
    port: u16,
    dir: &Path,
    extra: &[&str],
) -> anyhow::Result<Child> {
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("redis.log"))?;
    let child = Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_until("private Redis", Duration::from_secs(15), || {
        redis_answers(addr)
    })
    .await?;
    Ok(child)
}

/// This machine's redis-server; as root on Debian/Ubuntu installed first if missing.
pub async fn redis_server() -> anyhow::Result<PathBuf> {
    if let Some(binary) = find_binary("redis-server") {
        return Ok(binary);
    }
    apt_install(&["redis-server"]).await?;
    find_binary("redis-server").context(
        "Redis is needed: install it (Debian/Ubuntu: `apt-get install redis-server`) or set REDIS_URL",
    )
}

/// True when something at `addr` answers PING with PONG.
pub async fn redis_answers(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut buffer = [0u8; 7];
        stream.read_exact(&mut buffer).await.ok()?;
        Some(&buffer == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(true))
    )
}

// ---------------------------------------------------------------- PostgreSQL

/// The PostgreSQL to use when one is there already (None: start a private one).
async fn postgres(args: &StoreArgs) -> anyhow::Result<Option<String>> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(Some(url));
    }
    let default_url = "postgres://postgres@127.0.0.1:5432/postgres";
    if !args.private_stores && postgres_usable(default_url).await {
        return Ok(Some(default_url.into()));
    }
    Ok(None)
}

/// This machine's PostgreSQL server binaries; as root on Debian/Ubuntu installed first if
/// missing.
async fn postgres_binaries() -> anyhow::Result<PathBuf> {
    if let Some(dir) = postgres_bin_dir() {
        return Ok(dir);
    }
    apt_install(&["postgresql"]).await?;
    postgres_bin_dir().context(
        "PostgreSQL is needed: install it (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL",
    )
}

/// A private PostgreSQL on a free port, its cluster in `dir` (created on first use), its log
/// beside it.
async fn private_postgres(dir: &Path) -> anyhow::Result<(String, Child)> {
    let bin_dir = postgres_binaries().await?;
    let run_as = postgres_run_as()?;
    if !dir.join("PG_VERSION").exists() {
        std::fs::create_dir_all(dir)?;
        chown(dir, run_as.as_ref()).await?;
        let status = as_user(run_as.as_ref(), &bin_dir.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(dir)
            .stdout(Stdio::null())
            .status()
            .await
            .context("running initdb")?;
        if !status.success() {
            bail!("initdb failed for {}", dir.display());
        }
    }
    let port = free_port()?;
    let log = std::fs::File::create(dir.with_extension("log"))?;
    let child = as_user(run_as.as_ref(), &bin_dir.join("postgres"))
        .arg("-D")
        .arg(dir)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
        ])
        .arg(format!("unix_socket_directories={}", dir.display()))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .context("starting postgres")?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    wait_until("private PostgreSQL", Duration::from_secs(30), || {
        postgres_usable(&url)
    })
    .await?;
    eprintln!(
        "xtask: started a private PostgreSQL on 127.0.0.1:{port} (data in {})",
        dir.display()
    );
    Ok((url, child))
}

/// Stops the cluster in `dir` with `pg_ctl stop -m fast`, waiting until it has.
async fn stop_postgres(dir: &Path) -> anyhow::Result<()> {
    let bin_dir = postgres_binaries().await?;
    let status = as_user(postgres_run_as()?.as_ref(), &bin_dir.join("pg_ctl"))
        .args(["stop", "-m", "fast", "-w", "-t", "30", "-D"])
        .arg(dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(40), status).await {
        Ok(Ok(status)) if status.success() => {
            eprintln!("xtask: stopped the PostgreSQL in {}", dir.display());
            Ok(())
        }
        Ok(Ok(status)) => bail!("pg_ctl stop of {} failed ({status})", dir.display()),
        Ok(Err(error)) => Err(error).context("running pg_ctl"),
        Err(_) => bail!("pg_ctl stop of {} took over 40 s", dir.display()),
    }
}

/// True when the server at `url` accepts a connection with the URL's credentials.
async fn postgres_usable(url: &str) -> bool {
    use sqlx::Connection;
    let attempt = sqlx::PgConnection::connect(url);
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            true
        }
        _ => false,
    }
}

/// The newest PostgreSQL server binaries on this machine.
fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("postgres").exists() && bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|path| {
        path.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().or_else(|| {
        let initdb = find_binary("initdb")?;
        let dir = initdb.parent()?.to_path_buf();
        dir.join("postgres").exists().then_some(dir)
    })
}

/// PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
fn postgres_run_as() -> anyhow::Result<Option<nix::unistd::User>> {
    if !is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some(user)),
        Ok(None) => {
            bail!("PostgreSQL cannot run as root and there is no `postgres` user; set DATABASE_URL")
        }
        Err(error) => bail!("looking up the `postgres` user: {error}"),
    }
}

/// `program` run as `user` (its uid and group, set just before it starts), so the server is
/// our own child: signals reach it straight, and no `runuser` sits between, which would
/// SIGKILL it 2 s into a slow shutdown and stop itself for good when the server is stopped
/// with SIGSTOP (the faults run's stall).
fn as_user(user: Option<&nix::unistd::User>, program: &Path) -> Command {
    let mut command = Command::new(program);
    if let Some(user) = user {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    command
}

async fn chown(dir: &Path, user: Option<&nix::unistd::User>) -> anyhow::Result<()> {
    if let Some(user) = user {
        let status = Command::new("chown")
            .args(["-R", &user.name])
            .arg(dir)
            .status()
            .await?;
        if !status.success() {
            bail!("chown {} failed", dir.display());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- helpers

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Installs the package of each `(program, package)` whose program is not on PATH (see
/// [`apt_install`]).
pub async fn ensure_programs(programs: &[(&str, &str)]) -> anyhow::Result<()> {
    for (program, package) in programs {
        if find_binary(program).is_none() {
            apt_install(&[package]).await?;
        }
    }
    Ok(())
}

/// On Debian/Ubuntu as root, installs `packages`; elsewhere does nothing (the caller says what
/// to install).
pub async fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    if !Path::new("/etc/debian_version").exists() || !is_root() {
        return Ok(());
    }
    let package = packages.join(" ");
    eprintln!("xtask: installing {package} with apt-get");
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .await?;
    if !update.success() {
        bail!("apt-get update failed; install {package} by hand");
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .await?;
    if !install.success() {
        bail!("apt-get install {package} failed; install it by hand");
    }
    Ok(())
}
