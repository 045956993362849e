//! What `PATCH /admin/rooms/{room}` takes, checked and turned into the queue's request.

use serde::Deserialize;
use ticketing_proto::queue::v1 as queue;
use utoipa::ToSchema;

use super::views::RoomName;
use crate::{error::ApiError, wire::unix_ms_of_rfc3339};

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
    /// Schedules when joining opens, into the pre-queue (RFC 3339, after 1970; the room needs
    /// an `opensAt` after it); before it, joining is refused (409 `ROOM_NOT_OPEN`). `null`
    /// clears it.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub prequeue_opens_at: Option<Option<String>>,
    /// Schedules the opening (RFC 3339, after `prequeueOpensAt`): the pre-queue is put in a
    /// uniformly random order, ahead of later joiners, and admission starts. `null` clears it.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub opens_at: Option<Option<String>>,
}

/// A schedule field of a patch as the queue takes it: unchanged (None), cleared (0), or the
/// instant in unix milliseconds; a 400 naming the field when it is not an instant.
fn schedule_ms(field: &str, value: Option<Option<String>>) -> Result<Option<i64>, ApiError> {
    match value {
        None => Ok(None),
        Some(None) => Ok(Some(0)),
        Some(Some(text)) => unix_ms_of_rfc3339(&text).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_ROOM_SETTINGS",
                format!(
                    "{field} must be an RFC 3339 date-time after 1970 with its offset, e.g. \
                     2027-01-15T10:00:00Z or 2027-01-15T11:00:00+01:00 (null clears it)"
                ),
            )
        }),
    }
}

impl SettingsPatch {
    /// The queue's request, checked: something to change, a rate that is a number ≥ 0, a cap
    /// that fits.
    pub fn into_request(
        self,
        room: RoomName,
        actor: String,
    ) -> Result<queue::UpdateRoomSettingsRequest, ApiError> {
        if self.paused.is_none()
            && self.admission_rate.is_none()
            && self.active_cap.is_none()
            && self.prequeue_opens_at.is_none()
            && self.opens_at.is_none()
        {
            return Err(ApiError::bad_request(
                "INVALID_BODY",
                "send at least one of paused, admissionRate, activeCap, prequeueOpensAt, opensAt",
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
        let prequeue_opens_at = schedule_ms("prequeueOpensAt", self.prequeue_opens_at)?;
        let opens_at = schedule_ms("opensAt", self.opens_at)?;
        // Both in this patch: a wrong order, or a pre-queue with its opening cleared, is the
        // patch's own fault (400). One of them against the room's other is the queue's to
        // check (409, as for rate and cap).
        if let (Some(prequeue), Some(opens)) = (prequeue_opens_at, opens_at) {
            if prequeue > 0 && opens > 0 && opens <= prequeue {
                return Err(ApiError::bad_request(
                    "INVALID_ROOM_SETTINGS",
                    "opensAt must be after prequeueOpensAt: the pre-queue opens first",
                ));
            }
            if prequeue > 0 && opens == 0 {
                return Err(ApiError::bad_request(
                    "INVALID_ROOM_SETTINGS",
                    "a pre-queue needs an opening: prequeueOpensAt without opensAt",
                ));
            }
        }
        Ok(queue::UpdateRoomSettingsRequest {
            concert_id: room.0,
            paused: self.paused,
            admission_rate: self.admission_rate,
            active_cap,
            actor,
            prequeue_opens_at_unix_ms: prequeue_opens_at,
            opens_at_unix_ms: opens_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_must_change_something_with_a_usable_rate_and_cap() {
        let patch = |paused, rate, cap| SettingsPatch {
            paused,
            admission_rate: rate,
            active_cap: cap,
            prequeue_opens_at: None,
            opens_at: None,
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

    #[test]
    fn a_schedule_is_set_as_unix_ms_cleared_as_0_and_refused_when_not_an_instant_or_out_of_order() {
        let schedule = |body: &str| {
            serde_json::from_str::<SettingsPatch>(body)
                .map_err(|e| e.to_string())
                .and_then(|patch| {
                    patch
                        .into_request(RoomName(Some(3)), "a".into())
                        .map_err(|e| e.code.into_owned())
                })
                .map(|r| (r.prequeue_opens_at_unix_ms, r.opens_at_unix_ms))
        };
        assert_eq!(
            schedule(
                r#"{"prequeueOpensAt": "2027-01-15T08:00:00Z", "opensAt": "2027-01-15T09:00:00+01:00"}"#
            ),
            Err("INVALID_ROOM_SETTINGS".into()),
            "the same instant is not after"
        );
        assert_eq!(
            schedule(
                r#"{"prequeueOpensAt": "2027-01-15T08:00:00Z", "opensAt": "2027-01-15T08:00:00.001Z"}"#
            ),
            Ok((Some(1_800_000_000_000), Some(1_800_000_000_001)))
        );
        assert_eq!(
            schedule(r#"{"prequeueOpensAt": null, "opensAt": null}"#),
            Ok((Some(0), Some(0)))
        );
        assert_eq!(
            schedule(r#"{"prequeueOpensAt": null, "opensAt": "2027-01-15T08:00:00Z"}"#),
            Ok((Some(0), Some(1_800_000_000_000)))
        );
        assert_eq!(
            schedule(r#"{"opensAt": "2027-01-15T08:00:00Z"}"#),
            Ok((None, Some(1_800_000_000_000)))
        );
        assert_eq!(
            schedule(r#"{"prequeueOpensAt": "2027-01-15T08:00:00Z", "opensAt": null}"#),
            Err("INVALID_ROOM_SETTINGS".into()),
            "a pre-queue that never opens"
        );
        for bad in [
            r#""soon""#,
            r#""2027-01-15T08:00""#,
            r#""1969-07-20T20:17:00Z""#,
        ] {
            assert_eq!(
                schedule(&format!(r#"{{"opensAt": {bad}}}"#)),
                Err("INVALID_ROOM_SETTINGS".into()),
                "{bad}"
            );
        }
    }
}
