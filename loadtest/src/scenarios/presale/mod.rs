//! `presale`: a scheduled opening, end to end. The run schedules the concert's own room through
//! the operator's API (pre-queue in a second, the sale `--prequeue-secs` from now), fans arrive
//! over the pre-queue window (the compressed minutes before an opening) and join, each polling
//! as `pollAfterSeconds` advises; a few hundred more join after the opening. Admitted fans book
//! one seat (free seats, hold a random one, another on SEAT_TAKEN, top up, pay); fans told
//! SOLD_OUT with `seatsMayReturn: false` stop.
//!
//! Checked, each failing the run: joining before the pre-queue opens is refused; pre-queue
//! joins answer PREQUEUE; no fan is admitted twice (the room's admissions are the fans who saw
//! ACTIVE); admission follows the draw (a fan's first position after the opening decides);
//! nobody who joined after the opening overtook the pre-queue; the concert sold out; every fan
//! not admitted was told SOLD_OUT with `seatsMayReturn: false`; the draw is not the arrival
//! order.
//!
//! Positions move as the front is admitted, so a position seen after admission began is not
//! the fan's place in the draw. By default the room is therefore paused over the opening
//! (`--hold-secs`): the draw is made at `opensAt`, every pre-queue fan sees its place while
//! nobody is admitted, and then the doors open. Those places are exact: the admitted must be
//! exactly the first of them. Positions seen later only prove order where they cannot be
//! explained otherwise (A at or before B in line earlier than B looked ⇒ A is ahead of B).

mod journey;
mod operator;
mod outcome;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use anyhow::bail;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    arrivals::{open_model, think_time},
    client::{CallResult, Client, Reply},
    flow::Visitor,
    recorder::Recorder,
    report::{self, Check, Run, check},
    scenarios::first_user,
};
use journey::{fan_journey, refused_before_prequeue};
use operator::{Operator, RoomState, final_room, rfc3339, sample_room, unix_ms};
use outcome::Outcome;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Fans who join in the pre-queue.
    #[arg(long, default_value_t = 20_000)]
    pub fans: u64,
    /// Seconds from now until the sale opens: the pre-queue opens in a second and the fans
    /// arrive over the rest.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(4..))]
    pub prequeue_secs: u64,
    /// Fans who join after the opening (they must wait behind the whole pre-queue).
    #[arg(long, default_value_t = 300)]
    pub late_fans: u64,
    /// Seconds over which the late fans arrive, from half a second after the opening.
    #[arg(long, default_value_t = 5)]
    pub late_secs: u64,
    /// The presale concert: its own waiting room, no seat held or sold yet (`cargo xtask up
    /// --presale` seeds concert 2).
    #[arg(long, default_value_t = 2)]
    pub concert: u64,
    /// The room's admissions per second once open.
    #[arg(long, default_value_t = 200.0)]
    pub admission_rate: f64,
    /// The room's most active fans at once.
    #[arg(long, default_value_t = 1000)]
    pub active_cap: u32,
    /// The operator's secret for the admin API (trusted gateway). With --auth-key-dir the run
    /// calls the admin API as an operator with its own token instead.
    #[arg(long, env = "GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Longest the doors stay shut after the opening while pre-queue fans see their place in
    /// the draw (they open as soon as every one has); 0: admission starts at the opening, and
    /// the draw order is checked only where later positions prove it.
    #[arg(long, default_value_t = 20)]
    pub hold_secs: u64,
    /// Seat holds an admitted fan tries before giving up.
    #[arg(long, default_value_t = 6)]
    pub attempts: u32,
    /// Shortest pause between a fan's polls, ms (`pollAfterSeconds` is followed when longer).
    #[arg(long, default_value_t = 1000)]
    pub poll_min_ms: u64,
    /// Seconds after the opening when fans still going are stopped.
    #[arg(long, default_value_t = 300)]
    pub max_secs: u64,
    #[arg(long)]
    pub first_user: Option<u64>,
}

const ISSUE: &str = "POST /queue/issue-token";
const CHECK: &str = "GET /queue/check-queue";
const DATES: &str = "GET /api/concert/{concertId}/available-dates";
const SEATS: &str = "GET /api/concert/{concertOptionId}/available-seats";
const RESERVE: &str = "POST /api/reserve";
const CHARGE: &str = "POST /api/users/{userId}/balance/charge";
const PAY: &str = "POST /api/payments";
const ROOMS: &str = "GET /admin/rooms";
const UPDATE_ROOM: &str = "PATCH /admin/rooms/{room}";
/// Deadline of the admin calls (the run's own, not measured load).
const ADMIN_DEADLINE: Duration = Duration::from_secs(10);

/// What a queue answer said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Prequeue,
    Waiting,
    SoldOut,
    Active,
    Other,
}

impl Status {
    fn of(reply: &Reply) -> Self {
        match reply.json["status"].as_str() {
            Some("PREQUEUE") => Self::Prequeue,
            Some("WAITING") => Self::Waiting,
            Some("SOLD_OUT") => Self::SoldOut,
            Some("ACTIVE") => Self::Active,
            _ => Self::Other,
        }
    }
}

/// A position seen: when the call was sent and answered.
#[derive(Clone, Copy, Debug)]
struct Seen {
    start: Instant,
    end: Instant,
    position: u64,
}

/// How a fan's journey ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Ending {
    /// Still going when the run stopped.
    #[default]
    Going,
    Paid(Instant),
    /// Admitted, but no seat could be held.
    NoSeat,
    /// Told SOLD_OUT with seatsMayReturn false.
    SoldOut,
    /// Its token stopped existing while it waited (401).
    Lost,
    /// An answer the journey cannot go on from.
    Failed,
}

/// What the run saw of one fan.
#[derive(Default)]
struct Fan {
    /// Arrives after the opening (else over the pre-queue window).
    late: bool,
    /// When the join that issue-token answered 200 was sent, and when it was answered.
    join_sent: Option<Instant>,
    joined_at: Option<Instant>,
    /// What the join answered (pre-queue fans must get PREQUEUE with opensAt).
    join_status: Option<Status>,
    join_opens_at: Option<String>,
    /// Fans whose join answered with a place (it came after the opening): that place.
    join_position: Option<Seen>,
    /// Fans who joined the pre-queue: the first position after the opening.
    drawn: Option<Seen>,
    /// When the latest call answered with a place in line (WAITING or SOLD_OUT) was sent.
    placed_last: Option<Instant>,
    admitted_at: Option<Instant>,
    /// ACTIVE answers after a non-ACTIVE one (more than 1 is an admission twice).
    admissions: u32,
    last_status: Option<Status>,
    last_seats_may_return: Option<bool>,
    /// Lost: from its last answered poll to the one told its token was gone (the queue drops
    /// a waiter silent for longer than its heartbeat grace).
    lost_after: Option<Duration>,
    ending: Ending,
}

impl Fan {
    fn note(&mut self, status: Status, reply: &Reply, start: Instant, end: Instant, ctx: &Ctx) {
        let position = reply.json["position"].as_u64();
        let joining = self.joined_at.is_none();
        if joining {
            self.join_sent = Some(start);
            self.joined_at = Some(end);
            self.join_status = Some(status);
            self.join_opens_at = reply.json["opensAt"].as_str().map(str::to_owned);
        }
        match status {
            Status::Waiting | Status::SoldOut => {
                self.placed_last = Some(start);
                if let Some(position) = position {
                    let seen = Seen {
                        start,
                        end,
                        position,
                    };
                    if joining {
                        self.join_position = Some(seen);
                    }
                    if self.in_prequeue() && self.drawn.is_none() && start >= ctx.opens_at {
                        self.drawn = Some(seen);
                    }
                }
            }
            Status::Active => {
                if self.last_status != Some(Status::Active) {
                    self.admissions += 1;
                }
                self.admitted_at.get_or_insert(end);
            }
            Status::Prequeue | Status::Other => {}
        }
        self.last_status = Some(status);
        self.last_seats_may_return = reply.json["seatsMayReturn"].as_bool();
    }

    /// Joined the pre-queue (the join answered PREQUEUE): in the draw. A fan of the pre-queue
    /// window whose join was held up past the opening joined behind it, like a late fan.
    fn in_prequeue(&self) -> bool {
        self.join_status == Some(Status::Prequeue)
    }

    /// Left the line on its own (an error), so not one the order can be judged by.
    fn left(&self) -> bool {
        matches!(self.ending, Ending::Failed | Ending::Lost)
    }
}

/// What every fan's journey shares.
struct Ctx {
    concert: u64,
    opens_at: Instant,
    until: Instant,
    poll_min: Duration,
    attempts: u32,
    fans: Vec<Mutex<Fan>>,
    /// Set when the run cannot go on (the doors could not be opened).
    stop: AtomicBool,
    seat_taken: AtomicU64,
}

impl Ctx {
    fn update(&self, index: usize, change: impl FnOnce(&mut Fan)) {
        if let Some(fan) = self.fans.get(index)
            && let Ok(mut fan) = fan.lock()
        {
            change(&mut fan);
        }
    }

    /// One call, recorded (`accepted` tells a success). Shed (503), rate-limited (429),
    /// timed-out (504) and unanswered calls are sent again, as a waiting page would: after 1 s,
    /// then twice as long each time up to 8 s, each pause spread ±50% so a shed crowd does
    /// not come back in step; until the run's end, `None` then. Only calls that are safe to
    /// repeat come here: reads, joins (a second join answers the same token) and POSTs with an
    /// Idempotency-Key. Answers when the call was sent and answered.
    async fn call<F, Fut>(
        &self,
        visitor: &Visitor,
        endpoint: &'static str,
        call: F,
        accepted: impl Fn(&Reply) -> bool,
    ) -> Option<(Instant, Instant, Reply)>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = CallResult>,
    {
        let mut backoff = Duration::from_secs(1);
        loop {
            if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.until {
                return None;
            }
            let start = Instant::now();
            let result = call().await;
            let end = Instant::now();
            visitor
                .recorder
                .record(endpoint, end - start, &result, &accepted);
            match result {
                Ok(reply) if !matches!(reply.status, 429 | 503 | 504) => {
                    return Some((start, end, reply));
                }
                _ => {
                    tokio::time::sleep(think_time(backoff / 2, backoff * 3 / 2)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The longest pause before sending a refused call again: well inside the queue's heartbeat
/// grace, so a fan shed a few times in a row keeps its place.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

pub async fn run(client: &Client, args: Args) -> anyhow::Result<Run> {
    let first = first_user(args.first_user);
    let fans = args.fans + args.late_fans;
    // One more: the user who tries to join before the pre-queue opens.
    client.prepare_users(first, fans + 1)?;
    let recorder = Arc::new(Recorder::new());
    let admin = match &args.admin_token {
        Some(token) => client.with_bearer(&format!("Bearer {token}")),
        None if client.has_identity() => client.clone(),
        None => bail!(
            "presale needs the operator's token: --admin-token or GATEWAY_ADMIN_TOKEN (what `cargo xtask up` prints), or --auth-key-dir"
        ),
    };
    let operator = Operator {
        client: admin,
        recorder: recorder.clone(),
        concert: args.concert,
    };
    let before = operator.room().await?;
    if before.seats.held + before.seats.sold > 0 || before.seats.total() == 0 {
        bail!(
            "concert {} has {} seats, {} held and {} sold: the presale run needs a fresh concert (restart the system, or seed another with catalog seed --presale-concerts)",
            args.concert,
            before.seats.total(),
            before.seats.held,
            before.seats.sold
        );
    }

    // Whole seconds on the wall clock (any RFC 3339 parser takes them), and the same instants
    // on this process's monotonic clock.
    let (wall_now, now) = (unix_ms(SystemTime::now()), Instant::now());
    let prequeue_ms = (wall_now / 1000 + 2) * 1000;
    let opens_ms = prequeue_ms + (args.prequeue_secs as i64 - 1) * 1000;
    let instant_of =
        |ms: i64| now + Duration::from_millis(ms.saturating_sub(wall_now).max(0) as u64);
    let (prequeue_at, opens_at) = (instant_of(prequeue_ms), instant_of(opens_ms));
    let hold = args.hold_secs > 0;
    operator
        .update(json!({
            "prequeueOpensAt": rfc3339(prequeue_ms),
            "opensAt": rfc3339(opens_ms),
            "admissionRate": args.admission_rate,
            "activeCap": args.active_cap,
            "paused": hold,
        }))
        .await?;
    eprintln!(
        "presale: concert {} ({} seats): pre-queue opens {}, the sale {}; {} fans before, {} after; {}/s up to {} active{}",
        args.concert,
        before.seats.total(),
        rfc3339(prequeue_ms),
        rfc3339(opens_ms),
        args.fans,
        args.late_fans,
        args.admission_rate,
        args.active_cap,
        if hold {
            format!(
                ", doors held up to {} s while the draw is seen",
                args.hold_secs
            )
        } else {
            String::new()
        }
    );

    let ctx = Arc::new(Ctx {
        concert: args.concert,
        opens_at,
        until: opens_at + Duration::from_secs(args.max_secs),
        poll_min: Duration::from_millis(args.poll_min_ms),
        attempts: args.attempts.max(1),
        fans: (0..fans)
            .map(|index| {
                Mutex::new(Fan {
                    late: index >= args.fans,
                    ..Fan::default()
                })
            })
            .collect(),
        stop: AtomicBool::new(false),
        seat_taken: AtomicU64::new(0),
    });

    let early = refused_before_prequeue(client, &recorder, &ctx, first + fans, prequeue_at).await;

    // Arrivals from just after the pre-queue opens until just before the sale does.
    let window = opens_at
        .saturating_duration_since(prequeue_at + Duration::from_millis(200))
        .saturating_sub(Duration::from_millis(500))
        .max(Duration::from_millis(100));
    let pre_rate = args.fans as f64 / window.as_secs_f64();
    let late_rate = args.late_fans as f64 / (args.late_secs.max(1) as f64);
    let journey = |offset: u64| {
        let ctx = ctx.clone();
        let recorder = recorder.clone();
        move |index: u64| {
            let visitor = Visitor::new(client, &recorder, first + offset + index);
            let ctx = ctx.clone();
            let index = (offset + index) as usize;
            async move {
                let ending = fan_journey(&ctx, index, &visitor).await;
                ctx.update(index, |fan| fan.ending = ending);
            }
        }
    };
    let done = AtomicBool::new(false);
    let arrivals = async {
        let (pre, late) = tokio::join!(
            async {
                tokio::time::sleep_until(prequeue_at + Duration::from_millis(200)).await;
                open_model(pre_rate, args.fans, ctx.until, &recorder, journey(0)).await
            },
            async {
                tokio::time::sleep_until(opens_at + Duration::from_millis(500)).await;
                let late_journey = journey(args.fans);
                open_model(
                    late_rate,
                    args.late_fans,
                    ctx.until,
                    &recorder,
                    late_journey,
                )
                .await
            },
        );
        done.store(true, Ordering::Relaxed);
        (pre, late)
    };
    let ((pre, late), doors, samples) = tokio::join!(
        arrivals,
        open_doors(&operator, &ctx, args.fans as usize, hold, args.hold_secs),
        sample_room(&operator, &done),
    );
    let released = doors?;
    let after = final_room(&operator).await?;
    let summary = recorder.summary();
    let fans_seen: Vec<Fan> = ctx
        .fans
        .iter()
        .map(|fan| {
            fan.lock()
                .map(|mut fan| std::mem::take(&mut *fan))
                .unwrap_or_default()
        })
        .collect();
    let opened = released.unwrap_or(opens_at);
    let outcome = Outcome::of(&fans_seen, released, ctx.seat_taken.load(Ordering::Relaxed));
    let checks = outcome.checks(&fans_seen, &before, &after, early, (opens_at, opens_ms));
    let since =
        |at: Option<Instant>| at.map(|at| at.saturating_duration_since(opened).as_secs_f64());
    let sold_out_room = samples
        .iter()
        .chain(std::iter::once(&after))
        .find(|room| room.seats.sold == before.seats.total() && room.seats.held == 0)
        .map(|room| room.at);
    let admitted_room = samples
        .iter()
        .chain(std::iter::once(&after))
        .find(|room| room.admitted_total == after.admitted_total)
        .map(|room| room.at);
    // Sold out by this run's fans when they paid for every seat.
    let sold_out_at = outcome
        .last_paid
        .filter(|_| outcome.paid >= before.seats.total());
    let check_queue = summary.endpoints.get(CHECK).map(|e| e.latency);
    let joins_per_second = outcome.joins_per_second;
    eprintln!(
        "presale: {} joined ({} of them in the pre-queue, {:.0}/s), opening {}{}; {} admitted, the room's last {} and the last fan told {} after the doors opened; {} paid, sold out {}; {} told sold out, {} still waiting, {} failed, {} lost their place",
        outcome.joined,
        outcome.joined_prequeue,
        joins_per_second,
        rfc3339(opens_ms),
        released.map_or(String::new(), |at| format!(
            ", doors opened {:.1} s later",
            at.saturating_duration_since(opens_at).as_secs_f64()
        )),
        outcome.admitted,
        since(admitted_room).map_or("—".into(), |s| format!("{s:.1} s")),
        since(outcome.last_admitted).map_or("—".into(), |s| format!("{s:.1} s")),
        outcome.paid,
        since(sold_out_at).map_or("no".into(), |s| format!("after {s:.1} s")),
        outcome.told_sold_out,
        outcome.still_waiting,
        outcome.failed,
        outcome.lost,
    );
    eprintln!(
        "presale: {} requests, {} errors; check-queue p50 {} ms, p99 {} ms",
        summary.requests,
        summary.errors,
        check_queue.map_or("—".into(), |l| format!("{:.1}", l.p50_ms)),
        check_queue.map_or("—".into(), |l| format!("{:.1}", l.p99_ms)),
    );
    let (checks, failed) = report::checks_report("presale", &checks);
    Ok(Run {
        scenario: "presale",
        parameters: json!({
            "fans": args.fans, "late_fans": args.late_fans, "prequeue_secs": args.prequeue_secs,
            "late_secs": args.late_secs, "concert": args.concert,
            "admission_rate": args.admission_rate, "active_cap": args.active_cap,
            "hold_secs": args.hold_secs, "attempts": args.attempts,
            "poll_min_ms": args.poll_min_ms, "first_user": first,
        }),
        results: json!({
            "arrivals": {"pre_queue": pre, "late": late},
            "seats": before.seats.total(),
            "joined": outcome.joined,
            "joined_prequeue": outcome.joined_prequeue,
            "join_failures": outcome.join_failures,
            "joins_per_second": joins_per_second,
            "opening": {
                "prequeue_opens_at": rfc3339(prequeue_ms),
                "opens_at": rfc3339(opens_ms),
                "doors_opened_after_seconds": released.map(|at| at.saturating_duration_since(opens_at).as_secs_f64()),
            },
            "admitted": outcome.admitted,
            "paid": outcome.paid,
            "no_seat": outcome.no_seat,
            "seat_taken_retries": outcome.seat_taken,
            "told_sold_out": outcome.told_sold_out,
            "still_waiting_at_end": outcome.still_waiting,
            "failed_journeys": outcome.failed,
            "lost_place": outcome.lost,
            "lost_place_after_silence_seconds": outcome.lost_after.map(|(low, high)| json!({
                "min": low.as_secs_f64(), "max": high.as_secs_f64(),
            })),
            "seconds_to_admit_all": since(outcome.last_admitted),
            "seconds_to_sell_out": since(sold_out_at),
            "room_seconds_to_admit_all": since(admitted_room),
            "room_seconds_to_sell_out": since(sold_out_room),
            "room_at_end": after,
            "check_queue_ms": check_queue.map(|l| json!({"p50": l.p50_ms, "p99": l.p99_ms})),
            "requests": summary.requests,
            "errors": summary.errors,
            "draw": {
                "exact_positions": outcome.exact_positions,
                "arrival_rank_correlation": outcome.arrival_correlation,
            },
            "checks": checks,
            "checks_failed": failed,
        }),
        series: recorder.series(),
        summary,
        breakdown: None,
    })
}

/// With the doors held: once the sale has opened, waits until every pre-queue fan has seen its
/// place in the draw (or left, or `hold_secs` passed), then unpauses the room. Answers when
/// the unpause was sent.
async fn open_doors(
    operator: &Operator,
    ctx: &Ctx,
    pre_fans: usize,
    hold: bool,
    hold_secs: u64,
) -> anyhow::Result<Option<Instant>> {
    if !hold {
        return Ok(None);
    }
    tokio::time::sleep_until(ctx.opens_at).await;
    let limit = ctx.opens_at + Duration::from_secs(hold_secs);
    while Instant::now() < limit && !all_placed(ctx, pre_fans) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = Instant::now();
    if let Err(error) = operator.update(json!({"paused": false})).await {
        ctx.stop.store(true, Ordering::Relaxed);
        return Err(error.context("opening the doors"));
    }
    Ok(Some(sent))
}

/// Every pre-queue fan has seen its place after the opening, or has ended.
fn all_placed(ctx: &Ctx, pre_fans: usize) -> bool {
    ctx.fans.iter().take(pre_fans).all(|fan| {
        fan.lock()
            .map(|fan| fan.ending != Ending::Going || fan.drawn.is_some())
            .unwrap_or(true)
    })
}
