//! A private Redis Cluster of three primaries, started from this machine's own redis-server
//! (installed as the stores are when missing): private ports, data under
//! target/stores/redis-cluster/<xtask's pid>/ (fresh each time, so two runs in one checkout do
//! not share a node's files; those of runs that ended are removed by the next), created with
//! CLUSTER ADDSLOTSRANGE and
//! CLUSTER MEET (no redis-cli needed), ready once every node says `cluster_state:ok`.
//! `cargo xtask test` runs the queue's tests on it a second time; `cargo xtask up
//! --redis-cluster` and `cargo xtask stores --redis-cluster` run on it.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use tokio::process::Child;

use crate::{
    process::{self, wait_until},
    stores::{self, Stores},
};

/// Primaries of the cluster; the 16,384 slots are split evenly between them.
const PRIMARIES: u16 = 3;
const SLOTS: u16 = 16_384;
/// Each Redis command of the set-up waits at most this long.
const COMMAND_DEADLINE: Duration = Duration::from_secs(5);

/// A running cluster: its nodes' URLs and processes.
pub struct RedisCluster {
    /// Every node, comma-separated: what `REDIS_URL` holds for the queue with
    /// `QUEUE_REDIS_CLUSTER=true`.
    pub url: String,
    nodes: Vec<(&'static str, Child)>,
}

impl RedisCluster {
    /// Starts the nodes, gives each a third of the slots, introduces them to each other and
    /// waits until the cluster serves every slot.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = stores::redis_server().await?;
        let runs = stores::data_dir("redis-cluster");
        remove_ended_runs(&runs)?;
        let dir = runs.join(std::process::id().to_string());
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for index in 0..PRIMARIES {
            let (port, bus) = (stores::free_port()?, stores::free_port()?);
            let bus_port = bus.to_string();
            let cluster = [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus_port,
                "--cluster-config-file",
                "nodes.conf",
            ];
            let node_dir = dir.join(format!("node-{index}"));
            let child = stores::start_redis(&binary, port, &node_dir, &cluster).await?;
            nodes.push(("redis cluster node", child));
            addrs.push((SocketAddr::from(([127, 0, 0, 1], port)), bus));
        }
        let mut connections = Vec::new();
        for (addr, _) in &addrs {
            connections.push(connect(*addr).await?);
        }
        for (index, connection) in (0..PRIMARIES).zip(connections.iter_mut()) {
            let first = SLOTS / PRIMARIES * index;
            let last = if index + 1 == PRIMARIES {
                SLOTS - 1
            } else {
                SLOTS / PRIMARIES * (index + 1) - 1
            };
            let mut command = redis::cmd("CLUSTER");
            command.arg("ADDSLOTSRANGE").arg(first).arg(last);
            query::<()>(connection, &command).await?;
        }
        for (addr, bus) in addrs.iter().skip(1) {
            let mut command = redis::cmd("CLUSTER");
            command
                .arg("MEET")
                .arg(addr.ip().to_string())
                .arg(addr.port())
                .arg(*bus);
            query::<()>(&mut connections[0], &command).await?;
        }
        wait_until(
            "the Redis Cluster (cluster_state:ok on every node)",
            Duration::from_secs(30),
            || {
                let addrs = addrs.clone();
                async move {
                    for (addr, _) in addrs {
                        if !serves_every_slot(addr).await {
                            return false;
                        }
                    }
                    true
                }
            },
        )
        .await?;
        let url = addrs
            .iter()
            .map(|(addr, _)| format!("redis://{addr}"))
            .collect::<Vec<_>>()
            .join(",");
        eprintln!(
            "xtask: started a private Redis Cluster of {PRIMARIES} primaries: {url} (data in {})",
            dir.display()
        );
        Ok(Self { url, nodes })
    }

    /// Stops every node.
    pub async fn stop(mut self) {
        process::stop_all(&mut self.nodes).await;
    }
}

/// Runs the queue of `cargo xtask up` on a new cluster: its nodes replace the Redis found, and
/// stop with the other stores.
pub async fn serve_queue(
    stores: &mut Stores,
    env: &mut Vec<(&'static str, String)>,
) -> anyhow::Result<()> {
    let cluster = RedisCluster::start().await?;
    env.push(("QUEUE_REDIS_CLUSTER", "true".into()));
    stores.use_redis(cluster.url, cluster.nodes);
    Ok(())
}

/// Removes the data of clusters whose xtask has ended: node ids and ports differ each time, so
/// an earlier cluster's files are of no use.
fn remove_ended_runs(runs: &std::path::Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let pid = entry.file_name();
        if !std::path::Path::new("/proc").join(&pid).exists() {
            let dir = entry.path();
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    Ok(())
}

async fn connect(addr: SocketAddr) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_DEADLINE))
        .set_response_timeout(Some(COMMAND_DEADLINE));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to the Redis Cluster node at {addr}"))
}

async fn query<T: redis::FromRedisValue>(
    connection: &mut redis::aio::MultiplexedConnection,
    command: &redis::Cmd,
) -> anyhow::Result<T> {
    command
        .query_async(connection)
        .await
        .context("setting up the Redis Cluster")
}

/// Whether the node at `addr` says the cluster is whole: every slot served, every node known.
async fn serves_every_slot(addr: SocketAddr) -> bool {
    let Ok(mut connection) = connect(addr).await else {
        return false;
    };
    let mut command = redis::cmd("CLUSTER");
    command.arg("INFO");
    let Ok(info) = query::<String>(&mut connection, &command).await else {
        return false;
    };
    info.lines().any(|line| line.trim() == "cluster_state:ok")
        && info
            .lines()
            .any(|line| line.trim() == format!("cluster_known_nodes:{PRIMARIES}"))
}
