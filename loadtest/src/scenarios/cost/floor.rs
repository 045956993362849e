//! The floor of the queue pair's path (`crate::bare_chain`): a bare relay and a bare gRPC server
//! that runs one script in the queue's Redis, started here as children with one Tokio worker
//! each (as `cargo xtask up` runs the services), driven as the kinds are (and again paced at the
//! holds' rate, when the run knows it), and charged per request with that Redis. What check-queue and issue-token cost above it is the work of ours on their
//! path: identity, JSON, limiter, metrics, the queue's logic and its scripts' commands.

use std::{sync::Arc, time::Instant};

use serde_json::Value;

use super::{Args, Load, Measured, describe, drive};
use crate::{
    children::{self, Workers},
    client::Client,
    cpu::{self, Process, Selector},
    recorder::Recorder,
};

/// What the floor's requests are recorded under.
pub const ENDPOINT: &str = "GET / (bare relay → bare gRPC → one Redis script)";

/// Measures the floor against the Redis at `redis_url` driven as each of `loads` in turn, on one
/// pair of bare processes; `probe`'s `redis` process is charged with them. One result a load.
pub(super) async fn measure(
    redis_url: &str,
    loads: &[Load],
    args: &Args,
    probe: &cpu::Probe,
) -> anyhow::Result<Vec<Value>> {
    let grpc = children::spawn(
        &["bare-grpc", "--redis-url", redis_url],
        Workers::AsTheServices,
    )
    .await?;
    let upstream = format!("http://{}", grpc.addr);
    let relay = children::spawn(
        &["bare-relay", "--upstream", &upstream],
        Workers::AsTheServices,
    )
    .await?;
    let mut processes = vec![
        Process {
            name: "bare-relay".into(),
            selector: Selector::Pid(relay.pid),
        },
        Process {
            name: "bare-grpc".into(),
            selector: Selector::Pid(grpc.pid),
        },
    ];
    processes.extend(
        probe
            .processes()
            .iter()
            .filter(|process| process.name == "redis")
            .cloned(),
    );
    let floor_probe = cpu::Probe::new(processes);
    let client = Client::new(&format!("http://{}", relay.addr));
    let call = move |_connection: usize| {
        let client = client.clone();
        async move { client.get("/").await }
    };
    let mut results = Vec::new();
    for &load in loads {
        eprintln!(
            "cost: floor ({ENDPOINT}) — {} connections{}, {} s warm-up, {} s measured",
            load.connections,
            load.rate
                .map_or(String::new(), |rate| format!(" at {rate:.0} req/s")),
            args.warmup_seconds,
            args.seconds
        );
        let warmup = Arc::new(Recorder::new());
        drive(load, args.warmup_seconds, &warmup, ENDPOINT, call.clone()).await?;
        let recorder = Arc::new(Recorder::new());
        let window = floor_probe.start();
        let started = Instant::now();
        let requests = drive(load, args.seconds, &recorder, ENDPOINT, call.clone()).await?;
        let seconds = started.elapsed().as_secs_f64();
        let result = Measured::of_window(
            ENDPOINT,
            requests,
            seconds,
            &recorder,
            window.finish(requests),
        );
        eprintln!("cost: floor: {}", describe(&result));
        results.push(serde_json::to_value(&result)?);
    }
    drop((relay, grpc));
    Ok(results)
}
