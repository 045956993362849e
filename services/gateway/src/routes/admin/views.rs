//! The operator's API on the wire: rooms as `default` / `concert-{id}`, figures, settings and
//! the change log as JSON, made from the backends' messages.

use serde::Serialize;
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

/// Where a room's schedule stands.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RoomPhase {
    /// Admitting as the settings allow (a room without a schedule, or one past its opening).
    Open,
    /// Scheduled, before `prequeueOpensAt`: joining is refused (409 `ROOM_NOT_OPEN`).
    NotOpen,
    /// Scheduled, pre-queue open: joiners are put in a random order at `opensAt`.
    Prequeue,
}

impl From<queue::RoomPhase> for RoomPhase {
    fn from(phase: queue::RoomPhase) -> Self {
        match phase {
            queue::RoomPhase::NotOpen => Self::NotOpen,
            queue::RoomPhase::Prequeue => Self::Prequeue,
            // Unspecified: a queue that knows no schedules, whose rooms are always open.
            queue::RoomPhase::Open | queue::RoomPhase::Unspecified => Self::Open,
        }
    }
}

/// What holds admission below the room's configured rate (or cap), if anything.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OutflowLimit {
    /// At the configured rate: nothing holds it back.
    None,
    /// An operator paused admission.
    Paused,
    /// The room's scheduled opening has not come.
    NotOpen,
    /// No seat of the concert is free.
    SoldOut,
    /// The reservation service's holds are slow: the rate was lowered.
    HoldLatency,
    /// Too many holds in flight at the reservation service: the rate was lowered.
    HoldsInFlight,
    /// The reservation service did not answer: the rate was lowered.
    ReservationUnreachable,
    /// The reservation service copes again: the rate climbs back to the configured one.
    Recovering,
}

impl OutflowLimit {
    fn of(limit: queue::OutflowLimit) -> Option<Self> {
        Some(match limit {
            queue::OutflowLimit::Unspecified => return None,
            queue::OutflowLimit::None => Self::None,
            queue::OutflowLimit::Paused => Self::Paused,
            queue::OutflowLimit::NotOpen => Self::NotOpen,
            queue::OutflowLimit::SoldOut => Self::SoldOut,
            queue::OutflowLimit::HoldLatency => Self::HoldLatency,
            queue::OutflowLimit::HoldsInFlight => Self::HoldsInFlight,
            queue::OutflowLimit::ReservationUnreachable => Self::ReservationUnreachable,
            queue::OutflowLimit::Recovering => Self::Recovering,
        })
    }
}

/// The seats of the room's concert, as the queue's admitter last counted them.
#[derive(Serialize, Debug, PartialEq, Eq, ToSchema)]
pub struct RoomSeatsView {
    pub free: u32,
    /// Held by fans who have not paid yet: they come back if the hold runs out.
    pub held: u32,
    pub sold: u32,
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
    pub phase: RoomPhase,
    /// When joining opens, into the pre-queue (absent: no scheduled pre-queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub prequeue_opens_at: Option<String>,
    /// When the pre-queue's order is drawn and admission starts (absent: not scheduled).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub opens_at: Option<String>,
    /// Admissions per second the admitter applies now: at most `settings.admissionRate`.
    pub admission_rate_in_effect: f64,
    /// The active cap the admitter applies now: at most `settings.activeCap` when it has one.
    pub active_cap_in_effect: u32,
    /// Why the rate in effect is below the configured one (`none`: it is not).
    pub outflow_limit: OutflowLimit,
    /// The queue's one line on it, e.g. `hold latency 420 ms over the 250 ms target`; empty
    /// when there is nothing to say.
    pub outflow_detail: String,
    /// The room's concert's seats as the admitter last saw them (absent for the default room,
    /// or before the admitter has asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub seats: Option<RoomSeatsView>,
    pub waiting: u64,
    pub active: u64,
    pub admitted_per_second: f64,
    pub dropped_per_second: f64,
    pub wait_at_back_seconds: u64,
    pub admitted_total: u64,
    pub dropped_total: u64,
    /// Admitted users who gave their slot back by doing nothing for the idle limit.
    pub idled_total: u64,
    /// The options of every concert that waits in this room.
    pub options: Vec<OptionSalesView>,
}

impl RoomView {
    pub fn new(figures: queue::RoomFigures, title: Option<String>) -> Self {
        let settings = figures.settings.unwrap_or_default();
        let phase = RoomPhase::from(figures.phase());
        // A queue that does not report the outflow in effect (older than the field) admits at
        // its settings: say that, rather than a rate of 0 nobody set.
        let (outflow_limit, admission_rate_in_effect, active_cap_in_effect) =
            match OutflowLimit::of(figures.outflow_limit()) {
                Some(limit) => (
                    limit,
                    figures.admission_rate_in_effect,
                    figures.active_cap_in_effect,
                ),
                None if settings.paused => (
                    OutflowLimit::Paused,
                    settings.admission_rate,
                    settings.active_cap,
                ),
                None => (
                    OutflowLimit::None,
                    settings.admission_rate,
                    settings.active_cap,
                ),
            };
        let scheduled = |unix_ms: Option<i64>| unix_ms.filter(|ms| *ms > 0).and_then(rfc3339);
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
            phase,
            prequeue_opens_at: scheduled(settings.prequeue_opens_at_unix_ms),
            opens_at: scheduled(settings.opens_at_unix_ms),
            admission_rate_in_effect,
            active_cap_in_effect,
            outflow_limit,
            outflow_detail: figures.outflow_detail,
            seats: figures.seats.map(|seats| RoomSeatsView {
                free: seats.free,
                held: seats.held,
                sold: seats.sold,
            }),
            waiting: figures.waiting,
            active: figures.active,
            admitted_per_second: figures.admitted_per_second,
            dropped_per_second: figures.dropped_per_second,
            wait_at_back_seconds: figures.wait_at_back_seconds,
            admitted_total: figures.admitted_total,
            dropped_total: figures.dropped_total,
            idled_total: figures.idled_total,
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
    /// Present when the change scheduled the pre-queue's opening; `null` when it cleared it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub prequeue_opens_at: Option<Option<String>>,
    /// Present when the change scheduled the opening; `null` when it cleared it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub opens_at: Option<Option<String>>,
}

/// A schedule field of a change: not changed (None), cleared (0: Some(None)), or set.
fn changed_schedule(unix_ms: Option<i64>) -> Option<Option<String>> {
    unix_ms.map(|ms| if ms > 0 { rfc3339(ms) } else { None })
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
            prequeue_opens_at: changed_schedule(change.prequeue_opens_at_unix_ms),
            opens_at: changed_schedule(change.opens_at_unix_ms),
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
    fn a_change_log_entry_shows_a_schedule_set_cleared_or_not_at_all() {
        let view = ChangeView::from(queue::SettingChange {
            at_unix_ms: 1_800_000_000_000,
            actor: "a".into(),
            prequeue_opens_at_unix_ms: Some(0),
            opens_at_unix_ms: Some(1_800_000_000_000),
            ..Default::default()
        });
        let json = serde_json::to_value(&view).unwrap_or_default();
        assert_eq!(json["prequeueOpensAt"], serde_json::Value::Null);
        assert!(
            json.get("prequeueOpensAt").is_some(),
            "cleared is null: {json}"
        );
        assert_eq!(json["opensAt"], "2027-01-15T08:00:00Z");
        let untouched = serde_json::to_value(ChangeView::from(queue::SettingChange {
            paused: Some(true),
            ..Default::default()
        }))
        .unwrap_or_default();
        assert!(untouched.get("opensAt").is_none(), "{untouched}");
        assert!(untouched.get("prequeueOpensAt").is_none(), "{untouched}");
    }

    #[test]
    fn a_room_from_a_queue_that_reports_no_outflow_admits_at_its_settings() {
        let figures = queue::RoomFigures {
            settings: Some(queue::RoomSettings {
                paused: true,
                admission_rate: 10.0,
                active_cap: 50,
                ..Default::default()
            }),
            ..Default::default()
        };
        let view = RoomView::new(figures, None);
        assert_eq!(view.phase, RoomPhase::Open);
        assert_eq!(view.outflow_limit, OutflowLimit::Paused);
        assert_eq!(
            (view.admission_rate_in_effect, view.active_cap_in_effect),
            (10.0, 50)
        );
        assert_eq!((view.prequeue_opens_at, view.opens_at), (None, None));
        let told = RoomView::new(
            queue::RoomFigures {
                settings: Some(queue::RoomSettings {
                    admission_rate: 10.0,
                    opens_at_unix_ms: Some(1_800_000_000_000),
                    ..Default::default()
                }),
                phase: queue::RoomPhase::Prequeue.into(),
                admission_rate_in_effect: 3.5,
                outflow_limit: queue::OutflowLimit::HoldLatency.into(),
                outflow_detail: "hold latency 420 ms over the 250 ms target".into(),
                seats: Some(queue::RoomSeats {
                    free: 0,
                    held: 1,
                    sold: 49,
                }),
                ..Default::default()
            },
            None,
        );
        assert_eq!(told.phase, RoomPhase::Prequeue);
        assert_eq!(told.outflow_limit, OutflowLimit::HoldLatency);
        assert_eq!(told.admission_rate_in_effect, 3.5);
        assert_eq!(told.opens_at.as_deref(), Some("2027-01-15T08:00:00Z"));
        let json = serde_json::to_value(&told).unwrap_or_default();
        assert_eq!(json["outflowLimit"], "hold-latency");
        assert_eq!(json["phase"], "prequeue");
        assert_eq!(
            json["seats"],
            serde_json::json!({"free": 0, "held": 1, "sold": 49})
        );
        assert!(json.get("prequeueOpensAt").is_none(), "{json}");
    }
}
