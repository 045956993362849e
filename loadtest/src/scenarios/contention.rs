//! `contention`: many users fight for a few seats. Each admitted user tries seats it has not
//! yet seen taken until it wins one (then pays) or every seat is gone. Afterwards the run checks
//! through the API that no seat was sold twice, that every sale is CONFIRMED, that the seats
//! gone from the option are exactly the ones sold, and that wins + SEAT_TAKEN + errors add up
//! to the attempts.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{Arc, Mutex},
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
    /// Users in all.
    #[arg(long, default_value_t = 2000)]
    pub users: u64,
    /// New users per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// The option fought over (must be fresh: no seat held before the run).
    #[arg(long, default_value_t = 1)]
    pub option: u64,
    /// Seats 1..=N of the option are on sale.
    #[arg(long, default_value_t = 20)]
    pub seats: u64,
    /// Seconds before the run stops waiting for users.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    #[arg(long)]
    pub first_user: Option<u64>,
}

#[derive(Default)]
struct Tally {
    attempts: u64,
    seat_taken: u64,
    errors: u64,
    /// (seat, reservation id, buyer) of every paid hold.
    sold: Vec<(u64, u64, u64)>,
    held_not_paid: u64,
}

pub async fn run(client: &Client, args: Args) -> anyhow::Result<Run> {
    let first = first_user(args.first_user);
    client.prepare_users(first, args.users)?;
    let recorder = Arc::new(Recorder::new());
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let tally = Arc::new(Mutex::new(Tally::default()));
    eprintln!(
        "contention: {} users at {}/s for seats 1..={} of option {}",
        args.users, args.rate, args.seats, args.option
    );
    // Admission is not what this run measures: poll quickly.
    let polling = Polling {
        min: Duration::from_millis(100),
        max: Duration::from_millis(300),
    };
    let arrivals = open_model(args.rate, args.users, until, &recorder, |index| {
        let visitor = Visitor::new(client, &recorder, first + index);
        let (tally, args) = (tally.clone(), args.clone());
        async move {
            let Admission::Active(token) = visitor.wait_for_admission(polling, until).await else {
                return;
            };
            fight(&visitor, &args, &token, &tally).await;
        }
    })
    .await;
    let summary = recorder.summary();
    let tally = std::mem::take(
        &mut *tally
            .lock()
            .map_err(|_| anyhow::anyhow!("tally poisoned"))?,
    );

    let distinct: HashSet<u64> = tally.sold.iter().map(|(seat, _, _)| *seat).collect();
    let sold_twice = (tally.sold.len() - distinct.len()) as u64;
    let mut not_confirmed = 0;
    for (_, reservation, buyer) in &tally.sold {
        // Asked as the buyer: with bearer tokens a reservation is its owner's to read.
        let reply = client
            .as_user(*buyer)
            .get(&format!("/api/reservations/{reservation}"))
            .await?;
        if reply.json["status"] != "CONFIRMED" {
            not_confirmed += 1;
        }
    }
    let free: BTreeSet<u64> = client
        .get(&format!("/api/concert/{}/available-seats", args.option))
        .await?
        .json
        .as_array()
        .map(|seats| seats.iter().filter_map(|s| s["id"].as_u64()).collect())
        .unwrap_or_default();
    let gone: BTreeSet<u64> = (1..=args.seats).filter(|s| !free.contains(s)).collect();
    let sold: BTreeSet<u64> = distinct.iter().copied().collect();
    // Unpaid holds also take seats off sale until they expire.
    let gone_matches_sales =
        gone.len() as u64 == sold.len() as u64 + tally.held_not_paid && sold.is_subset(&gone);
    let adds_up = tally.attempts
        == tally.sold.len() as u64 + tally.held_not_paid + tally.seat_taken + tally.errors;
    let clean = sold_twice == 0 && not_confirmed == 0 && gone_matches_sales && adds_up;
    eprintln!(
        "contention: {} attempts: {} sold, {} SEAT_TAKEN, {} errors; sold twice {sold_twice}, not confirmed {not_confirmed}, seats gone {} = sold {} + unpaid {}: {}",
        tally.attempts,
        tally.sold.len(),
        tally.seat_taken,
        tally.errors,
        gone.len(),
        sold.len(),
        tally.held_not_paid,
        if clean { "consistent" } else { "INCONSISTENT" }
    );
    Ok(Run {
        scenario: "contention",
        parameters: json!({
            "users": args.users, "rate": args.rate, "option": args.option,
            "seats": args.seats, "first_user": first,
        }),
        results: json!({
            "arrivals": arrivals,
            "attempts": tally.attempts,
            "sold": tally.sold.len(),
            "seat_taken": tally.seat_taken,
            "errors": tally.errors,
            "held_not_paid": tally.held_not_paid,
            "sold_twice": sold_twice,
            "not_confirmed": not_confirmed,
            "seats_gone": gone.len(),
            "gone_matches_sales": gone_matches_sales,
            "attempts_add_up": adds_up,
            "consistent": clean,
        }),
        series: recorder.series(),
        summary,
        breakdown: None,
    })
}

/// Tries seats not yet seen taken, in random order, until one is won and paid.
async fn fight(visitor: &Visitor, args: &Args, token: &str, tally: &Mutex<Tally>) {
    let mut seats: Vec<u64> = (1..=args.seats).collect();
    fastrand::shuffle(&mut seats);
    for seat in seats {
        let outcome = visitor.reserve(token, args.option, seat).await;
        let paid = match &outcome {
            Ok(Some(held)) => match (held["reservationId"].as_u64(), held["price"].as_u64()) {
                (Some(id), Some(price)) => {
                    let paid = visitor.charge(price).await.is_some()
                        && visitor.pay(token, id).await.is_some();
                    Some((id, paid))
                }
                _ => None,
            },
            _ => None,
        };
        let Ok(mut tally) = tally.lock() else {
            return;
        };
        tally.attempts += 1;
        match (outcome, paid) {
            (Ok(Some(_)), Some((id, true))) => {
                tally.sold.push((seat, id, visitor.user_id));
                return;
            }
            (Ok(Some(_)), _) => {
                tally.held_not_paid += 1;
                return;
            }
            (Ok(None), _) => tally.seat_taken += 1,
            (Err(()), _) => {
                tally.errors += 1;
                return;
            }
        }
    }
}
