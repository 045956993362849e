//! `reserve-flow`: the original scenarios 1-2 with real tokens. Users arrive at `rate` per
//! second (the original's 7/s, then 14/s), wait in the queue until admitted, browse, hold a
//! seat, top up their wallet and pay. Style `dates-seats` is the original scenario 1
//! (available-dates → available-seats → reserve); `options-counts` is scenario 2
//! (options with free-seat counts → reserve, moving on to the next seat when one is taken).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use tokio::time::Instant;

use crate::{
    arrivals::open_model,
    client::Client,
    flow::{Booking, Ending, Polling, Style, Tally, Visitor},
    recorder::Recorder,
    report::Run,
    scenarios::first_user,
};

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

pub async fn run(client: &Client, args: Args) -> anyhow::Result<Run> {
    let users = (args.rate * args.seconds as f64).round() as u64;
    let first = first_user(args.first_user);
    client.prepare_users(first, users)?;
    let recorder = Arc::new(Recorder::new());
    let until = Instant::now() + Duration::from_secs(args.seconds + args.linger);
    let tally = Arc::new(Mutex::new(Tally::default()));
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
                tally.note(ending, taken, started.elapsed());
            }
        }
    })
    .await;
    let summary = recorder.summary();
    let tally = tally
        .lock()
        .map_err(|_| anyhow::anyhow!("tally poisoned"))?;
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
        results: {
            let mut results = tally.results(&arrivals);
            results["bookings_per_second"] = json!(bookings_per_second);
            results
        },
        series: recorder.series(),
        summary,
        breakdown: None,
    })
}

impl Args {
    fn booking(&self) -> Booking {
        Booking {
            style: self.style,
            concert: self.concert,
            seats: self.seats,
            attempts: self.attempts,
            polling: Polling {
                min: Duration::from_millis(self.poll_min_ms),
                max: Duration::from_millis(self.poll_max_ms),
            },
        }
    }
}

async fn journey(visitor: &Visitor, args: &Args, until: Instant, taken: &mut u64) -> Ending {
    let hold = match visitor.hold_a_seat(&args.booking(), until, taken).await {
        Ok(hold) => hold,
        Err(ending) => return ending,
    };
    if visitor.charge(hold.price).await.is_none() {
        return Ending::Failed;
    }
    match visitor.pay(&hold.token, hold.reservation).await {
        Some(_) => Ending::Paid,
        None => Ending::Failed,
    }
}
