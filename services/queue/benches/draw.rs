//! Benchmark: a scheduled opening with a million entrants in the pre-queue. The draw happens as
//! each entrant joins (a secret uniform score, `lua/issue.lua`), so the opening itself moves
//! nothing; this measures what that costs and what it saves:
//!
//! - joining the pre-queue (the real issue script) as it fills to N entrants, and Redis memory
//!   per entrant;
//! - at the opening: the first admission step (a full batch from the head of the drawn line)
//!   and position lookups anywhere in it;
//! - the alternative it avoids: drawing at the opening in one script (N random scores written
//!   at once), during which Redis answers nobody.
//!
//!   cargo bench -p queue --bench draw            (REDIS_URL, default 127.0.0.1:6379)
//!   QUEUE_DRAW_ENTRANTS=100000 cargo bench -p queue --bench draw
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark that cannot run should stop loudly

mod common;

use std::time::{Duration, Instant};

use common::{cleanup, ping_floor, status_latency, summary, used_memory};
use futures::{StreamExt, stream};
use hdrhistogram::Histogram;
use queue::{
    Clock, Policy, QueueStore,
    domain::{Room, Token, TokenStatus, UserId},
    schedule::SchedulePatch,
    settings::{Actor, SettingsPatch},
};

const FILL_CONCURRENCY: usize = 64;
const START_MS: i64 = 1_800_000_000_000;

#[tokio::main]
async fn main() {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let entrants: i64 = std::env::var("QUEUE_DRAW_ENTRANTS")
        .map(|raw| raw.parse().expect("QUEUE_DRAW_ENTRANTS: a count"))
        .unwrap_or(1_000_000);
    let prefix = format!("bench:{}", uuid::Uuid::new_v4().simple());
    let policy = Policy {
        admission_rate: 100_000.0,
        active_cap: 0,
        active_ttl: Duration::from_secs(600),
        waiting_grace: Duration::from_secs(24 * 3600),
        admitted_idle: Duration::ZERO,
    };
    let (clock, now) = Clock::manual(START_MS);
    let store = QueueStore::connect(
        &redis_url,
        FILL_CONCURRENCY,
        &prefix,
        policy,
        Duration::from_secs(30),
    )
    .expect("store")
    .with_clock(clock);
    let room = Room::Concert(1);
    let opens_at = START_MS + 3_600_000;
    let schedule = SettingsPatch::with_schedule(
        None,
        None,
        None,
        SchedulePatch {
            prequeue_opens_at_ms: Some(Some(START_MS)),
            opens_at_ms: Some(Some(opens_at)),
        },
    )
    .unwrap();
    store
        .update_settings(room, &schedule, &Actor::new("bench").unwrap())
        .await
        .expect("schedule");

    let floor = ping_floor(&redis_url).await;
    println!("redis PING round trip (floor): {}", summary(&floor));
    let memory_before = used_memory(&redis_url).await;

    // Join: every entrant through the real script, timed one by one.
    let started = Instant::now();
    let joined: Vec<(Token, u64)> = stream::iter(1..=entrants)
        .map(|user| {
            let store = store.clone();
            async move {
                let call = Instant::now();
                let entry = store
                    .issue(UserId::new(user).unwrap(), room)
                    .await
                    .expect("issue");
                assert!(matches!(entry.status, TokenStatus::Prequeue { .. }));
                (entry.token, call.elapsed().as_micros() as u64)
            }
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .collect()
        .await;
    let fill = started.elapsed();
    let mut join_latency = Histogram::<u64>::new(3).expect("histogram");
    for (_, micros) in &joined {
        join_latency.record(*micros).expect("record");
    }
    let bytes_per_entrant =
        (used_memory(&redis_url).await.saturating_sub(memory_before)) as f64 / entrants as f64;
    let tokens: Vec<Token> = joined.into_iter().map(|(token, _)| token).collect();

    // The opening: one step just before (the bucket starts empty), then the first real step a
    // second later takes a full batch from the head of the drawn line.
    now.store(opens_at - 1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(store.admit(room).await.expect("admit").admitted, 0);
    now.store(opens_at + 1_000, std::sync::atomic::Ordering::SeqCst);
    let step = Instant::now();
    let first = store.admit(room).await.expect("admit");
    let first_step = step.elapsed();

    let positions = status_latency(&store, &tokens).await;
    cleanup(&redis_url, &prefix).await;

    let one_shot = one_shot_draw(&redis_url, &prefix, entrants).await;
    cleanup(&redis_url, &prefix).await;

    let mut table = format!("| measure | {entrants} entrants |\n|---|---|\n");
    table += &format!(
        "| joining the pre-queue ({FILL_CONCURRENCY} at once) | {:.0} joins/s; p50 {} µs, p99 {} µs, p99.9 {} µs |\n",
        entrants as f64 / fill.as_secs_f64(),
        join_latency.value_at_quantile(0.50),
        join_latency.value_at_quantile(0.99),
        join_latency.value_at_quantile(0.999),
    );
    table += &format!("| Redis memory per entrant | {bytes_per_entrant:.0} bytes |\n");
    table += "| work at the opening instant | none: the order was drawn at each join |\n";
    table += &format!(
        "| first admission step after the opening ({} admitted) | {:.2} ms |\n",
        first.admitted,
        first_step.as_secs_f64() * 1000.0
    );
    table += &format!(
        "| a position anywhere in the drawn line (GetStatus) | p50 {} µs, p99 {} µs, p99.9 {} µs |\n",
        positions.value_at_quantile(0.50),
        positions.value_at_quantile(0.99),
        positions.value_at_quantile(0.999),
    );
    table += &format!(
        "| avoided: drawing at the opening in one script | Redis blocked {:.0} ms |\n",
        one_shot.as_secs_f64() * 1000.0
    );
    table += &format!(
        "| this machine's Redis PING round trip (floor) | {} |\n",
        summary(&floor)
    );
    print!("{table}");
    // docs/benchmarks.md carries the last run's table (`cargo xtask bench` includes this file).
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/benchmarks/prequeue-draw.md");
    let when = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    std::fs::write(
        &out,
        format!(
            "Measured by `cargo bench -p queue --bench draw` ({when}, {} cores, Redis on the same machine):\n\n{table}",
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
    )
    .expect("write docs/benchmarks/prequeue-draw.md");
    println!("wrote {}", out.display());
}

/// The draw done the other way: one script writing `entrants` random scores at the opening.
/// Redis runs one script at a time, so every other client waits this long.
async fn one_shot_draw(redis_url: &str, prefix: &str, entrants: i64) -> Duration {
    let client = redis::Client::open(redis_url).expect("url");
    // The script runs for seconds: no response deadline on this connection.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    let script = redis::Script::new(
        "for i = 1, tonumber(ARGV[1]) do redis.call('ZADD', KEYS[1], math.random(), i) end \
         return redis.call('ZCARD', KEYS[1])",
    );
    let started = Instant::now();
    let drawn: i64 = script
        .key(format!("{prefix}:one-shot"))
        .arg(entrants)
        .invoke_async(&mut connection)
        .await
        .expect("one-shot draw");
    assert_eq!(drawn, entrants);
    started.elapsed()
}
