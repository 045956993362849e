//! What the queue's benchmarks share: this machine's Redis round-trip floor, GetStatus latency
//! across a line, a latency summary, and removing a run's keys.
#![allow(dead_code)]

use std::time::Instant;

use hdrhistogram::Histogram;
use queue::{QueueStore, domain::Token};

/// Samples per measured latency.
pub const SAMPLES: usize = 20_000;

/// A bare PING's round trip, `SAMPLES` times: the floor every other latency is read against.
pub async fn ping_floor(redis_url: &str) -> Histogram<u64> {
    let client = redis::Client::open(redis_url).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
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

pub fn summary(histogram: &Histogram<u64>) -> String {
    format!(
        "p50 {} µs, p99 {} µs, p99.9 {} µs",
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999)
    )
}

/// Unlinks every key under `prefix`.
pub async fn cleanup(redis_url: &str, prefix: &str) {
    let client = redis::Client::open(redis_url).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
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
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .expect("unlink");
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
