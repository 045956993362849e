//! `issue-tokens`: users arrive at a fixed rate and each takes one queue token — issue-token
//! alone, the first request of every visitor. At a rate well below capacity this measures what
//! one issue costs (latency, and with `--cpu-pid` the services' CPU per request) rather than
//! how much the system takes; `cargo xtask bench` runs it with GATEWAY_AUTH=trusted and =jwt.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use tokio::time::Instant;

use crate::{
    arrivals::open_model, client::Client, cpu, flow::Visitor, recorder::Recorder, report::Run,
    scenarios::first_user,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// New users per second (one issue-token each).
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Seconds users keep arriving.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    #[arg(long)]
    pub first_user: Option<u64>,
}

const ISSUE: &str = "POST /queue/issue-token";

pub async fn run(client: &Client, args: Args, probe: &cpu::Probe) -> anyhow::Result<Run> {
    let users = (args.rate * args.seconds as f64).round() as u64;
    let first = first_user(args.first_user);
    client.prepare_users(first, users)?;
    let recorder = Arc::new(Recorder::new());
    eprintln!("issue-tokens: {users} users at {}/s", args.rate);
    let until = Instant::now() + Duration::from_secs(args.seconds + 15);
    let window = probe.start().await;
    let arrivals = open_model(args.rate, users, until, &recorder, |index| {
        let visitor = Visitor::new(client, &recorder, first + index);
        async move {
            visitor.issue_token().await;
        }
    })
    .await;
    let summary = recorder.summary();
    let cpu = window.finish(summary.requests).await;
    let issue = summary.endpoints.get(ISSUE);
    let latency = issue.map_or(summary.latency, |e| e.latency);
    eprintln!(
        "issue-tokens: {} requests ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, {} errors{}",
        summary.requests,
        summary.requests_per_second,
        latency.p50_ms,
        latency.p99_ms,
        summary.errors,
        cpu.as_ref().map_or(String::new(), |cpu| format!(
            "; services' CPU {:.0} µs per request",
            cpu.total_us_per_request
        )),
    );
    Ok(Run {
        scenario: "issue-tokens",
        parameters: json!({"rate": args.rate, "seconds": args.seconds, "first_user": first}),
        results: json!({
            "arrivals": arrivals,
            "requests": summary.requests,
            "errors": summary.errors,
            "latency": latency,
            "cpu": cpu,
        }),
        series: recorder.series(),
        summary,
        breakdown: None,
    })
}
