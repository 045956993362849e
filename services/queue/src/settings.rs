//! The operator's side of a room: the settings in effect and the rule they keep, a change to
//! them and its log entry, and the figures and history the console shows.

use crate::{
    domain::Room,
    error::QueueError,
    policy::Policy,
    schedule::{RoomPhase, Schedule, SchedulePatch, ScheduleRule},
};

/// The highest admission rate (per second) a room may be set to.
pub const MAX_ADMISSION_RATE: f64 = 100_000.0;
/// Most characters of an actor's name in the change log.
pub const MAX_ACTOR_LEN: usize = 200;

/// What a room's rate and cap must satisfy, configured or an operator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsRule {
    #[error("the admission rate must be a finite number from 0 to 100000 per second")]
    RateOutOfRange,
    #[error(
        "an admission rate or an active cap is needed: with neither, everyone is admitted at \
         once and nobody ever waits"
    )]
    NeitherRateNorCap,
    #[error(transparent)]
    Schedule(#[from] ScheduleRule),
}

/// Checks a rate (per second, 0 = no rate limit) and a cap (0 = no cap) against the rule.
pub fn check_rate(admission_rate: f64) -> Result<(), SettingsRule> {
    if admission_rate.is_finite() && (0.0..=MAX_ADMISSION_RATE).contains(&admission_rate) {
        Ok(())
    } else {
        Err(SettingsRule::RateOutOfRange)
    }
}

/// Checks a rate and a cap together: each in range, and not both "none".
pub fn check_rate_and_cap(admission_rate: f64, active_cap: u32) -> Result<(), SettingsRule> {
    check_rate(admission_rate)?;
    if admission_rate == 0.0 && active_cap == 0 {
        return Err(SettingsRule::NeitherRateNorCap);
    }
    Ok(())
}

impl From<SettingsRule> for QueueError {
    fn from(rule: SettingsRule) -> Self {
        QueueError::invalid("INVALID_ROOM_SETTINGS", rule.to_string())
    }
}

/// A room's settings in effect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoomSettings {
    /// Admits nobody while true (expiry and the heartbeat sweep go on).
    pub paused: bool,
    /// Admissions per second; 0 = no rate limit.
    pub admission_rate: f64,
    /// Most active users at once; 0 = no cap.
    pub active_cap: u32,
    pub schedule: Schedule,
}

impl RoomSettings {
    /// The settings of a room no operator has touched.
    pub fn configured(policy: &Policy) -> Self {
        Self {
            paused: false,
            admission_rate: policy.admission_rate,
            active_cap: policy.active_cap,
            schedule: Schedule::default(),
        }
    }
}

/// An operator's change to a room's settings: only the fields present change. Never empty,
/// and a rate present is in range (the merged settings are checked against the room's when
/// the change is applied).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SettingsPatch {
    paused: Option<bool>,
    admission_rate: Option<f64>,
    active_cap: Option<u32>,
    schedule: SchedulePatch,
}

impl SettingsPatch {
    pub fn new(
        paused: Option<bool>,
        admission_rate: Option<f64>,
        active_cap: Option<u32>,
    ) -> Result<Self, QueueError> {
        Self::with_schedule(paused, admission_rate, active_cap, SchedulePatch::default())
    }

    /// As [`SettingsPatch::new`], changing the schedule too.
    pub fn with_schedule(
        paused: Option<bool>,
        admission_rate: Option<f64>,
        active_cap: Option<u32>,
        schedule: SchedulePatch,
    ) -> Result<Self, QueueError> {
        if paused.is_none()
            && admission_rate.is_none()
            && active_cap.is_none()
            && schedule.is_empty()
        {
            return Err(QueueError::invalid(
                "INVALID_ROOM_SETTINGS",
                "nothing to change: give paused, an admission rate, an active cap or a schedule",
            ));
        }
        if let Some(rate) = admission_rate {
            check_rate(rate)?;
        }
        for instant in [schedule.prequeue_opens_at_ms, schedule.opens_at_ms]
            .into_iter()
            .flatten()
            .flatten()
        {
            if instant <= 0 {
                return Err(SettingsRule::from(ScheduleRule::InstantOutOfRange).into());
            }
        }
        Ok(Self {
            paused,
            // -0 is 0 (no rate limit), and is stored and shown as such.
            admission_rate: admission_rate.map(|rate| if rate == 0.0 { 0.0 } else { rate }),
            active_cap,
            schedule,
        })
    }

    pub fn schedule(&self) -> SchedulePatch {
        self.schedule
    }

    pub fn paused(&self) -> Option<bool> {
        self.paused
    }

    pub fn admission_rate(&self) -> Option<f64> {
        self.admission_rate
    }

    pub fn active_cap(&self) -> Option<u32> {
        self.active_cap
    }

    /// `settings` with this change made, checked against the rule.
    pub fn applied_to(&self, settings: RoomSettings) -> Result<RoomSettings, SettingsRule> {
        let merged = RoomSettings {
            paused: self.paused.unwrap_or(settings.paused),
            admission_rate: self.admission_rate.unwrap_or(settings.admission_rate),
            active_cap: self.active_cap.unwrap_or(settings.active_cap),
            schedule: self.schedule.applied_to(settings.schedule),
        };
        check_rate_and_cap(merged.admission_rate, merged.active_cap)?;
        merged.schedule.check()?;
        Ok(merged)
    }
}

/// Who made a change, as the caller verified it (`admin-token`, `user:42`): one line of
/// printable text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn new(raw: impl Into<String>) -> Result<Self, QueueError> {
        let raw = raw.into();
        if raw.trim().is_empty()
            || raw.chars().count() > MAX_ACTOR_LEN
            || raw.chars().any(char::is_control)
        {
            return Err(QueueError::invalid(
                "INVALID_ACTOR",
                format!("actor must be 1 to {MAX_ACTOR_LEN} printable characters"),
            ));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// UpdateRoomSettings, validated.
pub struct UpdateRoomSettings {
    pub room: Room,
    pub patch: SettingsPatch,
    pub actor: Actor,
}

/// One entry of the change log.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingChange {
    pub at_unix_ms: i64,
    pub actor: Actor,
    pub room: Room,
    pub patch: SettingsPatch,
}

/// How many changes the log keeps.
pub const CHANGES_KEPT: usize = 1_000;
/// How many changes a listing returns when the caller does not say.
pub const CHANGES_DEFAULT_PAGE: usize = 100;

/// How many changes to list for a requested `limit` (0 = the default page), at most all kept.
pub fn changes_page(limit: u32) -> usize {
    match usize::try_from(limit) {
        Ok(0) => CHANGES_DEFAULT_PAGE,
        Ok(limit) => limit.min(CHANGES_KEPT),
        Err(_) => CHANGES_KEPT,
    }
}

/// A room's figures now, and its settings in effect.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomFigures {
    pub room: Room,
    pub settings: RoomSettings,
    pub phase: RoomPhase,
    /// What the admitter applies now and why (see `outflow`).
    pub in_effect: crate::outflow::InEffect,
    /// The concert's seats as the admitter last saw them (none for the default room, or
    /// before it asked).
    pub seats: Option<crate::domain::RoomSeats>,
    /// Admitted users who gave their slot back by making no reservation call in time.
    pub idled_total: u64,
    /// Whether an operator has set any of the settings.
    pub overridden: bool,
    pub waiting: u64,
    pub active: u64,
    /// The measured admission outflow (the one ETAs use); 0 while paused.
    pub admitted_per_second: f64,
    /// The same kind of measure of waiters dropped for not polling.
    pub dropped_per_second: f64,
    /// The ETA of the last waiter; 0 with nobody waiting.
    pub wait_at_back_seconds: u64,
    pub admitted_total: u64,
    pub dropped_total: u64,
}

/// Samples kept per room: one a second for five minutes.
pub const HISTORY_SAMPLES: usize = 300;

/// One second of a room's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomSample {
    pub at_unix_ms: i64,
    pub waiting: u64,
    pub active: u64,
    pub admitted_total: u64,
    pub dropped_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(admission_rate: f64, active_cap: u32) -> RoomSettings {
        RoomSettings {
            paused: false,
            admission_rate,
            active_cap,
            schedule: Schedule::default(),
        }
    }

    #[test]
    fn a_rate_must_be_finite_and_from_zero_to_the_maximum() {
        for bad in [-0.5, f64::NAN, f64::INFINITY, MAX_ADMISSION_RATE + 1.0] {
            assert_eq!(check_rate(bad), Err(SettingsRule::RateOutOfRange), "{bad}");
        }
        for good in [0.0, 0.25, MAX_ADMISSION_RATE] {
            assert_eq!(check_rate(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn no_rate_and_no_cap_is_refused_either_alone_is_fine() {
        assert_eq!(
            check_rate_and_cap(0.0, 0),
            Err(SettingsRule::NeitherRateNorCap)
        );
        assert_eq!(check_rate_and_cap(0.0, 5), Ok(()));
        assert_eq!(check_rate_and_cap(5.0, 0), Ok(()));
    }

    #[test]
    fn a_patch_changes_only_its_fields_and_the_merged_result_keeps_the_rule() {
        let patch = SettingsPatch::new(Some(true), None, None).unwrap();
        assert_eq!(
            patch.applied_to(settings(10.0, 0)),
            Ok(RoomSettings {
                paused: true,
                admission_rate: 10.0,
                active_cap: 0,
                schedule: Schedule::default(),
            })
        );
        // Rate 0 is fine with a cap, refused without one.
        let no_rate = SettingsPatch::new(None, Some(0.0), None).unwrap();
        assert_eq!(
            no_rate
                .applied_to(settings(10.0, 100))
                .map(|s| s.admission_rate),
            Ok(0.0)
        );
        assert_eq!(
            no_rate.applied_to(settings(10.0, 0)),
            Err(SettingsRule::NeitherRateNorCap)
        );
        let negative_zero = SettingsPatch::new(None, Some(-0.0), None).unwrap();
        assert!(negative_zero.admission_rate().unwrap().is_sign_positive());
    }

    #[test]
    fn an_empty_patch_or_a_rate_out_of_range_is_refused_with_the_settings_code() {
        for (paused, rate) in [
            (None, None),
            (None, Some(-1.0)),
            (Some(true), Some(f64::NAN)),
        ] {
            let Err(QueueError::InvalidArgument { code, .. }) =
                SettingsPatch::new(paused, rate, None)
            else {
                panic!("{paused:?} {rate:?} accepted");
            };
            assert_eq!(code, "INVALID_ROOM_SETTINGS");
        }
    }

    #[test]
    fn a_schedule_patch_sets_clears_or_leaves_each_instant_and_the_merge_is_checked() {
        let set = SettingsPatch::with_schedule(
            None,
            None,
            None,
            SchedulePatch {
                prequeue_opens_at_ms: Some(Some(100)),
                opens_at_ms: Some(Some(200)),
            },
        )
        .unwrap();
        let scheduled = set.applied_to(settings(10.0, 0)).unwrap();
        assert_eq!(scheduled.schedule.opens_at_ms, Some(200));
        let clear_opening = SettingsPatch::with_schedule(
            None,
            None,
            None,
            SchedulePatch {
                prequeue_opens_at_ms: None,
                opens_at_ms: Some(None),
            },
        )
        .unwrap();
        // Clearing the opening alone would leave a pre-queue without one.
        assert_eq!(
            clear_opening.applied_to(scheduled),
            Err(SettingsRule::Schedule(ScheduleRule::PrequeueWithoutOpening))
        );
        assert!(
            SettingsPatch::with_schedule(
                None,
                None,
                None,
                SchedulePatch {
                    prequeue_opens_at_ms: None,
                    opens_at_ms: Some(Some(-1)),
                }
            )
            .is_err()
        );
    }

    #[test]
    fn an_actor_is_one_line_of_printable_text_of_bounded_length() {
        assert_eq!(Actor::new("user:42").unwrap().as_str(), "user:42");
        for bad in [
            String::new(),
            "  ".into(),
            "a\tb".into(),
            "a\nb".into(),
            "x".repeat(MAX_ACTOR_LEN + 1),
        ] {
            assert!(Actor::new(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_listing_is_the_default_page_for_zero_and_never_more_than_is_kept() {
        assert_eq!(changes_page(0), CHANGES_DEFAULT_PAGE);
        assert_eq!(changes_page(7), 7);
        assert_eq!(changes_page(u32::MAX), CHANGES_KEPT);
    }
}
