//! What a span costs the thread that records it, and what the export thread spends on it: a
//! request's worth of spans (a server span continuing the caller, a client span under it whose
//! `traceparent` goes into the call's headers, each with the attributes the layers set), made
//! and ended many times, then the same for a request its caller did not sample. The spans are
//! written as OTLP requests and sent to a port where nothing listens (a receiver decoding them
//! would take the cores from what is measured). `cargo bench -p kit --bench spans`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use http::HeaderMap;
use kit::trace::{ExportConfig, Exporter, Kind, Span};

const REQUESTS: u32 = 200_000;

fn incoming(sampled: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let flags = if sampled { "01" } else { "00" };
    headers.insert(
        "traceparent",
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}")
            .parse()
            .unwrap(),
    );
    headers
}

/// One request's spans on this thread: the server span and a client span with its call's
/// headers, polled through their scopes.
async fn request(incoming: &HeaderMap) {
    let mut server = kit::trace::decide(Some(incoming)).root(Kind::Server, || {
        "ticketing.queue.v1.QueueService/GetStatus".to_owned()
    });
    server.set("rpc.grpc.status_code", 0);
    server
        .wrap(async {
            let mut outgoing = HeaderMap::new();
            let client = Span::child(Kind::Client, || "redis status.lua")
                .with_fixed(kit::trace::db::REDIS_SCRIPT);
            client.inject(&mut outgoing);
            client.wrap(std::future::ready(())).await;
            std::hint::black_box(outgoing);
        })
        .await;
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = ExportConfig::new("bench", "http://127.0.0.1:1");
    config.schedule_delay = Duration::from_millis(50);
    config.max_queue = 1 << 20;
    config.max_batch = 4096;
    let exporter = Exporter::start(config).unwrap();
    runtime.block_on(async {
        for (label, sampled) in [("sampled", true), ("unsampled", false)] {
            let headers = incoming(sampled);
            for _ in 0..10_000 {
                request(&headers).await;
            }
            exporter.flush();
            let cpu = cpu_seconds();
            let started = Instant::now();
            for _ in 0..REQUESTS {
                request(&headers).await;
            }
            let wall = started.elapsed();
            // Everything recorded is written out before the CPU is read.
            exporter.flush();
            let cpu = cpu_seconds() - cpu;
            println!(
                "{label}: {:.0} ns per request on the recording thread, {:.2} µs of process CPU per request with the export",
                wall.as_nanos() as f64 / f64::from(REQUESTS),
                cpu * 1e6 / f64::from(REQUESTS),
            );
        }
    });
}
