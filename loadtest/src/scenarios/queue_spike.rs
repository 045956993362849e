//! `queue-spike`: the original scenario 1-1 with real users. Users arrive at `rate` per second
//! up to `users`, each takes its own token and polls check-queue every 1–3 s until admitted
//! (or the run ends). The defaults are the original's first run: 1,000/s to 10,000.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::json;
use tokio::time::Instant;

use crate::{
    arrivals::open_model,
    client::Client,
    flow::{Admission, Polling, Visitor},
    recorder::Recorder,
    report::Run,
    scenarios::first_user,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// New users per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Users in all.
    #[arg(long, default_value_t = 10_000)]
    pub users: u64,
    /// Seconds the run goes on after the last arrival (waiters keep polling).
    #[arg(long, default_value_t = 30)]
    pub linger: u64,
    /// Shortest pause between polls, ms.
    #[arg(long, default_value_t = 1000)]
    pub poll_min_ms: u64,
    /// Longest pause between polls, ms.
    #[arg(long, default_value_t = 3000)]
    pub poll_max_ms: u64,
    /// First user id (default: a random base, so reruns meet no earlier tokens).
    #[arg(long)]
    pub first_user: Option<u64>,
}

pub async fn run(client: &Client, args: Args) -> anyhow::Result<Run> {
    let first = first_user(args.first_user);
    client.prepare_users(first, args.users)?;
    let recorder = Arc::new(Recorder::new());
    let arrival_seconds = args.users as f64 / args.rate.max(f64::MIN_POSITIVE);
    let until = Instant::now() + Duration::from_secs_f64(arrival_seconds + args.linger as f64);
    let polling = Polling {
        min: Duration::from_millis(args.poll_min_ms),
        max: Duration::from_millis(args.poll_max_ms),
    };
    let admitted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let waiting = Arc::new(AtomicU64::new(0));
    eprintln!(
        "queue-spike: {} users at {}/s, polling every {}–{} ms",
        args.users, args.rate, args.poll_min_ms, args.poll_max_ms
    );
    let arrivals = open_model(args.rate, args.users, until, &recorder, |index| {
        let visitor = Visitor::new(client, &recorder, first + index);
        let (admitted, failed, waiting) = (admitted.clone(), failed.clone(), waiting.clone());
        async move {
            let counter = match visitor.wait_for_admission(polling, until).await {
                Admission::Active(_) => &admitted,
                Admission::Failed => &failed,
                Admission::StillWaiting => &waiting,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await;
    let summary = recorder.summary();
    let admitted = admitted.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let waiting = waiting.load(Ordering::Relaxed) + arrivals.cut_off;
    eprintln!(
        "queue-spike: {} requests ({:.0}/s, peak {}/s), p95 {:.1} ms, p99 {:.1} ms, {} errors; {admitted} admitted, {failed} failed, {waiting} still waiting",
        summary.requests,
        summary.requests_per_second,
        summary.peak_requests_per_second,
        summary.latency.p95_ms,
        summary.latency.p99_ms,
        summary.errors,
    );
    Ok(Run {
        scenario: "queue-spike",
        parameters: json!({
            "rate": args.rate, "users": args.users, "linger_seconds": args.linger,
            "poll_ms": [args.poll_min_ms, args.poll_max_ms], "first_user": first,
        }),
        results: json!({
            "arrivals": arrivals, "admitted": admitted, "failed_journeys": failed,
            "still_waiting_at_end": waiting,
        }),
        series: recorder.series(),
        summary,
        breakdown: None,
    })
}
