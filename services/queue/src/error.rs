//! The queue service's errors, and the one mapping to gRPC statuses.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{message}")]
    InvalidArgument { code: &'static str, message: String },
    #[error("unknown token")]
    TokenNotFound,
    #[error("token expired or dropped from its room")]
    TokenExpired,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("redis did not answer within the deadline")]
    Timeout,
    #[error("the room's settings kept changing under this change; try again")]
    SettingsContended,
    #[error("this waiting room opens at {}; join from then on", describe_instant(*.opens_at_unix_ms))]
    RoomNotOpen { opens_at_unix_ms: i64 },
    #[error("redis returned an unexpected reply: {0}")]
    Protocol(String),
}

impl QueueError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            code,
            message: message.into(),
        }
    }
}

impl From<QueueError> for Status {
    fn from(error: QueueError) -> Self {
        let (code, error_code) = match &error {
            QueueError::InvalidArgument { code, .. } => (Code::InvalidArgument, *code),
            QueueError::TokenNotFound => (Code::NotFound, "TOKEN_NOT_FOUND"),
            QueueError::TokenExpired => (Code::Unauthenticated, "TOKEN_EXPIRED"),
            QueueError::Redis(_) | QueueError::Pool(_) | QueueError::Timeout => {
                (Code::Unavailable, "QUEUE_STORE_UNAVAILABLE")
            }
            QueueError::SettingsContended => (Code::Aborted, "ROOM_SETTINGS_CONTENDED"),
            QueueError::RoomNotOpen { .. } => (Code::FailedPrecondition, "ROOM_NOT_OPEN"),
            QueueError::Protocol(_) => (Code::Internal, "INTERNAL"),
        };
        if code == Code::Unavailable || code == Code::Internal {
            tracing::error!(%error, "queue store failure");
        }
        kit::error_code::status(code, error_code, error.to_string())
    }
}

/// An instant in RFC 3339 (UTC), or as unix ms when out of range.
fn describe_instant(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("unix ms {unix_ms}"))
}
