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

pub struct Stores {
    pub redis_url: String,
    pub database_url: String,
    children: Vec<(&'static str, Child)>,
}

impl Stores {
    pub fn has_private_instances(&self) -> bool {
        !self.children.is_empty()
    }

    /// Stops private instances (SIGTERM, then SIGKILL after a grace).
    pub async fn stop(mut self) {
        for (name, child) in &mut self.children {
            process::terminate(name, child, Duration::from_secs(10)).await;
        }
    }
}

pub async fn ensure(args: &StoreArgs) -> anyhow::Result<Stores> {
    let mut children = Vec::new();
    let redis_url = match redis(args).await? {
        Found::Url(url) => url,
        Found::Started(url, child) => {
            children.push(("redis", child));
            url
        }
    };
    let database_url = match postgres(args).await? {
        Found::Url(url) => url,
        Found::Started(url, child) => {
            children.push(("postgres", child));
            url
        }
    };
    Ok(Stores {
        redis_url,
        database_url,
        children,
    })
}

enum Found {
    Url(String),
    Started(String, Child),
}

fn data_dir(name: &str) -> PathBuf {
    process::root().join("target").join("stores").join(name)
}

// ---------------------------------------------------------------- Redis

async fn redis(args: &StoreArgs) -> anyhow::Result<Found> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return Ok(Found::Url(url));
    }
    let default: SocketAddr = ([127, 0, 0, 1], 6379).into();
    if !args.private_stores && redis_answers(default).await {
        return Ok(Found::Url("redis://127.0.0.1:6379".into()));
    }
    let binary = match find_binary("redis-server") {
        Some(binary) => binary,
        None => {
            apt_install(&["redis-server"]).await?;
            find_binary("redis-server").context(
                "Redis is needed: install it (Debian/Ubuntu: `apt-get install redis-server`) or set REDIS_URL",
            )?
        }
    };
    let dir = data_dir("redis");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("redis.log"))?;
    let child = Command::new(&binary)
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
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
    eprintln!(
        "xtask: started a private Redis on 127.0.0.1:{port} (data in {})",
        dir.display()
    );
    Ok(Found::Started(format!("redis://127.0.0.1:{port}"), child))
}

/// True when something at `addr` answers PING with PONG.
async fn redis_answers(addr: SocketAddr) -> bool {
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

async fn postgres(args: &StoreArgs) -> anyhow::Result<Found> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(Found::Url(url));
    }
    let default_url = "postgres://postgres@127.0.0.1:5432/postgres";
    if !args.private_stores && postgres_usable(default_url).await {
        return Ok(Found::Url(default_url.into()));
    }
    let bin_dir = match postgres_bin_dir() {
        Some(dir) => dir,
        None => {
            apt_install(&["postgresql"]).await?;
            postgres_bin_dir().context(
                "PostgreSQL is needed: install it (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL",
            )?
        }
    };
    let dir = data_dir("postgres");
    let run_as = postgres_run_as()?;
    if !dir.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&dir)?;
        chown(&dir, run_as.as_deref()).await?;
        let status = as_user(run_as.as_deref(), &bin_dir.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(&dir)
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
    let child = as_user(run_as.as_deref(), &bin_dir.join("postgres"))
        .arg("-D")
        .arg(&dir)
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
    Ok(Found::Started(url, child))
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
fn postgres_run_as() -> anyhow::Result<Option<String>> {
    if !is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(_)) => Ok(Some("postgres".into())),
        Ok(None) => {
            bail!("PostgreSQL cannot run as root and there is no `postgres` user; set DATABASE_URL")
        }
        Err(error) => bail!("looking up the `postgres` user: {error}"),
    }
}

fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

async fn chown(dir: &Path, user: Option<&str>) -> anyhow::Result<()> {
    if let Some(user) = user {
        let status = Command::new("chown")
            .args(["-R", user])
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

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
