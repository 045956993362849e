//! The operator's side of a presale run: the admin API (recorded like the fans' calls), the
//! room as it shows it, and the schedule's instants as the API takes them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::{ADMIN_DEADLINE, ROOMS, UPDATE_ROOM};
use crate::{
    client::{CallResult, Client},
    recorder::Recorder,
};

/// The room as the operator's API shows it.
#[derive(Clone, Debug, Serialize)]
pub(super) struct RoomState {
    #[serde(skip)]
    pub(super) at: Instant,
    pub(super) phase: Option<String>,
    pub(super) waiting: u64,
    pub(super) active: u64,
    pub(super) admitted_total: u64,
    pub(super) seats: Seats,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub(super) struct Seats {
    pub(super) free: u64,
    pub(super) held: u64,
    pub(super) sold: u64,
}

impl Seats {
    pub(super) fn total(&self) -> u64 {
        self.free + self.held + self.sold
    }
}

/// The room of `concert` in a `GET /admin/rooms` answer: its `seats` when given, else the
/// sum of its options'.
fn room_state(json: &Value, concert: u64, at: Instant) -> Option<RoomState> {
    let room = json["rooms"]
        .as_array()?
        .iter()
        .find(|room| room["concertId"].as_u64() == Some(concert))?;
    let count = |value: &Value, field: &str| value[field].as_u64().unwrap_or(0);
    let seats = if room["seats"].is_object() {
        Seats {
            free: count(&room["seats"], "free"),
            held: count(&room["seats"], "held"),
            sold: count(&room["seats"], "sold"),
        }
    } else {
        let options = room["options"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let sum = |field: &str| options.iter().map(|o| count(o, field)).sum();
        Seats {
            free: sum("free"),
            held: sum("held"),
            sold: sum("sold"),
        }
    };
    Some(RoomState {
        at,
        phase: room["phase"].as_str().map(str::to_owned),
        waiting: count(room, "waiting"),
        active: count(room, "active"),
        admitted_total: count(room, "admittedTotal"),
        seats,
    })
}

/// The operator's side of the run: the admin API, recorded.
pub(super) struct Operator {
    pub(super) client: Client,
    pub(super) recorder: Arc<Recorder>,
    pub(super) concert: u64,
}

impl Operator {
    async fn timed(
        &self,
        endpoint: &'static str,
        call: impl Future<Output = CallResult>,
    ) -> CallResult {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(ADMIN_DEADLINE, call)
            .await
            .unwrap_or(Err(crate::client::Failure::Timeout(ADMIN_DEADLINE)));
        self.recorder
            .record(endpoint, started.elapsed(), &result, |reply| {
                reply.status == 200
            });
        result
    }

    pub(super) async fn room(&self) -> anyhow::Result<RoomState> {
        let reply = self.timed(ROOMS, self.client.get("/admin/rooms")).await?;
        if reply.status != 200 {
            bail!("GET /admin/rooms answered {}: {}", reply.status, reply.json);
        }
        room_state(&reply.json, self.concert, Instant::now()).with_context(|| {
            format!(
                "GET /admin/rooms lists no room of concert {}: it needs its own waiting room (catalog seed --presale-concerts)",
                self.concert
            )
        })
    }

    /// Changes the room's settings; a few attempts (the run depends on it).
    pub(super) async fn update(&self, body: Value) -> anyhow::Result<()> {
        let path = format!("/admin/rooms/concert-{}", self.concert);
        let mut last = String::new();
        for _ in 0..3 {
            match self
                .timed(UPDATE_ROOM, self.client.patch(&path, body.to_string()))
                .await
            {
                Ok(reply) if reply.status == 200 => return Ok(()),
                // Refused: sending it again changes nothing.
                Ok(reply) if reply.status < 500 => {
                    bail!(
                        "PATCH {path} {body} answered {}: {}",
                        reply.status,
                        reply.json
                    )
                }
                Ok(reply) => last = format!("{}: {}", reply.status, reply.json),
                Err(failure) => last = failure.label().to_owned(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("PATCH {path} {body} failed: {last}")
    }
}

/// The room once a second until `done`.
pub(super) async fn sample_room(operator: &Operator, done: &AtomicBool) -> Vec<RoomState> {
    let mut samples = Vec::new();
    while !done.load(Ordering::Relaxed) {
        if let Ok(room) = operator.room().await {
            samples.push(room);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    samples
}

/// The room after the run: the queue counts seats as its admitter last saw them, so a few
/// seconds for the last sales to show.
pub(super) async fn final_room(operator: &Operator) -> anyhow::Result<RoomState> {
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        let room = operator.room().await?;
        if (room.seats.free == 0 && room.seats.held == 0) || Instant::now() >= limit {
            return Ok(room);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub(super) fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Unix milliseconds as RFC 3339 in UTC, to the second (`2026-01-31T19:00:05Z`).
pub(super) fn rfc3339(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::time::Instant;

    use super::*;
    use crate::scenarios::presale::outcome::same_instant;

    #[test]
    fn times_are_written_as_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799_000), "2099-12-31T23:59:59Z");
        assert!(same_instant("2023-11-14T22:13:20Z")(
            "2023-11-14T22:13:20.000Z"
        ));
        assert!(!same_instant("2023-11-14T22:13:20Z")(
            "2023-11-14T22:13:21Z"
        ));
    }

    #[test]
    fn the_room_is_read_from_its_seats_or_its_options() {
        let now = Instant::now();
        let json = serde_json::json!({"rooms": [
            {"room": "default", "concertId": null, "waiting": 9},
            {"room": "concert-2", "concertId": 2, "waiting": 5, "active": 3, "admittedTotal": 8,
             "phase": "OPEN", "seats": {"free": 1, "held": 2, "sold": 3},
             "options": [{"free": 10, "held": 0, "sold": 0}]},
            {"room": "concert-3", "concertId": 3, "options": [
                {"free": 1, "held": 1, "sold": 1}, {"free": 2, "held": 0, "sold": 4}]},
        ]});
        let two = room_state(&json, 2, now).unwrap();
        assert_eq!((two.waiting, two.active, two.admitted_total), (5, 3, 8));
        assert_eq!(
            two.seats,
            Seats {
                free: 1,
                held: 2,
                sold: 3
            }
        );
        assert_eq!(two.phase.as_deref(), Some("OPEN"));
        let three = room_state(&json, 3, now).unwrap();
        assert_eq!(
            three.seats,
            Seats {
                free: 3,
                held: 1,
                sold: 5
            }
        );
        assert!(room_state(&json, 4, now).is_none());
    }
}
