//! Load generator for the ticketing system. Each scenario is a subcommand; every run prints a
//! human summary on stderr and one JSON object on stdout, and with `--out` writes a report
//! folder (summary.json, series.csv, charts.html).

mod arrivals;
mod attacks;
mod auth;
mod bare_chain;
mod bare_server;
mod charts;
mod children;
mod client;
mod cpu;
mod faults;
mod flow;
mod instructions;
mod ledger;
mod pacing;
mod programs;
mod recorder;
mod recovery;
mod report;
mod scenarios;
mod series;
mod span_sink;
mod spans;
mod stats;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use crate::scenarios::{
    capacity, contention, cost, faults as faults_scenario, holds, issue_tokens, limits, presale,
    queue_spike, reserve_flow,
};

#[derive(Parser)]
#[command(name = "loadtest", about = "Load scenarios against a running gateway")]
struct Cli {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "GATEWAY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    gateway: String,
    /// Write the run's report folder here.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Receive the services' spans over OTLP/gRPC on this address and report where the time
    /// went (point the services' OTEL_EXPORTER_OTLP_ENDPOINT here).
    #[arg(long, global = true)]
    collect_spans: Option<SocketAddr>,
    /// Answer the services' span exports on this address without reading them (for runs that
    /// measure what tracing costs the services: no collector decoding on the same cores).
    #[arg(long, global = true, conflicts_with = "collect_spans")]
    discard_spans: Option<SocketAddr>,
    /// For a gateway with GATEWAY_AUTH=jwt: the development key's directory (what
    /// `cargo xtask up --auth jwt` writes, target/dev-identity). Every virtual user then sends
    /// `Authorization: Bearer` with a token minted for its own user id before the run starts.
    /// Without it requests carry no Authorization header (GATEWAY_AUTH=trusted).
    #[arg(long, global = true, value_name = "DIR")]
    auth_key_dir: Option<PathBuf>,
    /// A process whose CPU time (utime + stime) the measured windows of `holds`,
    /// `issue-tokens` and `cost` are charged to, per request: `name=pid`, or
    /// `name=comm:COMMAND` for every process of that command name (`postgresql=comm:postgres`,
    /// one process per connection); repeat for each.
    #[arg(
        long = "cpu-pid",
        global = true,
        value_name = "NAME=PID|NAME=comm:COMMAND"
    )]
    cpu_pids: Vec<cpu::Process>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Users arrive at a rate, take a token each and poll until admitted (original 1-1).
    QueueSpike(queue_spike::Args),
    /// Users arrive, wait until admitted, browse, hold, pay (original 1-2, scenarios 1 and 2).
    ReserveFlow(reserve_flow::Args),
    /// Many users fight for a few seats; checks no seat was sold twice.
    Contention(contention::Args),
    /// Ramps the queue's hot pair until p99 breaks a bound; then overload and recovery.
    Capacity(capacity::Args),
    /// This machine's limits: bare handler (this generator and wrk), redis-benchmark, pgbench -N.
    Limits(limits::Args),
    /// Seat holds as fast as the system takes them; verifies no seat was held twice.
    Holds(holds::Args),
    /// Users arrive at a rate and take one queue token each (issue-token alone).
    IssueTokens(issue_tokens::Args),
    /// CPU per request of each request kind, in a closed loop (and the hold's statement by
    /// pgbench), per `--cpu-pid` process.
    Cost(cost::Args),
    /// A scheduled opening: fans join the pre-queue, the draw at the opening, admission in its
    /// order until sold out; checks the order, the late joiners and SOLD_OUT (exit 1 if broken).
    Presale(presale::Args),
    /// The reservation flow while faults are injected in turn (Redis and PostgreSQL stalled,
    /// PostgreSQL restarted, a reservation replica killed, the queue restarted) into the
    /// processes named; per fault the failed requests and the recovery, then checks that no
    /// confirmed payment is lost, no seat sold twice and every wallet exact (exit 1 if not).
    Faults(faults_scenario::Args),
    /// A bare axum handler (what `limits` measures); prints the address it bound.
    BareServer(bare_server::Args),
    /// The floor of the queue pair's path, first hop: `GET /` relayed as one gRPC call to
    /// `bare-grpc` (what `cost --floor-redis-url` measures); prints the address it bound.
    BareRelay(bare_chain::RelayArgs),
    /// Its second hop: a grpc.health.v1 Check that runs one script in Redis; prints the
    /// address it bound.
    BareGrpc(bare_chain::GrpcArgs),
    /// The attacks of docs/security.md against the running system; exits 1 if any got through
    /// (with --auth-key-dir, the jwt-mode attacks too).
    Attacks(attacks::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut client = client::Client::new(&cli.gateway);
    if let Some(dir) = &cli.auth_key_dir {
        client = client.with_identity(auth::Identity::load(dir)?)?;
        eprintln!(
            "auth: bearer tokens from the key in {} (gateway must run GATEWAY_AUTH=jwt)",
            dir.display()
        );
    }
    let probe = cpu::Probe::new(cli.cpu_pids.clone());
    let collector = match cli.collect_spans {
        Some(addr) => {
            let collector = spans::Collector::default();
            let bound = collector.start(addr).await?;
            eprintln!("collecting spans on {bound}");
            Some(collector)
        }
        None => None,
    };
    let sink = match cli.discard_spans {
        Some(addr) => {
            let sink = span_sink::SpanSink::default();
            let bound = sink.start(addr).await?;
            eprintln!("discarding span exports on {bound}");
            Some(sink)
        }
        None => None,
    };
    let mut run = match cli.scenario {
        Scenario::QueueSpike(args) => queue_spike::run(&client, args).await?,
        Scenario::ReserveFlow(args) => reserve_flow::run(&client, args).await?,
        Scenario::Contention(args) => contention::run(&client, args).await?,
        Scenario::Capacity(args) => capacity::run(&client, args).await?,
        Scenario::Limits(args) => limits::run(args).await?,
        Scenario::Holds(args) => holds::run(&client, args, &probe).await?,
        Scenario::IssueTokens(args) => issue_tokens::run(&client, args, &probe).await?,
        Scenario::Cost(args) => cost::run(&client, args, &probe).await?,
        Scenario::Presale(args) => presale::run(&client, args).await?,
        Scenario::Faults(args) => faults_scenario::run(&client, args).await?,
        Scenario::BareServer(args) => return bare_server::serve(args).await,
        Scenario::BareRelay(args) => return bare_chain::relay(args).await,
        Scenario::BareGrpc(args) => return bare_chain::grpc(args).await,
        Scenario::Attacks(args) => {
            let jwt = cli.auth_key_dir.is_some();
            return if attacks::run(&client, &cli.gateway, jwt, args).await? {
                Ok(())
            } else {
                std::process::exit(1)
            };
        }
    };
    if client.tokens_minted_late() > 0 {
        eprintln!(
            "auth: {} tokens were minted during the run (not prepared before it)",
            client.tokens_minted_late()
        );
    }
    if let Some(collector) = collector {
        // Exporters batch on a timer: wait for them to go quiet.
        collector
            .settle(Duration::from_secs(2), Duration::from_secs(30))
            .await;
        let breakdown = spans::breakdown(&collector.spans());
        spans::print(&breakdown);
        run.breakdown = Some(breakdown);
    }
    if let Some(sink) = &sink {
        eprintln!("span exports received and discarded: {}", sink.exports());
    }
    if let Some(folder) = &cli.out {
        run.write(folder)?;
        eprintln!("report written to {}", folder.display());
    }
    println!("{}", serde_json::to_string(&run)?);
    if let Some(broken) = run.broken_check() {
        anyhow::bail!("{}: {broken}", run.scenario);
    }
    Ok(())
}
