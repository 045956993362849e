//! How the store reaches Redis: a pool of connections, each carrying one call at a time, or
//! one multiplexed connection that pipelines every in-flight call into shared writes and reads
//! (fewer system calls on both sides under load; reconnects by itself after Redis restarts).
//! `QUEUE_REDIS_MULTIPLEXED` picks; the bench measures both. On a Redis Cluster
//! (`QUEUE_REDIS_CLUSTER`), one cluster connection: a multiplexed connection to each primary,
//! each call routed to the primary of its key's slot, following the cluster's slot moves.

use std::time::Duration;

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};
use tokio::sync::OnceCell;

use crate::error::QueueError;

pub enum Connections {
    Pooled(deadpool_redis::Pool),
    Multiplexed(Box<Multiplexed>),
    Cluster(Box<Cluster>),
}

pub struct Multiplexed {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Connected on first use (a service may start before Redis).
    manager: OnceCell<ConnectionManager>,
}

pub struct Cluster {
    client: ClusterClient,
    /// Connected on first use, as the multiplexed one.
    connection: OnceCell<ClusterConnection>,
}

/// One call's connection.
pub enum Connection {
    Pooled(deadpool_redis::Connection),
    Multiplexed(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connections {
    pub fn pooled(redis_url: &str, size: usize, deadline: Duration) -> Result<Self, QueueError> {
        let mut config = deadpool_redis::Config::from_url(redis_url);
        let mut pool = deadpool_redis::PoolConfig::new(size);
        pool.timeouts.wait = Some(deadline);
        pool.timeouts.create = Some(deadline);
        pool.timeouts.recycle = Some(deadline);
        config.pool = Some(pool);
        config
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map(Self::Pooled)
            .map_err(|error| QueueError::Protocol(format!("bad Redis configuration: {error}")))
    }

    pub fn multiplexed(redis_url: &str, deadline: Duration) -> Result<Self, QueueError> {
        let client = redis::Client::open(redis_url)
            .map_err(|error| QueueError::Protocol(format!("bad Redis URL: {error}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(deadline))
            .set_response_timeout(Some(deadline))
            // Reconnecting: quick at first, then at most once a second, for as long as it takes.
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(usize::MAX);
        Ok(Self::Multiplexed(Box::new(Multiplexed {
            client,
            config,
            manager: OnceCell::new(),
        })))
    }

    /// A Redis Cluster from one or more of its nodes (`nodes`: their URLs, comma-separated);
    /// every connection attempt and every answer waits at most `deadline`, retries and
    /// redirections included.
    pub fn cluster(nodes: &str, deadline: Duration) -> Result<Self, QueueError> {
        let nodes: Vec<&str> = nodes
            .split(',')
            .map(str::trim)
            .filter(|node| !node.is_empty())
            .collect();
        let client = ClusterClient::builder(nodes)
            .connection_timeout(deadline)
            .response_timeout(deadline)
            .build()
            .map_err(|error| QueueError::Protocol(format!("bad Redis Cluster URL: {error}")))?;
        Ok(Self::Cluster(Box::new(Cluster {
            client,
            connection: OnceCell::new(),
        })))
    }

    pub async fn get(&self) -> Result<Connection, QueueError> {
        match self {
            Self::Pooled(pool) => Ok(Connection::Pooled(pool.get().await?)),
            Self::Multiplexed(multiplexed) => {
                let Multiplexed {
                    client,
                    config,
                    manager,
                } = &**multiplexed;
                let manager = manager
                    .get_or_try_init(|| {
                        ConnectionManager::new_with_config(client.clone(), config.clone())
                    })
                    .await?;
                // A clone is a handle on the same connection.
                Ok(Connection::Multiplexed(manager.clone()))
            }
            Self::Cluster(cluster) => {
                let connection = cluster
                    .connection
                    .get_or_try_init(|| cluster.client.get_async_connection())
                    .await?;
                Ok(Connection::Cluster(connection.clone()))
            }
        }
    }

    /// Open, idle and most connections, and calls waiting for one (pooled only).
    pub fn usage(&self) -> kit::metrics::PoolUsage {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        match self {
            Self::Pooled(pool) => {
                let status = pool.status();
                kit::metrics::PoolUsage {
                    open: count(status.size),
                    idle: count(status.available),
                    max: count(status.max_size),
                    waiting: Some(count(status.waiting)),
                }
            }
            Self::Multiplexed(multiplexed) => one_shared(multiplexed.manager.initialized()),
            Self::Cluster(cluster) => one_shared(cluster.connection.initialized()),
        }
    }
}

/// The usage of one connection every call shares (open once connected).
fn one_shared(connected: bool) -> kit::metrics::PoolUsage {
    kit::metrics::PoolUsage {
        open: u64::from(connected),
        idle: 0,
        max: 1,
        waiting: None,
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Pooled(connection) => connection.req_packed_command(cmd),
            Self::Multiplexed(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Pooled(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Multiplexed(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Pooled(connection) => connection.get_db(),
            Self::Multiplexed(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}
