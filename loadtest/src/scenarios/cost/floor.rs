//! The floor of the queue pair's path (`crate::bare_chain`): a bare relay and a bare gRPC server
//! that runs one script in the queue's Redis, started here as children with one Tokio worker
//! each (as `cargo xtask up` runs the services), driven as the kinds are (and again paced at the
//! holds' rate, when the run knows it), and charged per request with that Redis. What
//! check-queue and issue-token cost above it is the work of ours on their path: identity, JSON,
//! limiter, metrics, the queue's logic and its scripts' commands. The same hops carrying the
//! queue's own store (a poll, an issue to a new user) split that work: what the store does in
//! Redis and in Rust, and what the services around it add.

use std::{sync::Arc, time::Instant};

use serde_json::Value;

use super::{Args, Load, Measured, describe, drive};
use crate::{
    bare_chain::{self, Work},
    children::{self, Workers},
    client::Client,
    cpu::{self, Process, Selector},
    recorder::Recorder,
};

/// What a work's requests are recorded under.
fn endpoint(work: Work) -> &'static str {
    match work {
        Work::OneCommand => "GET / (bare relay → bare gRPC → one Redis script)",
        Work::Poll => "GET /poll (bare relay → bare gRPC → the queue store's poll)",
        Work::Issue => "GET /issue (bare relay → bare gRPC → the queue store's issue)",
    }
}

/// Measures the bare hops against the Redis at `redis_url`, doing each work driven as its load
/// in turn, on one pair of bare processes; `probe`'s `redis` process is charged with them. One
/// result a load.
pub(super) async fn measure(
    redis_url: &str,
    loads: &[(Work, Load)],
    args: &Args,
    probe: &cpu::Probe,
) -> anyhow::Result<Vec<Value>> {
    // The store's room under a prefix of this run's own: no queue service admits from it.
    let key_prefix = format!("loadtest-floor-{}", std::process::id());
    let grpc = children::spawn(
        &[
            "bare-grpc",
            "--redis-url",
            redis_url,
            "--key-prefix",
            &key_prefix,
        ],
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
    let mut results = Vec::new();
    for &(work, load) in loads {
        let endpoint = endpoint(work);
        let call = {
            let client = client.clone();
            move |_connection: usize| {
                let client = client.clone();
                async move { client.get(work.path()).await }
            }
        };
        eprintln!(
            "cost: floor ({endpoint}) — {} connections{}, {} s warm-up, {} s measured",
            load.connections,
            load.rate
                .map_or(String::new(), |rate| format!(" at {rate:.0} req/s")),
            args.warmup_seconds,
            args.seconds
        );
        let warmup = Arc::new(Recorder::new());
        drive(load, args.warmup_seconds, &warmup, endpoint, call.clone()).await?;
        let recorder = Arc::new(Recorder::new());
        let window = floor_probe.start().await;
        let started = Instant::now();
        let requests = drive(load, args.seconds, &recorder, endpoint, call).await?;
        let seconds = started.elapsed().as_secs_f64();
        let result = Measured::of_window(
            endpoint,
            requests,
            seconds,
            &recorder,
            window.finish(requests).await,
        );
        eprintln!("cost: floor: {}", describe(&result));
        results.push(serde_json::to_value(&result)?);
    }
    drop((relay, grpc));
    let forgotten = bare_chain::forget(redis_url, &key_prefix).await?;
    eprintln!("cost: floor: deleted the store's {forgotten} keys under {key_prefix}");
    Ok(results)
}
