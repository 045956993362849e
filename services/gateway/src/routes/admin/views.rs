//! The operator's API on the wire: rooms as `default` / `concert-{id}`, figures, settings and
//! the change log as JSON, made from the backends' messages.

use serde::{Deserialize, Serialize};
use ticketing_proto::{catalog::v1 as catalog, queue::v1 as queue};
use utoipa::ToSchema;

use crate::{
    error::ApiError,
    metrics,
    wire::{rfc3339, valid_id},
};

/// A room's name in paths and bodies: `default`, or `concert-{id}` for a concert's own room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoomName(pub Option<i64>);

impl RoomName {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        if text == "default" {
            return Ok(Self(None));
        }
        text.strip_prefix("concert-")
            .and_then(|id| id.parse::<i64>().ok())
            .and_then(|id| valid_id(id, "INVALID_ROOM", "room").ok())
            .map(|id| Self(Some(id)))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_ROOM",
                    "a room is `default` or `concert-{id}` with a positive concert id",
                )
            })
    }
}

impl std::fmt::Display for RoomName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("default"),
            Some(id) => write!(f, "concert-{id}"),
        }
    }
}

impl Serialize for RoomName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    pub paused: bool,
    pub admission_rate: f64,
    pub active_cap: u32,
    /// True when an operator has set any of them (else the queue's configured defaults).
    pub overridden: bool,
}

/// One concert option's seats, as the operator counts them.
#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptionSalesView {
    pub concert_id: i64,
    pub concert_option_id: i64,
    pub starts_at: Option<String>,
    pub venue: String,
    pub seats: u32,
    pub free: u32,
    pub held: u32,
    pub sold: u32,
}

impl OptionSalesView {
    pub fn new(option: catalog::ConcertOption, held: u32, sold: u32) -> Self {
        Self {
            concert_id: option.concert_id,
            concert_option_id: option.id,
            starts_at: rfc3339(option.starts_at_unix_ms),
            venue: option.venue,
            seats: option.seat_count,
            free: option.seat_count.saturating_sub(held.saturating_add(sold)),
            held,
            sold,
        }
    }
}

#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    #[schema(value_type = String, pattern = "^(default|concert-[1-9][0-9]{0,14})$", example = "default")]
    pub room: RoomName,
    pub concert_id: Option<i64>,
    /// The concert's title, for a concert's own room.
    pub title: Option<String>,
    pub settings: SettingsView,
    pub waiting: u64,
    pub active: u64,
    pub admitted_per_second: f64,
    pub dropped_per_second: f64,
    pub wait_at_back_seconds: u64,
    pub admitted_total: u64,
    pub dropped_total: u64,
    /// The options of every concert that waits in this room.
    pub options: Vec<OptionSalesView>,
}

impl RoomView {
    pub fn new(figures: queue::RoomFigures, title: Option<String>) -> Self {
        let settings = figures.settings.unwrap_or_default();
        Self {
            room: RoomName(figures.concert_id),
            concert_id: figures.concert_id,
            title,
            settings: SettingsView {
                paused: settings.paused,
                admission_rate: settings.admission_rate,
                active_cap: settings.active_cap,
                overridden: figures.settings_overridden,
            },
            waiting: figures.waiting,
            active: figures.active,
            admitted_per_second: figures.admitted_per_second,
            dropped_per_second: figures.dropped_per_second,
            wait_at_back_seconds: figures.wait_at_back_seconds,
            admitted_total: figures.admitted_total,
            dropped_total: figures.dropped_total,
            options: Vec::new(),
        }
    }
}

/// One gateway route's recent traffic (this replica).
#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    /// `METHOD /template`, e.g. `POST /queue/issue-token`.
    pub route: String,
    pub requests_per_second: f64,
    /// `null` without requests in the last 10 s.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl From<metrics::RouteRecent> for RouteView {
    fn from(recent: metrics::RouteRecent) -> Self {
        Self {
            route: recent.route,
            requests_per_second: recent.requests_per_second,
            p50_ms: recent.p50_ms,
            p99_ms: recent.p99_ms,
        }
    }
}

/// One 5-second step of one route (this replica).
#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSampleView {
    /// The end of the step.
    pub at: Option<String>,
    pub requests_per_second: f64,
    /// `null` without requests in the step.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Serialize, Debug, ToSchema)]
pub struct RouteHistoryView {
    pub route: String,
    pub samples: Vec<RouteSampleView>,
}

#[derive(Serialize, Debug, ToSchema)]
pub struct RoutesHistoryView {
    pub routes: Vec<RouteHistoryView>,
}

impl From<Vec<metrics::RouteHistory>> for RoutesHistoryView {
    fn from(history: Vec<metrics::RouteHistory>) -> Self {
        let routes = history
            .into_iter()
            .map(|route| RouteHistoryView {
                route: route.route,
                samples: route
                    .samples
                    .into_iter()
                    .map(|sample| RouteSampleView {
                        at: rfc3339(sample.at_unix_ms),
                        requests_per_second: sample.requests_per_second,
                        p50_ms: sample.p50_ms,
                        p99_ms: sample.p99_ms,
                    })
                    .collect(),
            })
            .collect();
        Self { routes }
    }
}

#[derive(Serialize, Debug, ToSchema)]
pub struct RoomsView {
    pub rooms: Vec<RoomView>,
    pub routes: Vec<RouteView>,
}

#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomSampleView {
    pub at: Option<String>,
    pub waiting: u64,
    pub active: u64,
    pub admitted_per_second: f64,
    pub dropped_per_second: f64,
}

#[derive(Serialize, Debug, ToSchema)]
pub struct RoomHistoryView {
    #[schema(value_type = String, pattern = "^(default|concert-[1-9][0-9]{0,14})$", example = "default")]
    pub room: RoomName,
    pub samples: Vec<RoomSampleView>,
}

impl From<queue::RoomHistory> for RoomHistoryView {
    /// Rates from consecutive totals: each sample after the first says how fast the line moved
    /// since the one before it.
    fn from(history: queue::RoomHistory) -> Self {
        let samples = history
            .samples
            .windows(2)
            .map(|pair| {
                let (before, after) = (&pair[0], &pair[1]);
                let seconds = (after.at_unix_ms - before.at_unix_ms) as f64 / 1000.0;
                let rate = |from: u64, to: u64| {
                    if seconds > 0.0 {
                        to.saturating_sub(from) as f64 / seconds
                    } else {
                        0.0
                    }
                };
                RoomSampleView {
                    at: rfc3339(after.at_unix_ms),
                    waiting: after.waiting,
                    active: after.active,
                    admitted_per_second: rate(before.admitted_total, after.admitted_total),
                    dropped_per_second: rate(before.dropped_total, after.dropped_total),
                }
            })
            .collect();
        Self {
            room: RoomName(history.concert_id),
            samples,
        }
    }
}

/// The queue's highest admission rate (queue::settings::MAX_ADMISSION_RATE), checked here so
/// that what the queue still refuses is a conflict with the room's other settings.
const MAX_ADMISSION_RATE: f64 = 100_000.0;

/// What `PATCH /admin/rooms/{room}` may change; fields left out stay as they are.
#[derive(Deserialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default, deserialize_with = "crate::extract::not_null")]
    #[schema(nullable = false)]
    pub paused: Option<bool>,
    /// Waiters admitted per second (0: no rate limit, the cap only).
    #[serde(default, deserialize_with = "crate::extract::not_null")]
    #[schema(nullable = false, minimum = 0, maximum = 100_000)]
    pub admission_rate: Option<f64>,
    /// Most users active at once in the room.
    #[serde(default, deserialize_with = "crate::extract::not_null")]
    #[schema(nullable = false, minimum = 0, maximum = 4_294_967_295_i64)]
    pub active_cap: Option<i64>,
}

impl SettingsPatch {
    /// The queue's request, checked: something to change, a rate that is a number ≥ 0, a cap
    /// that fits.
    pub fn into_request(
        self,
        room: RoomName,
        actor: String,
    ) -> Result<queue::UpdateRoomSettingsRequest, ApiError> {
        if self.paused.is_none() && self.admission_rate.is_none() && self.active_cap.is_none() {
            return Err(ApiError::bad_request(
                "INVALID_BODY",
                "send at least one of paused, admissionRate, activeCap",
            ));
        }
        if self
            .admission_rate
            .is_some_and(|rate| !rate.is_finite() || !(0.0..=MAX_ADMISSION_RATE).contains(&rate))
        {
            return Err(ApiError::bad_request(
                "INVALID_ROOM_SETTINGS",
                "admissionRate must be a number from 0 to 100000 (0: no rate limit, the cap only)",
            ));
        }
        if self.admission_rate == Some(0.0) && self.active_cap == Some(0) {
            return Err(ApiError::bad_request(
                "INVALID_ROOM_SETTINGS",
                "admissionRate 0 and activeCap 0 together would admit everyone at once",
            ));
        }
        let active_cap = self
            .active_cap
            .map(|cap| {
                u32::try_from(cap).map_err(|_| {
                    ApiError::bad_request(
                        "INVALID_ROOM_SETTINGS",
                        format!("activeCap must be an integer from 0 to {}", u32::MAX),
                    )
                })
            })
            .transpose()?;
        Ok(queue::UpdateRoomSettingsRequest {
            concert_id: room.0,
            paused: self.paused,
            admission_rate: self.admission_rate,
            active_cap,
            actor,
            ..Default::default()
        })
    }
}

#[derive(Serialize, Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeView {
    pub at: Option<String>,
    pub actor: String,
    #[schema(value_type = String, pattern = "^(default|concert-[1-9][0-9]{0,14})$", example = "default")]
    pub room: RoomName,
    pub paused: Option<bool>,
    pub admission_rate: Option<f64>,
    pub active_cap: Option<u32>,
}

impl From<queue::SettingChange> for ChangeView {
    fn from(change: queue::SettingChange) -> Self {
        Self {
            at: rfc3339(change.at_unix_ms),
            actor: change.actor,
            room: RoomName(change.concert_id),
            paused: change.paused,
            admission_rate: change.admission_rate,
            active_cap: change.active_cap,
        }
    }
}

#[derive(Serialize, Debug, ToSchema)]
pub struct ChangesView {
    pub changes: Vec<ChangeView>,
}

/// What revoking a queue token did.
#[derive(Serialize, Debug, ToSchema)]
pub struct RevokedView {
    #[schema(format = "uuid")]
    pub token: String,
    /// False when the token was already gone (released, expired, dropped or revoked).
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_default_or_a_concerts_own_and_round_trip() {
        assert_eq!(RoomName::parse("default").map(|r| r.0).ok(), Some(None));
        assert_eq!(
            RoomName::parse("concert-7").map(|r| r.0).ok(),
            Some(Some(7))
        );
        assert_eq!(RoomName(Some(7)).to_string(), "concert-7");
        assert_eq!(RoomName(None).to_string(), "default");
        for bad in [
            "",
            "Default",
            "concert-",
            "concert-0",
            "concert--1",
            "concert-x",
            "7",
        ] {
            let error = RoomName::parse(bad).err();
            assert_eq!(error.map(|e| e.code), Some("INVALID_ROOM".into()), "{bad}");
        }
    }

    #[test]
    fn history_rates_come_from_consecutive_totals() {
        let sample = |at, admitted, dropped| queue::RoomSample {
            at_unix_ms: at,
            waiting: 5,
            active: 1,
            admitted_total: admitted,
            dropped_total: dropped,
        };
        let view = RoomHistoryView::from(queue::RoomHistory {
            concert_id: None,
            samples: vec![
                sample(1_000, 10, 0),
                sample(3_000, 14, 1),
                sample(3_000, 14, 1),
            ],
        });
        assert_eq!(view.samples.len(), 2);
        assert_eq!(view.samples[0].admitted_per_second, 2.0);
        assert_eq!(view.samples[0].dropped_per_second, 0.5);
        assert_eq!(view.samples[1].admitted_per_second, 0.0, "no time, no rate");
    }

    #[test]
    fn a_patch_must_change_something_with_a_usable_rate_and_cap() {
        let patch = |paused, rate, cap| SettingsPatch {
            paused,
            admission_rate: rate,
            active_cap: cap,
        };
        let code = |patch: SettingsPatch| {
            patch
                .into_request(RoomName(None), "a".into())
                .err()
                .map(|e| e.code.into_owned())
        };
        assert_eq!(
            code(patch(None, None, None)).as_deref(),
            Some("INVALID_BODY")
        );
        assert_eq!(
            code(patch(None, Some(-1.0), None)).as_deref(),
            Some("INVALID_ROOM_SETTINGS")
        );
        assert_eq!(
            code(patch(None, Some(f64::NAN), None)).as_deref(),
            Some("INVALID_ROOM_SETTINGS")
        );
        assert_eq!(
            code(patch(None, None, Some(-1))).as_deref(),
            Some("INVALID_ROOM_SETTINGS")
        );
        let request = patch(Some(true), Some(2.5), Some(40))
            .into_request(RoomName(Some(3)), "user:1".into())
            .ok();
        assert_eq!(
            request,
            Some(queue::UpdateRoomSettingsRequest {
                concert_id: Some(3),
                paused: Some(true),
                admission_rate: Some(2.5),
                active_cap: Some(40),
                actor: "user:1".into(),
                ..Default::default()
            })
        );
    }
}
