//! The steps of a visitor's journey through the public API, each timed into the run's recorder
//! under its route template: join the queue, wait until admitted, browse, hold, top up, pay.
//! Scenarios compose these; every step returns `None` when the journey cannot go on.
//!
//! A visitor is plain (it sends again only what the gateway shed, as the original clients'
//! pages do) or careful ([`Visitor::careful`]): it also sends again whatever failed in a way
//! that may pass — 503, 504, 429, no answer — when the call is safe to repeat: reads,
//! issue-token (asking again returns the same token), holds (the store answers an own live
//! hold as it is), and top-ups and payments that carry an `Idempotency-Key`.

use std::{sync::Arc, time::Duration};

use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    arrivals::{Arrivals, think_time},
    client::{CallResult, Client, Reply},
    recorder::Recorder,
    stats,
};

/// A visitor: one user id, the shared client and recorder, and how it meets failures.
#[derive(Clone)]
pub struct Visitor {
    pub client: Client,
    pub recorder: Arc<Recorder>,
    pub user_id: u64,
    careful: bool,
}

/// How a waiting visitor polls (the original Locust users waited 1–3 s between tasks).
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    pub min: Duration,
    pub max: Duration,
}

impl Polling {
    /// The pause before the next poll: the visitor's own think time, or the queue's advice
    /// plus up to a second at random if that is longer, as the fan page waits. Visitors whose
    /// answers came back in the same instant (after a stall) would otherwise go on polling in
    /// lockstep.
    pub fn pause(&self, asked: Duration) -> Duration {
        let advised = think_time(asked, asked + Duration::from_secs(1));
        think_time(self.min, self.max).max(advised)
    }
}

/// Attempts of one call while the gateway sheds load (503).
const RETRIES_WHEN_SHED: u32 = 5;

/// Attempts of one call by a careful visitor: with a pause of about a second between them,
/// enough to outlast a store that stops answering for several seconds.
const CAREFUL_ATTEMPTS: u32 = 20;

/// Whether a call may be sent again after `result`, as far as the failure goes: shed before
/// any handler ran (503 `OVERLOADED`) always; otherwise `repeatable` (a careful visitor's call
/// that is safe to repeat) and a failure that may pass — the gateway or a backend unavailable
/// (503, 502), a deadline (504), a rate limit (429), or no answer at all.
fn may_send_again(result: &CallResult, repeatable: bool) -> bool {
    match result {
        Ok(reply) if reply.status == 503 && reply.code() == Some("OVERLOADED") => true,
        Ok(reply) => repeatable && matches!(reply.status, 429 | 502 | 503 | 504),
        Err(_) => repeatable,
    }
}

/// How a booking journey ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Paid,
    StillWaiting,
    NoSeat,
    Failed,
}

/// How a run's booking journeys ended, counted, and how long the paid ones took.
pub struct Tally {
    pub paid: u64,
    pub still_waiting: u64,
    pub no_seat: u64,
    pub failed: u64,
    /// Holds refused as SEAT_TAKEN on the way.
    pub seat_taken: u64,
    journey: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            paid: 0,
            still_waiting: 0,
            no_seat: 0,
            failed: 0,
            seat_taken: 0,
            journey: stats::histogram(),
        }
    }
}

impl Tally {
    /// One journey that ended so, met `taken` SEAT_TAKEN answers and took `took`.
    pub fn note(&mut self, ending: Ending, taken: u64, took: Duration) {
        self.seat_taken += taken;
        match ending {
            Ending::Paid => {
                self.paid += 1;
                let _ = self.journey.record(took.as_micros() as u64);
            }
            Ending::StillWaiting => self.still_waiting += 1,
            Ending::NoSeat => self.no_seat += 1,
            Ending::Failed => self.failed += 1,
        }
    }

    /// The journeys as a run's results report them, with the run's arrivals: a JSON object
    /// the scenario adds its own figures to.
    pub fn results(&self, arrivals: &Arrivals) -> Value {
        serde_json::json!({
            "arrivals": arrivals,
            "paid": self.paid,
            "no_seat": self.no_seat,
            "failed_journeys": self.failed,
            "still_waiting_at_end": self.still_waiting + arrivals.cut_off,
            "seat_taken_retries": self.seat_taken,
            // The paid journeys' durations, arrival to payment.
            "journey_ms": stats::Latency::from(&self.journey),
        })
    }
}

/// The way a visitor finds a seat: the original reservation scenarios' two ways.
#[derive(clap::ValueEnum, Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// Original scenario 1: available-dates → available-seats → reserve.
    DatesSeats,
    /// Original scenario 2: available-concert-options (with counts) → reserve.
    OptionsCounts,
}

/// What a visitor books, and how it looks for a seat and waits.
#[derive(Clone, Copy, Debug)]
pub struct Booking {
    pub style: Style,
    /// The concert whose options are on sale.
    pub concert: u64,
    /// Seats per option (`options-counts` picks seat numbers without a seat map).
    pub seats: u64,
    /// Holds tried before giving up when seats are taken under the visitor.
    pub attempts: u32,
    pub polling: Polling,
}

/// A seat held: the token that admitted the visitor, and the reservation.
#[derive(Clone, Debug)]
pub struct Hold {
    pub token: String,
    pub reservation: u64,
    pub option: u64,
    pub seat: u64,
    pub price: u64,
}

/// The answer that ends a wait.
pub enum Admission {
    Active(String),
    /// Still waiting at the deadline.
    StillWaiting,
    Failed,
}

impl Visitor {
    /// User `user_id`, calling with its own bearer token when the run has an identity.
    pub fn new(client: &Client, recorder: &Arc<Recorder>, user_id: u64) -> Self {
        Self {
            client: client.as_user(user_id),
            recorder: recorder.clone(),
            user_id,
            careful: false,
        }
    }

    /// This visitor as a careful client (see the module's documentation).
    pub fn careful(mut self) -> Self {
        self.careful = true;
        self
    }

    async fn timed(
        &self,
        endpoint: &'static str,
        call: impl Future<Output = CallResult>,
        accepted: impl Fn(&Reply) -> bool,
    ) -> Option<Reply> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.recorder
            .record(endpoint, started.elapsed(), &result, &accepted);
        result.ok().filter(|reply| accepted(reply))
    }

    /// Like [`Self::timed`], but sent again while [`may_send_again`] allows it (`repeatable`:
    /// the call is safe to repeat, which only a careful visitor takes up), after a pause of
    /// about a second (0.5–1.5 s; what a shed answer's `Retry-After` asks for), as a browser's
    /// page would: at most [`RETRIES_WHEN_SHED`] attempts, [`CAREFUL_ATTEMPTS`] for a careful
    /// visitor. Every attempt is recorded.
    async fn timed_with_retries<F, Fut>(
        &self,
        endpoint: &'static str,
        call: F,
        accepted: impl Fn(&Reply) -> bool,
        repeatable: bool,
    ) -> Option<Reply>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = CallResult>,
    {
        let attempts = if self.careful {
            CAREFUL_ATTEMPTS
        } else {
            RETRIES_WHEN_SHED
        };
        for _ in 0..attempts {
            let started = std::time::Instant::now();
            let result = call().await;
            self.recorder
                .record(endpoint, started.elapsed(), &result, &accepted);
            match result {
                Ok(reply) if accepted(&reply) => return Some(reply),
                failed if may_send_again(&failed, self.careful && repeatable) => {
                    tokio::time::sleep(think_time(
                        Duration::from_millis(500),
                        Duration::from_millis(1500),
                    ))
                    .await;
                }
                _ => return None,
            }
        }
        None
    }

    /// Takes a token and polls check-queue until ACTIVE or `until`, at the pace the queue asks
    /// for (`pollAfterSeconds`) but never faster than `polling` (the original clients' 1–3 s).
    pub async fn wait_for_admission(&self, polling: Polling, until: Instant) -> Admission {
        let issue_body = format!(r#"{{"userId": {}}}"#, self.user_id);
        let Some(issued) = self
            .timed_with_retries(
                "POST /queue/issue-token",
                || self.client.post("/queue/issue-token", issue_body.clone()),
                |reply| reply.status == 200,
                true,
            )
            .await
        else {
            return Admission::Failed;
        };
        let Some(token) = issued.json["token"].as_str().map(str::to_owned) else {
            return Admission::Failed;
        };
        let status_path = format!("/queue/check-queue?token={token}");
        let mut reply = issued;
        loop {
            if reply.json["status"] == "ACTIVE" {
                return Admission::Active(token);
            }
            let asked = Duration::from_secs(reply.json["pollAfterSeconds"].as_u64().unwrap_or(0));
            let pause = polling.pause(asked);
            if Instant::now() + pause >= until {
                return Admission::StillWaiting;
            }
            tokio::time::sleep(pause).await;
            let Some(next) = self
                .timed_with_retries(
                    "GET /queue/check-queue",
                    || self.client.get(&status_path),
                    |reply| reply.status == 200,
                    true,
                )
                .await
            else {
                return Admission::Failed;
            };
            reply = next;
        }
    }

    /// One issue-token, no retry; true when it answered 200.
    pub async fn issue_token(&self) -> bool {
        self.timed(
            "POST /queue/issue-token",
            self.client.post(
                "/queue/issue-token",
                format!(r#"{{"userId": {}}}"#, self.user_id),
            ),
            |reply| reply.status == 200,
        )
        .await
        .is_some()
    }

    /// One issue-token and one check-queue, the queue's hot pair; true when both answered 200.
    pub async fn issue_and_check(&self) -> bool {
        let Some(issued) = self
            .timed(
                "POST /queue/issue-token",
                self.client.post(
                    "/queue/issue-token",
                    format!(r#"{{"userId": {}}}"#, self.user_id),
                ),
                |reply| reply.status == 200,
            )
            .await
        else {
            return false;
        };
        let Some(token) = issued.json["token"].as_str() else {
            return false;
        };
        self.timed(
            "GET /queue/check-queue",
            self.client
                .get(&format!("/queue/check-queue?token={token}")),
            |reply| reply.status == 200,
        )
        .await
        .is_some()
    }

    /// A GET answered 200 (shed attempts retried).
    async fn get_ok(&self, endpoint: &'static str, path: String) -> Option<Reply> {
        self.timed_with_retries(
            endpoint,
            || self.client.get(&path),
            |reply| reply.status == 200,
            true,
        )
        .await
    }

    /// Options of a concert that still have free seats.
    pub async fn available_dates(&self, concert: u64) -> Option<Vec<u64>> {
        let reply = self
            .get_ok(
                "GET /api/concert/{concertId}/available-dates",
                format!("/api/concert/{concert}/available-dates"),
            )
            .await?;
        Some(ids(&reply.json, "id"))
    }

    /// Every option of a concert with its free-seat count (the original scenario 2's call).
    pub async fn options_with_counts(&self, concert: u64) -> Option<Vec<(u64, u64)>> {
        let reply = self
            .get_ok(
                "GET /api/concert/concert/{concertId}/available-concert-options",
                format!("/api/concert/concert/{concert}/available-concert-options"),
            )
            .await?;
        Some(
            reply
                .json
                .as_array()
                .map(|options| {
                    options
                        .iter()
                        .filter_map(|o| Some((o["id"].as_u64()?, o["availableSeats"].as_u64()?)))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    pub async fn available_seats(&self, option: u64) -> Option<Vec<u64>> {
        let reply = self
            .get_ok(
                "GET /api/concert/{concertOptionId}/available-seats",
                format!("/api/concert/{option}/available-seats"),
            )
            .await?;
        Some(ids(&reply.json, "id"))
    }

    /// Holds a seat: `Ok(Some(reservation))` on 303, `Ok(None)` when someone else has it
    /// (SEAT_TAKEN counts as an expected answer), `Err(())` on anything else.
    pub async fn reserve(&self, token: &str, option: u64, seat: u64) -> Result<Option<Value>, ()> {
        let body = format!(
            r#"{{"token": "{token}", "concertOptionId": {option}, "seatId": {seat}, "userId": {}}}"#,
            self.user_id
        );
        let reply = self
            .timed_with_retries(
                "POST /api/reserve",
                || self.client.post("/api/reserve", body.clone()),
                |reply| reply.status == 303 || reply.code() == Some("SEAT_TAKEN"),
                true,
            )
            .await
            .ok_or(())?;
        Ok((reply.status == 303).then_some(reply.json))
    }

    /// Tops the wallet up by `amount` (no Idempotency-Key: sent again only when shed).
    pub async fn charge(&self, amount: u64) -> Option<()> {
        self.charge_with(amount, None).await.map(|_| ())
    }

    /// Tops the wallet up by `amount` with an Idempotency-Key: a careful visitor sends it again
    /// after a failure that may pass, and the first top-up's answer comes back instead of a
    /// second one. The new balance's JSON.
    pub async fn charge_once(&self, amount: u64, key: &str) -> Option<Value> {
        self.charge_with(amount, Some(key)).await
    }

    async fn charge_with(&self, amount: u64, key: Option<&str>) -> Option<Value> {
        let path = format!("/api/users/{}/balance/charge", self.user_id);
        let body = format!(r#"{{"amount": {amount}}}"#);
        self.timed_with_retries(
            "POST /api/users/{userId}/balance/charge",
            || self.client.post_with_key(&path, body.clone(), key),
            |reply| reply.status == 200,
            key.is_some(),
        )
        .await
        .map(|reply| reply.json)
    }

    /// Pays for a reservation (no Idempotency-Key: sent again only when shed).
    pub async fn pay(&self, token: &str, reservation: u64) -> Option<Value> {
        self.pay_with(token, reservation, None).await
    }

    /// Pays with an Idempotency-Key: sent again as [`Self::charge_once`] is; a repeat after
    /// the payment went through (the token released by it) is answered with that payment.
    pub async fn pay_once(&self, token: &str, reservation: u64, key: &str) -> Option<Value> {
        self.pay_with(token, reservation, Some(key)).await
    }

    async fn pay_with(&self, token: &str, reservation: u64, key: Option<&str>) -> Option<Value> {
        let body = format!(
            r#"{{"reservationId": {reservation}, "userId": {}, "token": "{token}"}}"#,
            self.user_id
        );
        self.timed_with_retries(
            "POST /api/payments",
            || {
                self.client
                    .post_with_key("/api/payments", body.clone(), key)
            },
            |reply| reply.status == 200,
            key.is_some(),
        )
        .await
        .map(|reply| reply.json)
    }

    /// Waits until admitted, then holds a seat the booking's way, trying another when one is
    /// taken under it (each SEAT_TAKEN counted in `taken`); the journey's ending when it
    /// cannot.
    pub async fn hold_a_seat(
        &self,
        booking: &Booking,
        until: Instant,
        taken: &mut u64,
    ) -> Result<Hold, Ending> {
        let token = match self.wait_for_admission(booking.polling, until).await {
            Admission::Active(token) => token,
            Admission::StillWaiting => return Err(Ending::StillWaiting),
            Admission::Failed => return Err(Ending::Failed),
        };
        for attempt in 0..booking.attempts {
            let (option, seat) = self
                .choose_seat(booking, attempt)
                .await
                .ok_or(Ending::NoSeat)?;
            match self.reserve(&token, option, seat).await {
                Ok(Some(held)) => {
                    let (Some(reservation), Some(price)) =
                        (held["reservationId"].as_u64(), held["price"].as_u64())
                    else {
                        return Err(Ending::Failed);
                    };
                    return Ok(Hold {
                        token,
                        reservation,
                        option,
                        seat,
                        price,
                    });
                }
                Ok(None) => *taken += 1,
                Err(()) => return Err(Ending::Failed),
            }
        }
        Err(Ending::NoSeat)
    }

    /// A seat to try, the way the booking's style found one.
    async fn choose_seat(&self, booking: &Booking, attempt: u32) -> Option<(u64, u64)> {
        match booking.style {
            Style::DatesSeats => {
                let options = self.available_dates(booking.concert).await?;
                let option = *fastrand::choice(&options)?;
                let seats = self.available_seats(option).await?;
                Some((option, *fastrand::choice(&seats)?))
            }
            Style::OptionsCounts => {
                let options = self.options_with_counts(booking.concert).await?;
                let open: Vec<u64> = options
                    .iter()
                    .filter(|(_, free)| *free > 0)
                    .map(|(id, _)| *id)
                    .collect();
                let option = *fastrand::choice(&open)?;
                // Like the original, move on to the next seat number after a taken one.
                let seats = booking.seats.max(1);
                let start = fastrand::u64(0..seats);
                Some((option, (start + u64::from(attempt)) % seats + 1))
            }
        }
    }
}

fn ids(json: &Value, field: &str) -> Vec<u64> {
    json.as_array()
        .map(|items| items.iter().filter_map(|i| i[field].as_u64()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Polling;

    #[test]
    fn visitors_given_the_same_advice_at_once_spread_their_next_polls_over_about_a_second() {
        // The faults run's visitors: 1–3 s of their own, told to wait 3 s (at least the
        // advice, which alone would put them all in one instant).
        let polling = Polling {
            min: Duration::from_secs(1),
            max: Duration::from_secs(3),
        };
        let asked = Duration::from_secs(3);
        let pauses: Vec<Duration> = (0..1_000).map(|_| polling.pause(asked)).collect();
        assert!(
            pauses
                .iter()
                .all(|p| *p >= asked && *p <= asked + Duration::from_secs(1))
        );
        let earliest = pauses.iter().min().copied().unwrap_or_default();
        let latest = pauses.iter().max().copied().unwrap_or_default();
        assert!(
            latest - earliest > Duration::from_millis(900),
            "{earliest:?}..{latest:?}"
        );
        let same_instant = pauses
            .iter()
            .filter(|p| p.abs_diff(earliest) < Duration::from_millis(10))
            .count();
        assert!(
            same_instant < 50,
            "{same_instant} of 1,000 in the first 10 ms"
        );
    }
}
