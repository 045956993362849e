//! `capacity`: how much of the queue's hot pair (issue-token + check-queue, one new user each)
//! the system takes. Arrival rate ramps in steps until a step's p99 breaks the bound or errors
//! pass the ratio twice in a row at one rate (a step that fails once is run again); the last
//! rate that held is the knee. Then an overload test: a baseline at
//! half the knee, `overload` seconds at twice the knee, and back to half — reporting how long
//! p99 took to return to the baseline once the overload stopped, and during the overload the
//! served requests' p99 apart from the shed (503 `OVERLOADED`) answers' p99.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hdrhistogram::Histogram;

use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::{
    arrivals::{Arrivals, open_model},
    client::{CallResult, Client},
    flow::Visitor,
    recorder::Recorder,
    recovery,
    report::Run,
    scenarios::first_user,
    series::Second,
    stats::{self, Latency},
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// First step's new users per second (each makes two requests).
    #[arg(long, default_value_t = 500.0)]
    pub start_rate: f64,
    /// Added to the rate at every step.
    #[arg(long, default_value_t = 500.0)]
    pub step_rate: f64,
    /// Seconds per step.
    #[arg(long, default_value_t = 5)]
    pub step_seconds: u64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 20_000.0)]
    pub max_rate: f64,
    /// A step holds while its p99 stays within this bound (ms)…
    #[arg(long, default_value_t = 50.0)]
    pub p99_bound_ms: f64,
    /// …and its errors within this share of requests.
    #[arg(long, default_value_t = 0.01)]
    pub error_bound: f64,
    /// Seconds at twice the knee (0 skips the overload test).
    #[arg(long, default_value_t = 60)]
    pub overload_seconds: u64,
    /// Seconds at half the knee after the overload.
    #[arg(long, default_value_t = 30)]
    pub recovery_seconds: u64,
    #[arg(long)]
    pub first_user: Option<u64>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Step {
    pub users_per_second: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub error_ratio: f64,
    pub held: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct Overload {
    pub baseline_users_per_second: f64,
    pub overload_users_per_second: f64,
    pub baseline_p99_ms: f64,
    /// p99 at or under this counts as back to baseline.
    pub threshold_p99_ms: f64,
    pub worst_p99_ms: f64,
    pub errors_during_overload: u64,
    /// Seconds from the overload's end until the errors stopped, and until p99 was back
    /// within the threshold, as `crate::recovery` defines them (None: not within the window).
    pub errors_stopped_after_seconds: Option<u64>,
    pub p99_back_after_seconds: Option<u64>,
    /// The later of the two: recovered.
    pub recovered_after_seconds: Option<u64>,
    /// The worst second after that (sweeping abandoned waiters can still cost a little).
    pub worst_p99_after_recovery_ms: Option<f64>,
    /// Answers completed during the overload: served (200) and shed (503 `OVERLOADED`).
    pub served_during_overload: u64,
    pub shed_during_overload: u64,
    /// p99 of the served requests alone during the overload (None: none served).
    pub served_p99_during_overload_ms: Option<f64>,
    /// p99 of the shed answers alone during the overload: what a refusal costs the client.
    pub shed_p99_during_overload_ms: Option<f64>,
}

/// Latencies of the answers completed within `[from, to)`, served and shed apart (the
/// recorder's per-second p99 mixes the quick 503s in with the served requests).
struct SplitLatency {
    from: Instant,
    to: Instant,
    /// (served, shed)
    histograms: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl SplitLatency {
    fn new(from: Instant, to: Instant) -> Self {
        Self {
            from,
            to,
            histograms: Mutex::new((stats::histogram(), stats::histogram())),
        }
    }

    fn note(&self, latency: Duration, result: &CallResult) {
        let now = Instant::now();
        if now < self.from || now >= self.to {
            return;
        }
        let Ok(reply) = result else { return };
        let Ok(mut histograms) = self.histograms.lock() else {
            return;
        };
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        let histogram = match (reply.status, reply.code()) {
            (200, _) => &mut histograms.0,
            (503, Some("OVERLOADED")) => &mut histograms.1,
            _ => return,
        };
        let _ = histogram.record(micros);
    }

    /// (served, shed, served p99, shed p99)
    fn summary(&self) -> (u64, u64, Option<f64>, Option<f64>) {
        let Ok(histograms) = self.histograms.lock() else {
            return (0, 0, None, None);
        };
        let p99 = |h: &Histogram<u64>| (!h.is_empty()).then(|| Latency::from(h).p99_ms);
        (
            histograms.0.len(),
            histograms.1.len(),
            p99(&histograms.0),
            p99(&histograms.1),
        )
    }
}

const BASELINE_SECONDS: u64 = 10;

pub async fn run(client: &Client, args: Args) -> anyhow::Result<Run> {
    let first = first_user(args.first_user);
    let mut next_user = first;
    let mut steps = Vec::new();
    let mut series: Vec<Second> = Vec::new();
    let mut rate = args.start_rate;
    // The run's summary is the knee step's (or the first step's, when none held).
    let mut summary_at_knee = None;
    let mut retried = false;
    while rate <= args.max_rate {
        let recorder = Arc::new(Recorder::new());
        let users = (rate * args.step_seconds as f64).round() as u64;
        client.prepare_users(next_user, users)?;
        // Stragglers may finish after the step: their answers still count (up to the deadline).
        let until = Instant::now() + Duration::from_secs(args.step_seconds + 12);
        hot_pair_users(client, &recorder, rate, users, next_user, until).await;
        next_user += users;
        let summary = recorder.summary();
        let error_ratio = summary.errors as f64 / summary.requests.max(1) as f64;
        let held = summary.latency.p99_ms <= args.p99_bound_ms && error_ratio <= args.error_bound;
        let step = Step {
            users_per_second: rate,
            requests_per_second: summary.requests as f64 / args.step_seconds as f64,
            p50_ms: summary.latency.p50_ms,
            p95_ms: summary.latency.p95_ms,
            p99_ms: summary.latency.p99_ms,
            error_ratio,
            held,
        };
        eprintln!(
            "capacity: {:>6.0} users/s → {:>6.0} req/s, p50 {:.1} ms, p99 {:.1} ms, errors {:.2}%{}",
            step.users_per_second,
            step.requests_per_second,
            step.p50_ms,
            step.p99_ms,
            error_ratio * 100.0,
            if held { "" } else { "  ← over the bound" }
        );
        let offset = series.len() as u64;
        series.extend(recorder.series().into_iter().map(|mut second| {
            second.t += offset;
            second
        }));
        if held || summary_at_knee.is_none() {
            summary_at_knee = Some(summary);
        }
        steps.push(step);
        if held {
            rate += args.step_rate;
            retried = false;
        } else if retried {
            break;
        } else {
            // One bad step on this shared box can be a neighbour's burst, not the system's
            // limit: the rate is tried once more, and the ramp ends only if it fails again.
            retried = true;
        }
    }
    let knee = steps.iter().rev().find(|s| s.held).cloned();
    let half_load = knee.as_ref().and_then(|knee| {
        steps
            .iter()
            .filter(|s| s.held)
            .min_by(|a, b| {
                let distance = |s: &Step| (s.users_per_second - knee.users_per_second / 2.0).abs();
                distance(a).total_cmp(&distance(b))
            })
            .cloned()
    });
    let overload = match (&knee, args.overload_seconds) {
        (Some(knee), seconds) if seconds > 0 => {
            let (overload, overload_series) =
                overload(client, &args, knee.users_per_second, next_user).await?;
            let offset = series.len() as u64;
            series.extend(overload_series.into_iter().map(|mut second| {
                second.t += offset;
                second
            }));
            Some(overload)
        }
        _ => None,
    };
    if let Some(knee) = &knee {
        eprintln!(
            "capacity: knee at {:.0} users/s = {:.0} req/s (p99 {:.1} ms)",
            knee.users_per_second, knee.requests_per_second, knee.p99_ms
        );
    }
    let after = |seconds: Option<u64>| {
        seconds.map_or("never (within the window)".to_owned(), |s| {
            format!("{s} s after")
        })
    };
    if let Some(o) = &overload {
        eprintln!(
            "capacity: {} s at {:.0} users/s: worst p99 {:.1} ms, {} errors; served {} (p99 {}), shed {} (p99 {}); errors stopped {}, p99 back under {:.1} ms {}",
            args.overload_seconds,
            o.overload_users_per_second,
            o.worst_p99_ms,
            o.errors_during_overload,
            o.served_during_overload,
            o.served_p99_during_overload_ms
                .map_or("-".into(), |p| format!("{p:.1} ms")),
            o.shed_during_overload,
            o.shed_p99_during_overload_ms
                .map_or("-".into(), |p| format!("{p:.1} ms")),
            after(o.errors_stopped_after_seconds),
            o.threshold_p99_ms,
            after(o.p99_back_after_seconds),
        );
    }
    Ok(Run {
        scenario: "capacity",
        parameters: json!({
            "start_rate": args.start_rate, "step_rate": args.step_rate,
            "step_seconds": args.step_seconds, "p99_bound_ms": args.p99_bound_ms,
            "error_bound": args.error_bound, "overload_seconds": args.overload_seconds,
        }),
        results: json!({
            "steps": steps,
            "knee": knee,
            "half_knee": half_load,
            "overload": overload,
        }),
        series,
        summary: summary_at_knee.unwrap_or_else(|| Recorder::new().summary()),
        breakdown: None,
    })
}

/// `users` new users at `rate` per second, each making the hot pair once (ids from `first`).
async fn hot_pair_users(
    client: &Client,
    recorder: &Arc<Recorder>,
    rate: f64,
    users: u64,
    first: u64,
    until: Instant,
) -> Arrivals {
    open_model(rate, users, until, recorder, |index| {
        let visitor = Visitor::new(client, recorder, first + index);
        async move {
            visitor.issue_and_check().await;
        }
    })
    .await
}

/// Baseline at half the knee, then twice the knee, then half again, as one timeline.
async fn overload(
    client: &Client,
    args: &Args,
    knee: f64,
    first: u64,
) -> anyhow::Result<(Overload, Vec<Second>)> {
    let (low, high) = (knee / 2.0, knee * 2.0);
    let phases = [
        (0, BASELINE_SECONDS, low),
        (BASELINE_SECONDS, args.overload_seconds, high),
        (
            BASELINE_SECONDS + args.overload_seconds,
            args.recovery_seconds,
            low,
        ),
    ];
    // Every phase's users get their tokens before the timeline starts.
    let everyone: u64 = phases
        .iter()
        .map(|(_, seconds, rate)| (rate * *seconds as f64).round() as u64)
        .sum();
    client.prepare_users(first, everyone)?;
    let recorder = Arc::new(Recorder::new());
    let started = Instant::now();
    let split = Arc::new(SplitLatency::new(
        started + Duration::from_secs(BASELINE_SECONDS),
        started + Duration::from_secs(BASELINE_SECONDS + args.overload_seconds),
    ));
    let mut first_of_phase = first;
    let runs = phases.map(|(start, seconds, rate)| {
        let users = (rate * seconds as f64).round() as u64;
        let first = first_of_phase;
        first_of_phase += users;
        let recorder = recorder.clone();
        let client = client.clone();
        let split = split.clone();
        async move {
            tokio::time::sleep_until(started + Duration::from_secs(start)).await;
            let until = Instant::now() + Duration::from_secs(seconds + 12);
            open_model(rate, users, until, &recorder, |index| {
                let (client, recorder, split) = (client.clone(), recorder.clone(), split.clone());
                async move { hot_pair_split(&client, &recorder, &split, first + index).await }
            })
            .await
        }
    });
    futures::future::join_all(runs).await;
    let series = recorder.series();
    let overload_end = BASELINE_SECONDS + args.overload_seconds;
    let window_end = overload_end + args.recovery_seconds;
    let mut baseline: Vec<f64> = series
        .iter()
        .filter(|s| s.t >= 1 && s.t < BASELINE_SECONDS)
        .map(|s| s.p99_ms)
        .collect();
    baseline.sort_by(f64::total_cmp);
    let baseline_p99 = baseline.get(baseline.len() / 2).copied().unwrap_or(0.0);
    let threshold = recovery::threshold(baseline_p99);
    let after: Vec<&Second> = series
        .iter()
        .filter(|s| s.t >= overload_end && s.t < window_end)
        .collect();
    let recovery = recovery::measure(&after, overload_end, threshold);
    let worst_after_recovery = recovery.recovered_after_seconds.map(|seconds| {
        after
            .iter()
            .filter(|s| s.t >= overload_end + seconds)
            .map(|s| s.p99_ms)
            .fold(0.0, f64::max)
    });
    let during: Vec<&Second> = series
        .iter()
        .filter(|s| s.t >= BASELINE_SECONDS && s.t < overload_end)
        .collect();
    let (served, shed, served_p99, shed_p99) = split.summary();
    Ok((
        Overload {
            baseline_users_per_second: low,
            overload_users_per_second: high,
            baseline_p99_ms: baseline_p99,
            threshold_p99_ms: threshold,
            worst_p99_ms: series.iter().map(|s| s.p99_ms).fold(0.0, f64::max),
            errors_during_overload: during.iter().map(|s| s.error_count()).sum(),
            errors_stopped_after_seconds: recovery.errors_stopped_after_seconds,
            p99_back_after_seconds: recovery.p99_back_after_seconds,
            recovered_after_seconds: recovery.recovered_after_seconds,
            worst_p99_after_recovery_ms: worst_after_recovery,
            served_during_overload: served,
            shed_during_overload: shed,
            served_p99_during_overload_ms: served_p99,
            shed_p99_during_overload_ms: shed_p99,
        },
        series,
    ))
}

/// The hot pair of [`Visitor::issue_and_check`] (same endpoints, same recording), each answer's
/// latency also noted in `split`.
async fn hot_pair_split(
    client: &Client,
    recorder: &Arc<Recorder>,
    split: &Arc<SplitLatency>,
    user: u64,
) {
    let client = client.as_user(user);
    let timed = |endpoint: &'static str, started: std::time::Instant, result: &CallResult| {
        let latency = started.elapsed();
        recorder.record(endpoint, latency, result, |reply| reply.status == 200);
        split.note(latency, result);
    };
    let started = std::time::Instant::now();
    let issued = client
        .post("/queue/issue-token", format!(r#"{{"userId": {user}}}"#))
        .await;
    timed("POST /queue/issue-token", started, &issued);
    let Some(token) = issued
        .ok()
        .filter(|reply| reply.status == 200)
        .and_then(|reply| reply.json["token"].as_str().map(str::to_owned))
    else {
        return;
    };
    let started = std::time::Instant::now();
    let checked = client
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    timed("GET /queue/check-queue", started, &checked);
}
