//! Benchmark: GetStatus (position lookup + heartbeat) latency with 1k vs 1M waiters ahead.
//! Fills real rooms through the real issue script, then samples status calls one at a time.
//! The same run measures a bare Redis PING round trip as this machine's floor.
//!
//!   cargo bench -p queue --bench position            (REDIS_URL, default 127.0.0.1:6379)
//!   QUEUE_BENCH_SIZES=1000,100000 cargo bench -p queue --bench position
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

use std::time::{Duration, Instant};

use common::{cleanup, ping_floor, status_latency, summary};
use futures::{StreamExt, stream};
use queue::{
    Policy, QueueStore,
    domain::{Room, Token, UserId},
};

mod common;

const FILL_CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
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
    let store = QueueStore::connect(
        &redis_url,
        FILL_CONCURRENCY,
        &prefix,
        policy,
        Duration::from_secs(5),
    )
    .expect("store");

    let floor = ping_floor(&redis_url).await;
    println!("redis PING round trip (floor): {}", summary(&floor));
    println!("| waiters | status p50 | p99 | p99.9 | p99 / PING p99 | fill rate |");
    println!("|---|---|---|---|---|---|");
    for (index, size) in sizes.iter().enumerate() {
        let room = Room::Concert(index as i64 + 1);
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

        let histogram = status_latency(&store, &tokens).await;
        println!(
            "| {size} | {} µs | {} µs | {} µs | {:.2} | {:.0} issues/s |",
            histogram.value_at_quantile(0.50),
            histogram.value_at_quantile(0.99),
            histogram.value_at_quantile(0.999),
            histogram.value_at_quantile(0.99) as f64 / floor.value_at_quantile(0.99) as f64,
            fill_rate,
        );
    }
    cleanup(&redis_url, &prefix).await;
}
