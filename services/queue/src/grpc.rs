//! The gRPC edge: wire requests in (`TryFrom`, into domain types), store calls, wire responses
//! out (`From`). Nothing past this file sees a generated type.

use ticketing_proto::queue::v1::{self as pb, queue_service_server::QueueService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{AdvisedEntry, IssueToken, Room, Token, TokenStatus, UserId, ValidateToken, Verdict},
    error::QueueError,
    outflow::OutflowLimit,
    schedule::{RoomPhase, SchedulePatch},
    settings::{
        Actor, RoomFigures, RoomSample, RoomSettings, SettingChange, SettingsPatch,
        UpdateRoomSettings, changes_page,
    },
    store::QueueStore,
};

pub struct QueueGrpc {
    store: QueueStore,
}

impl QueueGrpc {
    pub fn new(store: QueueStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl QueueService for QueueGrpc {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::QueueEntry>, Status> {
        let IssueToken { user, room } = request.into_inner().try_into()?;
        let entry = self.store.issue(user, room).await?;
        Ok(Response::new(self.store.policy().advise(entry).into()))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::QueueEntry>, Status> {
        let token = Token::parse(&request.into_inner().token)?;
        let entry = self.store.status(token).await?;
        Ok(Response::new(self.store.policy().advise(entry).into()))
    }

    async fn validate_token(
        &self,
        request: Request<pb::ValidateTokenRequest>,
    ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
        let ValidateToken { token, user } = request.into_inner().try_into()?;
        let verdict = self.store.validate(token, user).await?;
        Ok(Response::new(verdict.into()))
    }

    async fn release_token(
        &self,
        request: Request<pb::ReleaseTokenRequest>,
    ) -> Result<Response<pb::ReleaseTokenResponse>, Status> {
        let token = Token::parse(&request.into_inner().token)?;
        let released = self.store.release(token).await?;
        Ok(Response::new(pb::ReleaseTokenResponse { released }))
    }

    async fn list_rooms(
        &self,
        request: Request<pb::ListRoomsRequest>,
    ) -> Result<Response<pb::ListRoomsResponse>, Status> {
        let requested = request
            .into_inner()
            .concert_ids
            .into_iter()
            .map(|id| Room::new(Some(id)))
            .collect::<Result<Vec<_>, _>>()?;
        let rooms = self.store.list_rooms(&requested).await?;
        Ok(Response::new(pb::ListRoomsResponse {
            rooms: rooms.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_room_history(
        &self,
        request: Request<pb::GetRoomHistoryRequest>,
    ) -> Result<Response<pb::RoomHistory>, Status> {
        let room = Room::new(request.into_inner().concert_id)?;
        let samples = self.store.room_history(room).await?;
        Ok(Response::new(pb::RoomHistory {
            concert_id: room.concert_id(),
            samples: samples.into_iter().map(Into::into).collect(),
        }))
    }

    async fn update_room_settings(
        &self,
        request: Request<pb::UpdateRoomSettingsRequest>,
    ) -> Result<Response<pb::RoomFigures>, Status> {
        let UpdateRoomSettings { room, patch, actor } = request.into_inner().try_into()?;
        let figures = self.store.update_settings(room, &patch, &actor).await?;
        Ok(Response::new(figures.into()))
    }

    async fn list_setting_changes(
        &self,
        request: Request<pb::ListSettingChangesRequest>,
    ) -> Result<Response<pb::ListSettingChangesResponse>, Status> {
        let limit = changes_page(request.into_inner().limit);
        let changes = self.store.setting_changes(limit).await?;
        Ok(Response::new(pb::ListSettingChangesResponse {
            changes: changes.into_iter().map(Into::into).collect(),
        }))
    }
}

impl TryFrom<pb::IssueTokenRequest> for IssueToken {
    type Error = QueueError;

    fn try_from(request: pb::IssueTokenRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            user: UserId::new(request.user_id)?,
            room: Room::new(request.concert_id)?,
        })
    }
}

impl TryFrom<pb::ValidateTokenRequest> for ValidateToken {
    type Error = QueueError;

    fn try_from(request: pb::ValidateTokenRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            token: Token::parse(&request.token)?,
            user: UserId::new(request.user_id)?,
        })
    }
}

impl TryFrom<pb::UpdateRoomSettingsRequest> for UpdateRoomSettings {
    type Error = QueueError;

    fn try_from(request: pb::UpdateRoomSettingsRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            room: Room::new(request.concert_id)?,
            patch: SettingsPatch::with_schedule(
                request.paused,
                request.admission_rate,
                request.active_cap,
                SchedulePatch {
                    prequeue_opens_at_ms: request.prequeue_opens_at_unix_ms.map(set_or_clear),
                    opens_at_ms: request.opens_at_unix_ms.map(set_or_clear),
                },
            )?,
            actor: Actor::new(request.actor)?,
        })
    }
}

/// A scheduled instant on the wire: 0 clears it.
fn set_or_clear(unix_ms: i64) -> Option<i64> {
    (unix_ms != 0).then_some(unix_ms)
}

impl From<AdvisedEntry> for pb::QueueEntry {
    fn from(AdvisedEntry { entry, poll_after }: AdvisedEntry) -> Self {
        let mut wire = Self {
            token: entry.token.to_string(),
            user_id: entry.user.get(),
            concert_id: entry.room.concert_id(),
            poll_after_ms: u64::try_from(poll_after.as_millis()).unwrap_or(u64::MAX),
            ..Self::default()
        };
        match entry.status {
            TokenStatus::Waiting {
                position,
                eta_seconds,
                paused,
            } => {
                wire.set_status(pb::TokenStatus::Waiting);
                (wire.position, wire.eta_seconds, wire.paused) = (position, eta_seconds, paused);
            }
            TokenStatus::Active {
                until_unix_ms,
                choose_by_unix_ms,
            } => {
                wire.set_status(pb::TokenStatus::Active);
                wire.active_until_unix_ms = Some(until_unix_ms);
                wire.choose_by_unix_ms = choose_by_unix_ms;
            }
            TokenStatus::Prequeue {
                opens_at_unix_ms, ..
            } => {
                wire.set_status(pb::TokenStatus::Prequeue);
                wire.opens_at_unix_ms = Some(opens_at_unix_ms);
            }
            TokenStatus::SoldOut {
                position,
                seats_may_return,
            } => {
                wire.set_status(pb::TokenStatus::SoldOut);
                (wire.position, wire.seats_may_return) = (position, seats_may_return);
            }
        }
        wire
    }
}

impl From<RoomSettings> for pb::RoomSettings {
    fn from(settings: RoomSettings) -> Self {
        Self {
            paused: settings.paused,
            admission_rate: settings.admission_rate,
            active_cap: settings.active_cap,
            prequeue_opens_at_unix_ms: settings.schedule.prequeue_opens_at_ms,
            opens_at_unix_ms: settings.schedule.opens_at_ms,
        }
    }
}

impl From<RoomPhase> for pb::RoomPhase {
    fn from(phase: RoomPhase) -> Self {
        match phase {
            RoomPhase::Open => Self::Open,
            RoomPhase::NotOpen => Self::NotOpen,
            RoomPhase::Prequeue => Self::Prequeue,
        }
    }
}

impl From<OutflowLimit> for pb::OutflowLimit {
    fn from(limit: OutflowLimit) -> Self {
        match limit {
            OutflowLimit::None => Self::None,
            OutflowLimit::Paused => Self::Paused,
            OutflowLimit::NotOpen => Self::NotOpen,
            OutflowLimit::SoldOut => Self::SoldOut,
            OutflowLimit::HoldLatency => Self::HoldLatency,
            OutflowLimit::HoldsInFlight => Self::HoldsInFlight,
            OutflowLimit::ReservationUnreachable => Self::ReservationUnreachable,
            OutflowLimit::Recovering => Self::Recovering,
        }
    }
}

impl From<RoomFigures> for pb::RoomFigures {
    fn from(figures: RoomFigures) -> Self {
        Self {
            concert_id: figures.room.concert_id(),
            settings: Some(figures.settings.into()),
            waiting: figures.waiting,
            active: figures.active,
            admitted_per_second: figures.admitted_per_second,
            dropped_per_second: figures.dropped_per_second,
            wait_at_back_seconds: figures.wait_at_back_seconds,
            admitted_total: figures.admitted_total,
            dropped_total: figures.dropped_total,
            settings_overridden: figures.overridden,
            phase: pb::RoomPhase::from(figures.phase).into(),
            admission_rate_in_effect: figures.in_effect.admission_rate,
            active_cap_in_effect: figures.in_effect.active_cap,
            outflow_limit: pb::OutflowLimit::from(figures.in_effect.limit).into(),
            outflow_detail: figures.in_effect.detail,
            seats: figures.seats.map(|seats| pb::RoomSeats {
                free: seats.free,
                held: seats.held,
                sold: seats.sold,
            }),
            idled_total: figures.idled_total,
        }
    }
}

impl From<RoomSample> for pb::RoomSample {
    fn from(sample: RoomSample) -> Self {
        Self {
            at_unix_ms: sample.at_unix_ms,
            waiting: sample.waiting,
            active: sample.active,
            admitted_total: sample.admitted_total,
            dropped_total: sample.dropped_total,
        }
    }
}

impl From<SettingChange> for pb::SettingChange {
    fn from(change: SettingChange) -> Self {
        Self {
            at_unix_ms: change.at_unix_ms,
            actor: change.actor.as_str().to_owned(),
            concert_id: change.room.concert_id(),
            paused: change.patch.paused(),
            admission_rate: change.patch.admission_rate(),
            active_cap: change.patch.active_cap(),
            prequeue_opens_at_unix_ms: change
                .patch
                .schedule()
                .prequeue_opens_at_ms
                .map(|ms| ms.unwrap_or(0)),
            opens_at_unix_ms: change
                .patch
                .schedule()
                .opens_at_ms
                .map(|ms| ms.unwrap_or(0)),
        }
    }
}

impl From<Verdict> for pb::ValidateTokenResponse {
    fn from(verdict: Verdict) -> Self {
        let (verdict, active_until_unix_ms, concert_id) = match verdict {
            Verdict::Valid {
                until_unix_ms,
                room,
            } => (
                pb::TokenVerdict::Valid,
                Some(until_unix_ms),
                room.concert_id(),
            ),
            Verdict::NotFound => (pb::TokenVerdict::NotFound, None, None),
            Verdict::Expired => (pb::TokenVerdict::Expired, None, None),
            Verdict::NotAdmitted => (pb::TokenVerdict::NotAdmitted, None, None),
            Verdict::WrongUser => (pb::TokenVerdict::WrongUser, None, None),
        };
        Self {
            verdict: verdict.into(),
            active_until_unix_ms,
            concert_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::QueueEntry;

    fn entry(room: Room, status: TokenStatus) -> AdvisedEntry {
        AdvisedEntry {
            entry: QueueEntry {
                token: Token::random(room),
                user: UserId::new(7).unwrap(),
                room,
                status,
            },
            poll_after: Duration::from_millis(2_500),
        }
    }

    #[test]
    fn a_waiting_entry_goes_on_the_wire_with_its_place_its_concert_and_the_poll_advice() {
        let advised = entry(
            Room::Concert(9),
            TokenStatus::Waiting {
                position: 3,
                eta_seconds: 12,
                paused: true,
            },
        );
        let wire = pb::QueueEntry::from(advised);
        assert_eq!(wire.token, advised.entry.token.to_string());
        assert_eq!(wire.status(), pb::TokenStatus::Waiting);
        assert_eq!((wire.position, wire.eta_seconds), (3, 12));
        assert_eq!(wire.active_until_unix_ms, None);
        assert_eq!((wire.user_id, wire.concert_id), (7, Some(9)));
        assert_eq!(wire.poll_after_ms, 2_500);
        assert!(wire.paused);
    }

    #[test]
    fn an_active_entry_in_the_default_room_goes_on_the_wire_with_its_expiry_and_no_concert() {
        let wire = pb::QueueEntry::from(entry(
            Room::Default,
            TokenStatus::Active {
                until_unix_ms: 42,
                choose_by_unix_ms: None,
            },
        ));
        assert_eq!(wire.status(), pb::TokenStatus::Active);
        assert_eq!((wire.position, wire.eta_seconds), (0, 0));
        assert_eq!(wire.active_until_unix_ms, Some(42));
        assert_eq!(wire.concert_id, None);
        assert!(!wire.paused);
    }

    #[test]
    fn only_a_valid_verdict_carries_an_expiry_and_a_concert() {
        let valid = pb::ValidateTokenResponse::from(Verdict::Valid {
            until_unix_ms: 42,
            room: Room::Concert(9),
        });
        assert_eq!(valid.verdict(), pb::TokenVerdict::Valid);
        assert_eq!(
            (valid.active_until_unix_ms, valid.concert_id),
            (Some(42), Some(9))
        );
        for (verdict, wire) in [
            (Verdict::NotFound, pb::TokenVerdict::NotFound),
            (Verdict::Expired, pb::TokenVerdict::Expired),
            (Verdict::NotAdmitted, pb::TokenVerdict::NotAdmitted),
            (Verdict::WrongUser, pb::TokenVerdict::WrongUser),
        ] {
            let response = pb::ValidateTokenResponse::from(verdict);
            assert_eq!(response.verdict(), wire);
            assert_eq!(
                (response.active_until_unix_ms, response.concert_id),
                (None, None)
            );
        }
    }
}
