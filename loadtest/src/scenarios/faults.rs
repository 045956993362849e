//! `faults`: the reservation flow at a steady arrival rate while faults are injected in turn,
//! with calm stretches between them — Redis stalled, PostgreSQL stalled, PostgreSQL restarted,
//! a reservation replica killed, the queue service restarted (`crate::faults::schedule`), each
//! into the process it is given on the command line (`crate::faults::driver`). Users arrive,
//! are admitted, browse, hold a seat, top up and pay as careful clients: top-ups and payments
//! carry an Idempotency-Key, and a call that failed in a way that may pass is sent again.
//!
//! For each fault: the requests that failed in flight at its start, sent while it lasted and
//! sent after it (by code, and which of them a client may retry), the seconds from its end
//! until the system was back (`crate::recovery`), and the baseline p99 that is judged against
//! (`crate::faults::figures`). Afterwards the checks of `crate::ledger`, through the API and
//! reservation's database; a broken check, or a fault that could not be injected, fails the
//! run (exit 1).

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use tokio::time::Instant;

use crate::{
    arrivals::open_model_until,
    client::Client,
    faults::{
        driver::{self, ReplicaArg, Targets},
        figures::{self, Figures, Window},
        process::Process,
        schedule::{self, Fault, Step, Timing},
    },
    flow::{Booking, Ending, Polling, Style, Tally, Visitor},
    ledger::{self, Call, Ledger, Seen},
    recorder::Recorder,
    report::{self, Run, check},
    scenarios::first_user,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// New users per second, steady through the run.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// The faults, in the order injected.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Fault::ALL)]
    pub faults: Vec<Fault>,
    /// How long a stall keeps its target stopped.
    #[arg(long, default_value_t = 5)]
    pub stall_seconds: u64,
    /// Load before the first calm stretch (journeys filling up), judged by nothing.
    #[arg(long, default_value_t = 10)]
    pub warmup_seconds: u64,
    /// Calm before the first fault, between one fault's end and the next one's start, and
    /// after the last: each fault's recovery window.
    #[arg(long, default_value_t = 20)]
    pub calm_seconds: u64,
    /// The last seconds of the calm before a fault whose median p99 is its baseline.
    #[arg(long, default_value_t = 10)]
    pub baseline_seconds: u64,
    /// Seconds after the last calm stretch for journeys under way to finish.
    #[arg(long, default_value_t = 30)]
    pub linger: u64,
    /// The concert whose options are on sale (dates → seats → reserve, as reserve-flow).
    #[arg(long, default_value_t = 1)]
    pub concert: u64,
    #[arg(long)]
    pub first_user: Option<u64>,
    /// The private Redis's redis-server (redis-stall).
    #[arg(long, value_name = "PID")]
    pub redis_pid: Option<u32>,
    /// The private PostgreSQL cluster's data directory (postgres-stall, postgres-restart):
    /// its postmaster is the pid in postmaster.pid, and the cluster's processes its children.
    #[arg(long, value_name = "DIR")]
    pub postgres_data_dir: Option<PathBuf>,
    /// The reservation replica to kill (reservation-kill): its pid, and the gRPC address
    /// where its supervisor's new process is awaited.
    #[arg(long, value_name = "PID@ADDR")]
    pub reservation: Option<ReplicaArg>,
    /// A queue replica (queue-restart; repeat for each): pid and gRPC address. They are
    /// stopped with SIGTERM in turn, each once the one before is served again by a new process.
    #[arg(long = "queue", value_name = "PID@ADDR")]
    pub queue: Vec<ReplicaArg>,
    /// Reservation's own database, for the checks.
    #[arg(long, env = "LOADTEST_RESERVATION_DATABASE_URL")]
    pub reservation_database_url: String,
}

impl Args {
    fn timing(&self) -> Timing {
        Timing {
            warmup: Duration::from_secs(self.warmup_seconds),
            calm: Duration::from_secs(self.calm_seconds),
            baseline: Duration::from_secs(self.baseline_seconds.min(self.calm_seconds)),
            stall: Duration::from_secs(self.stall_seconds),
        }
    }

    /// The targets, each process taken as it is now.
    fn targets(&self) -> anyhow::Result<Targets> {
        let targets = Targets {
            redis: self.redis_pid.map(Process::named).transpose()?,
            postgres: self.postgres_data_dir.clone(),
            reservation: self.reservation.map(|r| r.replica()).transpose()?,
            queue: self
                .queue
                .iter()
                .map(ReplicaArg::replica)
                .collect::<anyhow::Result<_>>()?,
        };
        targets.check(&self.faults)?;
        Ok(targets)
    }
}

pub async fn run(client: &Client, args: Args) -> anyhow::Result<Run> {
    let targets = args.targets()?;
    let timing = args.timing();
    let linger = Duration::from_secs(args.linger);
    let planned = schedule::planned(&args.faults, &timing) + linger;
    // Room for faults that take twice what was planned; arrivals stop with the schedule.
    let users = (args.rate * planned.as_secs_f64() * 2.0).ceil() as u64;
    let first = first_user(args.first_user);
    client.prepare_users(first, users)?;
    let recorder = Arc::new(Recorder::keeping_requests());
    let ledger = Arc::new(Ledger::default());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let booking = Booking {
        style: Style::DatesSeats,
        concert: args.concert,
        seats: 0,
        attempts: 5,
        polling: Polling {
            min: Duration::from_secs(1),
            max: Duration::from_secs(3),
        },
    };
    // Journeys end by themselves or at the cut-off after the schedule, never at this.
    let until = Instant::now() + planned * 4;
    let names: Vec<&str> = args.faults.iter().map(|f| f.name()).collect();
    eprintln!(
        "faults: {}/s users through the reservation flow; {} with {} s of calm around each",
        args.rate,
        names.join(", "),
        args.calm_seconds
    );
    let (done, schedule_over) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = schedule_over.await;
        Instant::now() + linger
    };
    let arrivals = open_model_until(args.rate, users, stop, &recorder, |index| {
        let visitor = Visitor::new(client, &recorder, first + index).careful();
        let (ledger, tally) = (ledger.clone(), tally.clone());
        async move {
            let started = std::time::Instant::now();
            let mut taken = 0;
            let ending = journey(&visitor, &booking, until, &ledger, &mut taken).await;
            if let Ok(mut tally) = tally.lock() {
                tally.note(ending, taken, started.elapsed());
            }
        }
    });
    let schedule = async {
        let followed = follow(
            &schedule::steps(&args.faults, &timing),
            &targets,
            &timing,
            &recorder,
        )
        .await;
        let _ = done.send(());
        followed
    };
    let (arrivals, (windows, schedule_end)) = tokio::join!(arrivals, schedule);

    let summary = recorder.summary();
    let series = recorder.series();
    let figures = figures::figures(
        &windows,
        &recorder.requests(),
        &series,
        schedule_end,
        timing.baseline,
    );
    for f in &figures {
        print_figures(f);
    }
    let (asked, settled) = ledger.settle(client).await;
    let seen = Seen::of(&ledger.entries());
    let stored = ledger::stored(&seen, client, &args.reservation_database_url).await?;
    let (payments, lost) = ledger::confirmed_payments_exist(&seen, &stored);
    let (seats, sold_twice) = ledger::no_seat_twice(&seen, &stored);
    let injected = windows.iter().filter(|w| w.error.is_none()).count();
    let checks = [
        (
            "faults_injected",
            check(
                injected == args.faults.len(),
                format!(
                    "{injected} of {} faults injected and ended as planned{}",
                    args.faults.len(),
                    windows
                        .iter()
                        .filter_map(|w| Some(format!(
                            "; {}: {}",
                            w.fault.name(),
                            w.error.as_ref()?
                        )))
                        .collect::<String>()
                ),
            ),
        ),
        ("confirmed_payments_exist", payments),
        ("no_seat_twice", seats),
        ("wallets_exact", ledger::wallets_exact(&seen, &stored)),
    ];
    let (checks, failed) = report::checks_report("faults", &checks);
    let tally = tally
        .lock()
        .map_err(|_| anyhow::anyhow!("tally poisoned"))?;
    eprintln!(
        "faults: {} paid, {} no seat, {} failed, {} still waiting; {:.0} req/s, {} errors; {asked} calls without an answer asked again after the run ({settled} confirmed then)",
        tally.paid,
        tally.no_seat,
        tally.failed,
        tally.still_waiting + arrivals.cut_off,
        summary.requests_per_second,
        summary.errors,
    );
    Ok(Run {
        scenario: "faults",
        parameters: json!({
            "rate": args.rate, "faults": names, "stall_seconds": args.stall_seconds,
            "warmup_seconds": args.warmup_seconds, "calm_seconds": args.calm_seconds,
            "baseline_seconds": timing.baseline.as_secs(), "linger": args.linger,
            "concert": args.concert, "first_user": first,
        }),
        results: {
            let mut results = tally.results(&arrivals);
            for (name, value) in [
                ("faults", json!(figures)),
                ("schedule_seconds", json!(schedule_end.as_secs_f64())),
                (
                    "asked_again_after_the_run",
                    json!({"calls": asked, "confirmed": settled}),
                ),
                ("payments_confirmed", json!(seen.payments.len())),
                ("confirmed_payments_lost", json!(lost)),
                ("seats_sold_twice", json!(sold_twice)),
                ("checks", checks),
                ("checks_failed", json!(failed)),
            ] {
                results[name] = value;
            }
            results
        },
        series,
        summary,
        breakdown: None,
    })
}

/// A careful visitor's booking: admitted, a seat held, topped up and paid, the top-up and
/// the payment each noted in the ledger before it is sent and confirmed when answered.
async fn journey(
    visitor: &Visitor,
    booking: &Booking,
    until: Instant,
    ledger: &Ledger,
    taken: &mut u64,
) -> Ending {
    let hold = match visitor.hold_a_seat(booking, until, taken).await {
        Ok(hold) => hold,
        Err(ending) => return ending,
    };
    let user = visitor.user_id;
    let key = format!("faults-{user}-charge-{}", hold.reservation);
    let sent = ledger.sent(user, key.clone(), Call::Charge { amount: hold.price });
    let Some(balance) = visitor.charge_once(hold.price, &key).await else {
        return Ending::Failed;
    };
    ledger.confirmed(sent, balance);
    let key = format!("faults-{user}-pay-{}", hold.reservation);
    let sent = ledger.sent(
        user,
        key.clone(),
        Call::Pay {
            reservation: hold.reservation,
            option: hold.option,
            seat: hold.seat,
            price: hold.price,
            token: hold.token.clone(),
        },
    );
    match visitor.pay_once(&hold.token, hold.reservation, &key).await {
        Some(payment) => {
            ledger.confirmed(sent, payment);
            Ending::Paid
        }
        None => Ending::Failed,
    }
}

/// Follows the schedule: calm stretches and faults, each fault's window in the recorder's
/// clock. Answers the windows and when the schedule ended.
async fn follow(
    steps: &[Step],
    targets: &Targets,
    timing: &Timing,
    recorder: &Recorder,
) -> (Vec<Window>, Duration) {
    let mut windows = Vec::new();
    for step in steps {
        match *step {
            Step::Calm(seconds) => tokio::time::sleep(seconds).await,
            Step::Inject(fault) => {
                let started = recorder.elapsed();
                eprintln!(
                    "faults: {:>5.1} s  {} …",
                    started.as_secs_f64(),
                    fault.name()
                );
                let outcome = driver::inject(fault, targets, timing.stall).await;
                let ended = recorder.elapsed();
                let (what, error) = match outcome {
                    Ok(what) => (what, None),
                    Err(error) => (String::new(), Some(format!("{error:#}"))),
                };
                eprintln!(
                    "faults: {:>5.1} s  {} ended: {}",
                    ended.as_secs_f64(),
                    fault.name(),
                    error.as_deref().unwrap_or(&what)
                );
                windows.push(Window {
                    fault,
                    started,
                    ended,
                    what,
                    error,
                });
            }
        }
    }
    (windows, recorder.elapsed())
}

fn print_figures(f: &Figures) {
    let seconds = |s: Option<u64>| s.map_or("not within the window".into(), |s| format!("{s} s"));
    eprintln!(
        "faults: {}: {:.1} s; failed in flight at its start {} ({} retriable), sent during {} {:?} {:?}, sent after {} {:?} {:?}; baseline p99 {} ms; recovered after {} (errors stopped {}, p99 back {}); worst p99 {:.1} ms; p99 by endpoint in the 5 s after {:?}",
        f.fault.name(),
        f.lasted_s,
        f.failed_in_flight_at_start.total,
        f.failed_in_flight_at_start.retriable,
        f.failed_sent_during.total,
        f.failed_sent_during.by_code,
        f.failed_sent_during.by_endpoint,
        f.failed_sent_after.total,
        f.failed_sent_after.by_code,
        f.failed_sent_after.by_endpoint,
        f.baseline_p99_ms.map_or("—".into(), |p| format!("{p:.1}")),
        seconds(f.recovery.recovered_after_seconds),
        seconds(f.recovery.errors_stopped_after_seconds),
        seconds(f.recovery.p99_back_after_seconds),
        f.worst_p99_ms,
        f.p99_after_ms_by_endpoint,
    );
}
