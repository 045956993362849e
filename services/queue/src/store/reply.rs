//! What the token scripts answer, read into domain types.

use redis::FromRedisValue;

use crate::{domain::TokenStatus, error::QueueError};

/// The fields of a script's answer that describe a token's status.
pub(super) struct StatusFields {
    pub(super) position: u64,
    pub(super) eta: u64,
    pub(super) until: i64,
    pub(super) paused: u8,
    pub(super) opens_at: i64,
    pub(super) opens_in: i64,
    pub(super) may_return: u8,
    pub(super) choose_by: i64,
}

/// What issue.lua and status.lua answer about a token, in their order: the token (issue) or
/// the outcome (status), its state, the fields of its status, whether the store must list the
/// room, and whose token it is (status only).
pub(super) struct TokenReply {
    pub(super) head: String,
    pub(super) state: String,
    pub(super) fields: StatusFields,
    pub(super) list: u8,
    pub(super) user: Option<String>,
}

impl TokenReply {
    pub(super) fn parse(reply: Vec<redis::Value>) -> Result<Self, QueueError> {
        let mut items = reply.into_iter();
        let mut next = || -> Result<redis::Value, QueueError> {
            items
                .next()
                .ok_or_else(|| QueueError::Protocol("a token's reply is too short".into()))
        };
        fn value<T: FromRedisValue>(item: redis::Value) -> Result<T, QueueError> {
            redis::from_redis_value(item)
                .map_err(|error| QueueError::Protocol(format!("a token's reply: {error}")))
        }
        Ok(Self {
            head: value(next()?)?,
            state: value(next()?)?,
            fields: StatusFields {
                position: value(next()?)?,
                eta: value(next()?)?,
                until: value(next()?)?,
                paused: value(next()?)?,
                opens_at: value(next()?)?,
                opens_in: value(next()?)?,
                may_return: value(next()?)?,
                choose_by: value(next()?)?,
            },
            list: value(next()?)?,
            user: next().ok().map(value).transpose()?,
        })
    }
}

pub(super) fn token_status(state: &str, fields: StatusFields) -> Result<TokenStatus, QueueError> {
    match state {
        "W" => Ok(TokenStatus::Waiting {
            position: fields.position,
            eta_seconds: fields.eta,
            paused: fields.paused == 1,
        }),
        "A" => Ok(TokenStatus::Active {
            until_unix_ms: fields.until,
            choose_by_unix_ms: (fields.choose_by > 0).then_some(fields.choose_by),
        }),
        "P" => Ok(TokenStatus::Prequeue {
            opens_at_unix_ms: fields.opens_at,
            opens_in_ms: u64::try_from(fields.opens_in).unwrap_or(0),
        }),
        "S" => Ok(TokenStatus::SoldOut {
            position: fields.position,
            seats_may_return: fields.may_return == 1,
        }),
        other => Err(QueueError::Protocol(format!("token state {other:?}"))),
    }
}
