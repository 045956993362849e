//! The floor of the queue pair's path (`crate::bare_chain`): a bare relay and a bare gRPC server
//! that runs one script in the queue's Redis, started here as children with one Tokio worker
//! each (as `cargo xtask up` runs the services), driven as the kinds are (and again paced at the
//! holds' rate, when the run knows it), and charged per request with that Redis. What
//! check-queue and issue-token cost above it is the work of ours on their path: identity, JSON,
//! limiter, metrics, the queue's logic and its scripts' commands. The same hops carrying the
//! queue's own store (a poll, an issue to a new user) split that work: what the store does in
//! Redis and in Rust, and what the services around it add.

use std::{sync::Arc, time::Instant};

use serde_json::{Value, json};

use super::{Args, Kind, Load, Measured, describe, drive};
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

/// The floors of a cost run, as its report keeps them (`results.floor`,
/// `floor_at_holds_rate`, `floor_with_store`), or why each was not measured.
pub(super) struct Floors {
    pub(super) flat_out: Value,
    pub(super) at_holds_rate: Value,
    /// By queue-pair kind measured.
    pub(super) with_store: Value,
}

impl Floors {
    fn skipped(why: &str) -> Self {
        let skipped = || json!({ "skipped": why });
        Self {
            flat_out: skipped(),
            at_holds_rate: skipped(),
            with_store: skipped(),
        }
    }
}

/// The floors `args` asks for against the Redis at `args.floor_redis_url`, on one pair of bare
/// processes: flat out, as the kinds ran; then, with `--statement-rate`, the same bare hops as
/// the holds ran (their users, paced at their rate: fewer requests share each wake-up, so each
/// costs more); then carrying the queue's own store, flat out, for each queue-pair kind
/// measured. `probe`'s `redis` process is charged with them.
pub(super) async fn measure(args: &Args, probe: &cpu::Probe) -> anyhow::Result<Floors> {
    if args.no_floors {
        return Ok(Floors::skipped("--no-floors"));
    }
    let Some(redis_url) = &args.floor_redis_url else {
        return Ok(Floors::skipped("no --floor-redis-url"));
    };
    let flat_out = Load {
        connections: args.connections,
        rate: args.rate,
    };
    let chain = Chain::start(redis_url, probe).await?;
    let floor = chain.measure(Work::OneCommand, flat_out, args).await?;
    let at_holds_rate = match args.statement_rate.filter(|rate| *rate >= 1.0) {
        Some(rate) => {
            let load = Load {
                connections: args.statement_clients,
                rate: Some(rate),
            };
            chain.measure(Work::OneCommand, load, args).await?
        }
        None => json!({"skipped": "no --statement-rate"}),
    };
    let mut with_store = serde_json::Map::new();
    for kind in &args.kinds {
        let work = match kind {
            Kind::CheckQueue => Work::Poll,
            Kind::IssueToken => Work::Issue,
            _ => continue,
        };
        with_store.insert(
            kind.name().to_owned(),
            chain.measure(work, flat_out, args).await?,
        );
    }
    chain.stop(redis_url).await?;
    Ok(Floors {
        flat_out: floor,
        at_holds_rate,
        with_store: Value::Object(with_store),
    })
}

/// A bare relay and a bare gRPC server, the store's room under a prefix of their own.
struct Chain {
    relay: children::Server,
    grpc: children::Server,
    key_prefix: String,
    client: Client,
    probe: cpu::Probe,
}

impl Chain {
    async fn start(redis_url: &str, probe: &cpu::Probe) -> anyhow::Result<Self> {
        // No queue service admits from this prefix, so the polled token stays waiting.
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
        Ok(Self {
            client: Client::new(&format!("http://{}", relay.addr)),
            relay,
            grpc,
            key_prefix,
            probe: cpu::Probe::new(processes),
        })
    }

    /// `work` driven as `load`: a warm-up, then a measured window.
    async fn measure(&self, work: Work, load: Load, args: &Args) -> anyhow::Result<Value> {
        let endpoint = endpoint(work);
        let call = {
            let client = self.client.clone();
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
        let window = self.probe.start().await;
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
        Ok(serde_json::to_value(&result)?)
    }

    /// Stops both and deletes the keys the store's work left.
    async fn stop(self, redis_url: &str) -> anyhow::Result<()> {
        drop((self.relay, self.grpc));
        let forgotten = bare_chain::forget(redis_url, &self.key_prefix).await?;
        eprintln!(
            "cost: floor: deleted the store's {forgotten} keys under {}",
            self.key_prefix
        );
        Ok(())
    }
}
