//! Benchmark: GetStatus (position lookup + heartbeat) latency with 1k vs 1M waiters ahead.
//! Fills real rooms through the real issue script, then samples status calls one at a time
//! and runs a burst of them 64 at a time. The same run measures a bare Redis PING round trip as
//! this machine's floor, and reads from the node that holds each room what the room costs it:
//! Redis CPU time per status call and memory per waiter (on a Redis Cluster, the room's primary
//! beside what the other primaries gained meanwhile).
//!
//!   cargo bench -p queue --bench position            (REDIS_URL, default 127.0.0.1:6379)
//!   QUEUE_BENCH_SIZES=1000,100000 cargo bench -p queue --bench position
//!   QUEUE_REDIS_CLUSTER=true REDIS_URL=redis://…,redis://… cargo bench -p queue --bench position
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::time::{Duration, Instant};

use common::{
    SAMPLES, burst, cleanup, cpu_seconds, node_of, nodes, ping_burst, ping_floor, status_latency,
    summary, used_memory,
};
use futures::{StreamExt, stream};
use queue::{
    Policy,
    domain::{Room, Token, UserId},
};

mod common;

const FILL_CONCURRENCY: usize = 64;
/// Status calls in flight at once in the burst, and how many the burst makes.
const BURST_CONCURRENCY: usize = 64;
const BURST_CALLS: usize = 5 * SAMPLES;

#[tokio::main]
async fn main() {
    let redis_url = common::redis_url();
    let sizes: Vec<u64> = std::env::var("QUEUE_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,1000000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("QUEUE_BENCH_SIZES: comma-separated counts")
        })
        .collect();
    let prefix = format!("bench:{}", uuid::Uuid::new_v4().simple());
    let policy = Policy {
        admission_rate: 10.0,
        active_cap: 0,
        active_ttl: Duration::from_secs(600),
        waiting_grace: Duration::from_secs(3600),
        admitted_idle: Duration::ZERO,
    };
    let store = common::store(&prefix, policy, Duration::from_secs(5));
    let nodes = nodes(&redis_url);

    let cpu = cpu_seconds(&nodes[0]).await;
    let floor = ping_floor(&redis_url).await;
    let ping_cpu = (cpu_seconds(&nodes[0]).await - cpu) * 1e6 / SAMPLES as f64;
    let pings = ping_burst(&redis_url, BURST_CALLS, BURST_CONCURRENCY).await;
    println!(
        "{} ({} node{}); Redis PING (floor): one at a time {}, {ping_cpu:.1} µs of Redis CPU each; {BURST_CONCURRENCY} in flight {:.0}/s, {:.1} µs of Redis CPU each",
        if common::cluster() {
            "Redis Cluster"
        } else {
            "one Redis"
        },
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        summary(&floor),
        pings.rate,
        pings.cpu_per_call,
    );
    println!(
        "| waiters | status p50 | p99 | p99.9 | p99 / PING p99 | fill rate | Redis CPU per status, one at a time (÷ PING's) | {BURST_CONCURRENCY} in flight: status/s (÷ PING's), Redis CPU per status (÷ PING's) | memory per waiter on the room's node | other nodes gained |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (index, size) in sizes.iter().enumerate() {
        let room = Room::Concert(index as i64 + 1);
        let mut memory_before = Vec::new();
        for node in &nodes {
            memory_before.push(used_memory(node).await);
        }
        let started = Instant::now();
        let tokens: Vec<Token> = stream::iter(1..=*size as i64)
            .map(|user| {
                let store = store.clone();
                async move {
                    store
                        .issue(UserId::new(user).unwrap(), room)
                        .await
                        .expect("issue")
                        .token
                }
            })
            .buffer_unordered(FILL_CONCURRENCY)
            .collect()
            .await;
        let fill_rate = *size as f64 / started.elapsed().as_secs_f64();
        let home = node_of(&redis_url, &format!("{prefix}:{{q:{}}}:wait", index + 1)).await;
        let (mut room_bytes, mut elsewhere) = (0, 0);
        for (node, before) in nodes.iter().zip(memory_before) {
            let gained = used_memory(node).await.saturating_sub(before);
            if *node == home {
                room_bytes = gained;
            } else {
                elsewhere += gained;
            }
        }

        let cpu = cpu_seconds(&home).await;
        let histogram = status_latency(&store, &tokens).await;
        let cpu_one_at_a_time = (cpu_seconds(&home).await - cpu) * 1e6 / SAMPLES as f64;

        let statuses = burst(&home, BURST_CALLS, BURST_CONCURRENCY, |call| {
            let (store, token) = (store.clone(), tokens[call * 7_919 % tokens.len()]);
            async move {
                store.status(token).await.expect("status");
            }
        })
        .await;

        println!(
            "| {size} | {} µs | {} µs | {} µs | {:.2} | {:.0} issues/s | {cpu_one_at_a_time:.0} µs ({:.1}) | {:.0}/s ({:.2}), {:.0} µs ({:.1}) | {:.0} bytes | {:.1} MB |",
            histogram.value_at_quantile(0.50),
            histogram.value_at_quantile(0.99),
            histogram.value_at_quantile(0.999),
            histogram.value_at_quantile(0.99) as f64 / floor.value_at_quantile(0.99) as f64,
            fill_rate,
            cpu_one_at_a_time / ping_cpu,
            statuses.rate,
            statuses.rate / pings.rate,
            statuses.cpu_per_call,
            statuses.cpu_per_call / pings.cpu_per_call,
            room_bytes as f64 / *size as f64,
            elsewhere as f64 / 1e6,
        );
    }
    cleanup(&redis_url, &prefix).await;
}
