//! `holds`: many users hold seats as fast as the system answers (a closed loop per user: this
//! measures capacity, not latency under a target rate), or at a fixed total rate (`--rate`). Each seat is attempted by `contenders`
//! users; afterwards the run checks, from its own successes and through the API, that no seat
//! was held twice and that availability agrees.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde::Serialize;

use serde_json::json;

use crate::{client::Client, cpu, pacing::Pace, recorder::Recorder, report::Run, stats};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Concurrent users, each with its own id and admitted token.
    #[arg(long, default_value_t = 64)]
    pub users: u64,
    /// First user id (keeps runs from meeting earlier users' tokens).
    #[arg(long, default_value_t = 1_000_000)]
    pub first_user: u64,
    /// How long to hold seats, in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Users attempting each seat (1 = every attempt should win).
    #[arg(long, default_value_t = 1)]
    pub contenders: u64,
    /// First option id of the seat space.
    #[arg(long, default_value_t = 1)]
    pub first_option: u64,
    /// Options in the seat space.
    #[arg(long, default_value_t = 100)]
    pub options: u64,
    /// Seats per option.
    #[arg(long, default_value_t = 1000)]
    pub seats: u64,
    /// Attempt at most this many holds per second in all, spread over the users (see
    /// `cost --rate`: settings compared under the same load); without it each user sends its
    /// next attempt as soon as the last is answered.
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub users: u64,
    pub contenders: u64,
    pub seconds: f64,
    pub attempts: u64,
    pub holds: u64,
    pub seat_taken: u64,
    pub errors: BTreeMap<String, u64>,
    pub holds_per_second: f64,
    pub attempts_per_second: f64,
    pub latency: stats::Latency,
    pub double_bookings: u64,
    pub availability_consistent: bool,
    /// The services' CPU in the holding window (with `--cpu-pid`).
    pub cpu: Option<cpu::Usage>,
    /// Under callgrind: the same processes as long with nothing sent (`cpu::Probe::idle`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<cpu::Usage>,
}

pub async fn run(client: &Client, args: Args, probe: &cpu::Probe) -> anyhow::Result<Run> {
    client.prepare_users(args.first_user, args.users)?;
    let tokens = admitted_tokens(client, &args).await?;
    eprintln!(
        "holds: {} users admitted; holding for {} s",
        tokens.len(),
        args.seconds
    );
    let idle = probe.idle(args.seconds as f64).await;
    let recorder = Arc::new(Recorder::new());
    let next = Arc::new(AtomicU64::new(0));
    let window = probe.start().await;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let start = tokio::time::Instant::now();
    let users = tokens.len() as u64;
    let workers = tokens
        .into_iter()
        .enumerate()
        .map(|(index, (user, token))| {
            let client = client.as_user(user);
            let next = next.clone();
            let args = args.clone();
            let recorder = recorder.clone();
            let pace = Pace::new(args.rate, users, index as u64, start);
            tokio::spawn(async move {
                let _alive = recorder.user();
                worker(client, &recorder, args, (user, token), next, pace, deadline).await
            })
        });
    let mut outcome = Outcome::default();
    for worker in futures::future::join_all(workers).await {
        outcome.merge(worker?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Attempts, errors and latency are the recorder's: one count of every call.
    let summary = recorder.summary();
    let reserve = summary.endpoints.get(RESERVE);
    let attempts = reserve.map_or(0, |e| e.requests);
    let cpu = window.finish(attempts).await;

    let unique: HashSet<(u64, u64)> = outcome.won.iter().copied().collect();
    let double_bookings = (outcome.won.len() - unique.len()) as u64;
    let availability_consistent = availability_agrees(client, &args, &outcome.won).await?;
    let report = Report {
        users: args.users,
        contenders: args.contenders,
        seconds: elapsed,
        attempts,
        holds: outcome.won.len() as u64,
        seat_taken: outcome.taken,
        errors: reserve.map(|e| e.errors.clone()).unwrap_or_default(),
        holds_per_second: outcome.won.len() as f64 / elapsed,
        attempts_per_second: attempts as f64 / elapsed,
        latency: reserve.map_or_else(|| summary.latency, |e| e.latency),
        double_bookings,
        availability_consistent,
        cpu,
        idle,
    };
    eprintln!(
        "holds: {:.0} holds/s ({:.0} attempts/s), p50 {:.1} ms, p99 {:.1} ms, {} double bookings, errors {:?}",
        report.holds_per_second,
        report.attempts_per_second,
        report.latency.p50_ms,
        report.latency.p99_ms,
        report.double_bookings,
        report.errors
    );
    if let Some(cpu) = &report.cpu {
        eprintln!(
            "holds: services' CPU {:.0} µs per attempt ({})",
            cpu.total_us_per_request,
            cpu.by_process
                .iter()
                .map(|(name, usage)| format!("{name} {:.0}", usage.us_per_request))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Run {
        scenario: "holds",
        parameters: json!({
            "users": args.users, "seconds": args.seconds, "contenders": args.contenders,
            "rate": args.rate,
            "options": args.options, "seats": args.seats,
        }),
        results: serde_json::to_value(&report)?,
        summary,
        series: recorder.series(),
        breakdown: None,
    })
}

/// Issues a token per user and polls until all are ACTIVE (bounded).
async fn admitted_tokens(client: &Client, args: &Args) -> anyhow::Result<Vec<(u64, String)>> {
    let mut tokens = Vec::new();
    for user in args.first_user..args.first_user + args.users {
        let reply = client
            .as_user(user)
            .post("/queue/issue-token", format!(r#"{{"userId": {user}}}"#))
            .await?;
        let token = reply.json["token"]
            .as_str()
            .context("issue-token gave no token")?
            .to_owned();
        tokens.push((user, token));
    }
    let limit = Instant::now() + Duration::from_secs(120);
    let mut waiting: Vec<&(u64, String)> = tokens.iter().collect();
    while !waiting.is_empty() {
        if Instant::now() > limit {
            bail!(
                "{} users still waiting after 120 s: raise the admission rate",
                waiting.len()
            );
        }
        let mut still = Vec::new();
        for entry in waiting {
            let (user, token) = entry;
            let reply = client
                .as_user(*user)
                .get(&format!("/queue/check-queue?token={token}"))
                .await?;
            if reply.json["status"] != "ACTIVE" {
                still.push(entry);
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(tokens)
}

#[derive(Default)]
struct Outcome {
    taken: u64,
    won: Vec<(u64, u64)>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.taken += other.taken;
        self.won.extend(other.won);
    }
}

const RESERVE: &str = "POST /api/reserve";

async fn worker(
    client: Client,
    recorder: &Recorder,
    args: Args,
    (user, token): (u64, String),
    next: Arc<AtomicU64>,
    mut pace: Pace,
    deadline: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    let space = args.options * args.seats;
    while Instant::now() < deadline {
        pace.turn().await;
        if Instant::now() >= deadline {
            break;
        }
        let slot = next.fetch_add(1, Ordering::Relaxed) / args.contenders.max(1);
        if slot >= space {
            break;
        }
        let (option, seat) = (args.first_option + slot / args.seats, slot % args.seats + 1);
        let body = format!(
            r#"{{"token": "{token}", "concertOptionId": {option}, "seatId": {seat}, "userId": {user}}}"#
        );
        let started = Instant::now();
        let reply = client.post("/api/reserve", body).await;
        recorder.record(RESERVE, started.elapsed(), &reply, |reply| {
            reply.status == 303 || reply.code() == Some("SEAT_TAKEN")
        });
        match reply {
            Ok(reply) if reply.status == 303 => outcome.won.push((option, seat)),
            Ok(reply) if reply.code() == Some("SEAT_TAKEN") => outcome.taken += 1,
            // Counted by the recorder, by status and code.
            _ => {}
        }
    }
    outcome
}

/// For every option touched, the API's free seats must equal its seats minus this run's holds
/// (the seat space must be fresh: seeded and not held by anyone else).
async fn availability_agrees(
    client: &Client,
    args: &Args,
    won: &[(u64, u64)],
) -> anyhow::Result<bool> {
    let mut held: HashMap<u64, u64> = HashMap::new();
    for (option, _) in won {
        *held.entry(*option).or_default() += 1;
    }
    for (option, count) in held {
        let reply = client
            .get(&format!("/api/concert/{option}/available-seats"))
            .await?;
        let free = reply.json.as_array().map_or(0, Vec::len) as u64;
        if free + count != args.seats {
            eprintln!(
                "holds: option {option}: {free} free + {count} held != {} seats",
                args.seats
            );
            return Ok(false);
        }
    }
    Ok(true)
}
