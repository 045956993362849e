//! The steps of a visitor's journey through the public API, each timed into the run's recorder
//! under its route template: join the queue, wait until admitted, browse, hold, top up, pay.
//! Scenarios compose these; every step returns `None` when the journey cannot go on.

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use tokio::time::Instant;

use crate::{
    arrivals::think_time,
    client::{CallResult, Client, Reply},
    recorder::Recorder,
};

/// A visitor: one user id, the shared client and recorder.
#[derive(Clone)]
pub struct Visitor {
    pub client: Client,
    pub recorder: Arc<Recorder>,
    pub user_id: u64,
}

/// How a waiting visitor polls (the original Locust users waited 1–3 s between tasks).
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    pub min: Duration,
    pub max: Duration,
}

/// Attempts of one call while the gateway sheds load (503).
const RETRIES_WHEN_SHED: u32 = 5;

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
        }
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

    /// Like [`Self::timed`], but a shed request (503 `OVERLOADED`) is retried after the pause its
    /// `Retry-After` asks for (1 s, spread ±50%), as a browser's waiting page would, at most
    /// [`RETRIES_WHEN_SHED`] times. Every attempt is recorded.
    async fn timed_with_retries<F, Fut>(
        &self,
        endpoint: &'static str,
        call: F,
        accepted: impl Fn(&Reply) -> bool,
    ) -> Option<Reply>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = CallResult>,
    {
        for _ in 0..RETRIES_WHEN_SHED {
            let started = std::time::Instant::now();
            let result = call().await;
            self.recorder
                .record(endpoint, started.elapsed(), &result, &accepted);
            match result {
                Ok(reply) if accepted(&reply) => return Some(reply),
                // Shed before any handler ran: safe to send again, whatever the route.
                Ok(reply) if reply.status == 503 && reply.code() == Some("OVERLOADED") => {
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
            let pause = think_time(polling.min, polling.max).max(asked);
            if Instant::now() + pause >= until {
                return Admission::StillWaiting;
            }
            tokio::time::sleep(pause).await;
            let Some(next) = self
                .timed_with_retries(
                    "GET /queue/check-queue",
                    || self.client.get(&status_path),
                    |reply| reply.status == 200,
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
            )
            .await
            .ok_or(())?;
        Ok((reply.status == 303).then_some(reply.json))
    }

    pub async fn charge(&self, amount: u64) -> Option<()> {
        let path = format!("/api/users/{}/balance/charge", self.user_id);
        self.timed_with_retries(
            "POST /api/users/{userId}/balance/charge",
            || {
                self.client
                    .post(&path, format!(r#"{{"amount": {amount}}}"#))
            },
            |reply| reply.status == 200,
        )
        .await
        .map(|_| ())
    }

    pub async fn pay(&self, token: &str, reservation: u64) -> Option<Value> {
        let body = format!(
            r#"{{"reservationId": {reservation}, "userId": {}, "token": "{token}"}}"#,
            self.user_id
        );
        self.timed_with_retries(
            "POST /api/payments",
            || self.client.post("/api/payments", body.clone()),
            |reply| reply.status == 200,
        )
        .await
        .map(|reply| reply.json)
    }
}

fn ids(json: &Value, field: &str) -> Vec<u64> {
    json.as_array()
        .map(|items| items.iter().filter_map(|i| i[field].as_u64()).collect())
        .unwrap_or_default()
}
