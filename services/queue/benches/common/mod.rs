//! What the queue's benchmarks share: the store they measure (on one Redis, or on a Redis
//! Cluster with `QUEUE_REDIS_CLUSTER=true` and the nodes in `REDIS_URL`, as the service takes
//! them), this machine's Redis round-trip floor, GetStatus latency across a line, what a Redis
//! node says of its memory and CPU, a latency summary, and removing a run's keys.
#![allow(dead_code)]

use std::{
    future::Future,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use hdrhistogram::Histogram;
use queue::{Policy, QueueStore, domain::Token, store::Connections};

/// Samples per measured latency.
pub const SAMPLES: usize = 20_000;

/// `REDIS_URL`: one Redis, or the nodes of a cluster (comma-separated).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether `REDIS_URL` names a Redis Cluster (`QUEUE_REDIS_CLUSTER=true`).
pub fn cluster() -> bool {
    std::env::var("QUEUE_REDIS_CLUSTER").is_ok_and(|value| value == "true")
}

/// Each node `redis_url` names.
pub fn nodes(redis_url: &str) -> Vec<String> {
    redis_url
        .split(',')
        .map(|node| node.trim().to_owned())
        .collect()
}

/// The store measured, connected as the service is by default: one multiplexed connection to
/// one Redis, or the cluster connection (one multiplexed connection per node).
pub fn store(prefix: &str, policy: Policy, deadline: Duration) -> QueueStore {
    let redis = if cluster() {
        Connections::cluster(&redis_url(), deadline)
    } else {
        Connections::multiplexed(&redis_url(), deadline)
    };
    QueueStore::on(redis.expect("REDIS_URL"), prefix, policy, deadline)
}

/// A plain connection to one node.
pub async fn connect(node: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(node)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// The node of `redis_url` that holds `key` (on a cluster, the others answer MOVED).
pub async fn node_of(redis_url: &str, key: &str) -> String {
    for node in nodes(redis_url) {
        let held: Result<i64, _> = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut connect(&node).await)
            .await;
        if held == Ok(1) {
            return node;
        }
    }
    panic!("no node holds {key}");
}

/// A field of the node's `INFO <section>`, as a number.
async fn info(node: &str, section: &str, field: &str) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut connect(node).await)
        .await
        .expect("info");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
}

/// The bytes of data the node holds (`used_memory`).
pub async fn used_memory(node: &str) -> u64 {
    info(node, "memory", "used_memory").await as u64
}

/// The CPU time the node's process has used, user and system, in seconds.
pub async fn cpu_seconds(node: &str) -> f64 {
    info(node, "cpu", "used_cpu_user").await + info(node, "cpu", "used_cpu_sys").await
}

/// A bare PING's round trip to the first node of `redis_url`, `SAMPLES` times: the floor every
/// other latency is read against.
pub async fn ping_floor(redis_url: &str) -> Histogram<u64> {
    let mut connection = connect(&nodes(redis_url)[0]).await;
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..SAMPLES {
        let call = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .expect("ping");
        histogram
            .record(call.elapsed().as_micros() as u64)
            .expect("record");
    }
    histogram
}

/// What a burst of calls cost: calls per second, and the node's Redis CPU time per call (µs).
pub struct Burst {
    pub rate: f64,
    pub cpu_per_call: f64,
}

/// Makes `calls` calls (`call(i)`), `concurrency` at a time, and reads what they cost `node`.
pub async fn burst<F, Fut>(node: &str, calls: usize, concurrency: usize, call: F) -> Burst
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let cpu = cpu_seconds(node).await;
    let started = Instant::now();
    stream::iter(0..calls)
        .map(call)
        .buffer_unordered(concurrency)
        .for_each(|()| async {})
        .await;
    let rate = calls as f64 / started.elapsed().as_secs_f64();
    Burst {
        rate,
        cpu_per_call: (cpu_seconds(node).await - cpu) * 1e6 / calls as f64,
    }
}

/// A burst of bare PINGs to the first node of `redis_url` over one multiplexed connection: the
/// floor of a burst's rate and CPU.
pub async fn ping_burst(redis_url: &str, calls: usize, concurrency: usize) -> Burst {
    let node = nodes(redis_url).swap_remove(0);
    let connection = connect(&node).await;
    burst(&node, calls, concurrency, |_| {
        let mut connection = connection.clone();
        async move {
            let _: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .expect("ping");
        }
    })
    .await
}

pub fn summary(histogram: &Histogram<u64>) -> String {
    format!(
        "p50 {} µs, p99 {} µs, p99.9 {} µs",
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999)
    )
}

/// Unlinks every key under `prefix`, on every node of `redis_url`.
pub async fn cleanup(redis_url: &str, prefix: &str) {
    for node in nodes(redis_url) {
        cleanup_node(&node, prefix).await;
    }
}

async fn cleanup_node(node: &str, prefix: &str) {
    let mut connection = connect(node).await;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut connection)
            .await
            .expect("scan");
        // One key per command: on a cluster, keys of several slots cannot go in one.
        if !keys.is_empty() {
            let mut unlink = redis::pipe();
            for key in &keys {
                unlink.cmd("UNLINK").arg(key).ignore();
            }
            let () = unlink.query_async(&mut connection).await.expect("unlink");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

/// GetStatus one call at a time, `SAMPLES` times, on tokens picked all over `tokens`.
pub async fn status_latency(store: &QueueStore, tokens: &[Token]) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let mut pick = 0x9E37_79B9_7F4A_7C15_u64;
    for _ in 0..SAMPLES {
        // xorshift: spread samples over the whole line without a rand dependency.
        pick ^= pick << 13;
        pick ^= pick >> 7;
        pick ^= pick << 17;
        let token = tokens[(pick % tokens.len() as u64) as usize];
        let call = Instant::now();
        store.status(token).await.expect("status");
        histogram
            .record(call.elapsed().as_micros() as u64)
            .expect("record");
    }
    histogram
}
