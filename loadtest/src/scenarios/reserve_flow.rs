//! `reserve-flow`: the original scenarios 1-2 with real tokens. Users arrive at `rate` per
//! second (the original's 7/s, then 14/s), wait in the queue until admitted, browse, hold a
//! seat, top up their wallet and pay. Style `dates-seats` is the original scenario 1
//! (available-dates → available-seats → reserve); `options-counts` is scenario 2
//! (options with free-seat counts → reserve, moving on to the next seat when one is taken).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    arrivals::open_model,
    client::Client,
    flow::{Admission, Polling, Visitor},
    recorder::Recorder,
    report::Run,
    scenarios::first_user,
    stats,
};

#[derive(clap::ValueEnum, Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Original scenario 1: available-dates → available-seats → reserve.
    DatesSeats,
    /// Original scenario 2: available-concert-options (with counts) → reserve.
    OptionsCounts,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// New users per second.
    #[arg(long, default_value_t = 7.0)]
    pub rate: f64,
    /// Seconds users keep arriving.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seconds after the last arrival for journeys under way to finish.
    #[arg(long, default_value_t = 30)]
    pub linger: u64,
    #[arg(long, value_enum, default_value_t = Style::DatesSeats)]
    pub style: Style,
    /// The concert whose options are on sale.
    #[arg(long, default_value_t = 1)]
    pub concert: u64,
    /// Seats per option (for `options-counts`, which picks seat numbers without a seat map).
    #[arg(long, default_value_t = 50)]
    pub seats: u64,
    /// Holds a user tries before giving up when seats are taken under them.
    #[arg(long, default_value_t = 5)]
    pub attempts: u32,
    /// Shortest pause between queue polls, ms.
    #[arg(long, default_value_t = 1000)]
    pub poll_min_ms: u64,
    /// Longest pause between queue polls, ms.
    #[arg(long, default_value_t = 3000)]
    pub poll_max_ms: u64,
    #[arg(long)]
    pub first_user: Option<u64>,
}

/// How one user's journey ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Paid,
    StillWaiting,
    NoSeat,
    Failed,
}

#[derive(Default)]
struct Tally {
    paid: u64,
    still_waiting: u64,
    no_seat: u64,
    failed: u64,
    seat_taken: u64,
    journey: Option<hdrhistogram::Histogram<u64>>,
}

pub async fn run(client: &Client, args: Args) -> anyhow::Result<Run> {
    let users = (args.rate * args.seconds as f64).round() as u64;
    let first = first_user(args.first_user);
    client.prepare_users(first, users)?;
    let recorder = Arc::new(Recorder::new());
    let until = Instant::now() + Duration::from_secs(args.seconds + args.linger);
    let tally = Arc::new(Mutex::new(Tally {
        journey: Some(stats::histogram()),
        ..Tally::default()
    }));
    eprintln!(
        "reserve-flow: {users} users at {}/s ({:?}), concert {}",
        args.rate, args.style, args.concert
    );
    let arrivals = open_model(args.rate, users, until, &recorder, |index| {
        let visitor = Visitor::new(client, &recorder, first + index);
        let (tally, args) = (tally.clone(), args.clone());
        async move {
            let started = std::time::Instant::now();
            let mut taken = 0;
            let ending = journey(&visitor, &args, until, &mut taken).await;
            if let Ok(mut tally) = tally.lock() {
                tally.seat_taken += taken;
                match ending {
                    Ending::Paid => {
                        tally.paid += 1;
                        if let Some(histogram) = tally.journey.as_mut() {
                            let _ = histogram.record(started.elapsed().as_micros() as u64);
                        }
                    }
                    Ending::StillWaiting => tally.still_waiting += 1,
                    Ending::NoSeat => tally.no_seat += 1,
                    Ending::Failed => tally.failed += 1,
                }
            }
        }
    })
    .await;
    let summary = recorder.summary();
    let tally = tally
        .lock()
        .map_err(|_| anyhow::anyhow!("tally poisoned"))?;
    let journey = tally
        .journey
        .as_ref()
        .map(stats::Latency::from)
        .map(|l| json!(l))
        .unwrap_or(Value::Null);
    let bookings_per_second = tally.paid as f64 / summary.seconds.max(f64::EPSILON);
    eprintln!(
        "reserve-flow: {} paid, {} no seat, {} failed, {} still waiting; {:.0} req/s, p95 {:.1} ms, p99 {:.1} ms, {} errors",
        tally.paid,
        tally.no_seat,
        tally.failed,
        tally.still_waiting + arrivals.cut_off,
        summary.requests_per_second,
        summary.latency.p95_ms,
        summary.latency.p99_ms,
        summary.errors
    );
    Ok(Run {
        scenario: "reserve-flow",
        parameters: json!({
            "rate": args.rate, "seconds": args.seconds, "style": args.style,
            "concert": args.concert, "first_user": first,
        }),
        results: json!({
            "arrivals": arrivals,
            "paid": tally.paid,
            "no_seat": tally.no_seat,
            "failed_journeys": tally.failed,
            "still_waiting_at_end": tally.still_waiting + arrivals.cut_off,
            "seat_taken_retries": tally.seat_taken,
            "bookings_per_second": bookings_per_second,
            "journey_ms": journey,
        }),
        series: recorder.series(),
        summary,
        breakdown: None,
    })
}

async fn journey(visitor: &Visitor, args: &Args, until: Instant, taken: &mut u64) -> Ending {
    let polling = Polling {
        min: Duration::from_millis(args.poll_min_ms),
        max: Duration::from_millis(args.poll_max_ms),
    };
    let token = match visitor.wait_for_admission(polling, until).await {
        Admission::Active(token) => token,
        Admission::StillWaiting => return Ending::StillWaiting,
        Admission::Failed => return Ending::Failed,
    };
    let mut reservation = None;
    for attempt in 0..args.attempts {
        let Some((option, seat)) = choose_seat(visitor, args, attempt).await else {
            return Ending::NoSeat;
        };
        match visitor.reserve(&token, option, seat).await {
            Ok(Some(held)) => {
                reservation = Some(held);
                break;
            }
            Ok(None) => *taken += 1,
            Err(()) => return Ending::Failed,
        }
    }
    let Some(held) = reservation else {
        return Ending::NoSeat;
    };
    let (Some(id), Some(price)) = (held["reservationId"].as_u64(), held["price"].as_u64()) else {
        return Ending::Failed;
    };
    if visitor.charge(price).await.is_none() {
        return Ending::Failed;
    }
    match visitor.pay(&token, id).await {
        Some(_) => Ending::Paid,
        None => Ending::Failed,
    }
}

/// A seat to try, the way the style's original scenario found one.
async fn choose_seat(visitor: &Visitor, args: &Args, attempt: u32) -> Option<(u64, u64)> {
    match args.style {
        Style::DatesSeats => {
            let options = visitor.available_dates(args.concert).await?;
            let option = *fastrand::choice(&options)?;
            let seats = visitor.available_seats(option).await?;
            Some((option, *fastrand::choice(&seats)?))
        }
        Style::OptionsCounts => {
            let options = visitor.options_with_counts(args.concert).await?;
            let open: Vec<u64> = options
                .iter()
                .filter(|(_, free)| *free > 0)
                .map(|(id, _)| *id)
                .collect();
            let option = *fastrand::choice(&open)?;
            // Like the original, move on to the next seat number after a taken one.
            let start = fastrand::u64(0..args.seats.max(1));
            Some((option, (start + u64::from(attempt)) % args.seats.max(1) + 1))
        }
    }
}
