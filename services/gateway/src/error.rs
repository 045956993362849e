//! The gateway's JSON errors: `{"status", "code", "message"}`, and the one table that maps
//! gRPC status codes to HTTP.

use std::borrow::Cow;

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: self.status.as_u16(),
            code: &self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// The HTTP status for a backend's gRPC status code, and the error code used when the
/// backend attached none.
fn http_for(code: tonic::Code) -> (StatusCode, &'static str) {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "FORBIDDEN"),
        Code::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => {
            (StatusCode::CONFLICT, "CONFLICT")
        }
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
        // Our services never answer UNKNOWN themselves; tonic's client reports a connection
        // that failed under a call (h2 reset, GOAWAY) as UNKNOWN "transport error", which is
        // as retriable as UNAVAILABLE.
        Code::Unavailable | Code::Unknown => {
            (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
        }
        // The client side of a deadline: tonic reports its own timeout as CANCELLED.
        Code::DeadlineExceeded | Code::Cancelled => {
            (StatusCode::GATEWAY_TIMEOUT, "UPSTREAM_TIMEOUT")
        }
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "NOT_IMPLEMENTED"),
        Code::Ok | Code::Internal | Code::DataLoss => {
            (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
        }
    }
}

/// Where the contract answers another status than the table gives: the original clients treat
/// 400 on reserve as "seat taken, move on", the payment contract answers 400 for a short
/// balance, and a queue token is a credential, so an unknown one is 401 on every route (the
/// queue says NOT_FOUND, which is right for gRPC).
const CONTRACT_OVERRIDES: &[(&str, StatusCode)] = &[
    ("SEAT_TAKEN", StatusCode::BAD_REQUEST),
    ("INSUFFICIENT_BALANCE", StatusCode::BAD_REQUEST),
    ("TOKEN_NOT_FOUND", StatusCode::UNAUTHORIZED),
];

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let (table_http, fallback_code) = http_for(status.code());
        let code = kit::error_code::of(&status)
            .map(|code| Cow::Owned(code.to_owned()))
            .unwrap_or(Cow::Borrowed(fallback_code));
        let http = CONTRACT_OVERRIDES
            .iter()
            .find(|(name, _)| *name == code)
            .map_or(table_http, |(_, http)| *http);
        let message = if http.is_server_error() {
            tracing::warn!(grpc.code = ?status.code(), grpc.message = status.message(), "backend call failed");
            match http {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "a backend service is unavailable; retry shortly".to_owned()
                }
                StatusCode::GATEWAY_TIMEOUT => {
                    "a backend service did not answer in time".to_owned()
                }
                _ => "internal error".to_owned(),
            }
        } else {
            status.message().to_owned()
        };
        Self {
            status: http,
            code,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_maps_transport_failures_to_503_and_504() {
        let unavailable = ApiError::from(tonic::Status::unavailable("down"));
        assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
        let broken_connection = ApiError::from(tonic::Status::unknown("transport error"));
        assert_eq!(
            (broken_connection.status, &*broken_connection.code),
            (StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
        );
        let deadline = ApiError::from(tonic::Status::deadline_exceeded("slow"));
        assert_eq!(deadline.status, StatusCode::GATEWAY_TIMEOUT);
        let timeout = ApiError::from(tonic::Status::cancelled("Timeout expired"));
        assert_eq!(timeout.status, StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn the_contract_overrides_win_over_the_table() {
        let taken = ApiError::from(kit::error_code::status(
            tonic::Code::AlreadyExists,
            "SEAT_TAKEN",
            "taken",
        ));
        assert_eq!(taken.status, StatusCode::BAD_REQUEST);
        let other = ApiError::from(kit::error_code::status(
            tonic::Code::AlreadyExists,
            "OTHER",
            "x",
        ));
        assert_eq!(other.status, StatusCode::CONFLICT);
        let unknown_token = ApiError::from(kit::error_code::status(
            tonic::Code::NotFound,
            "TOKEN_NOT_FOUND",
            "no such token",
        ));
        assert_eq!(unknown_token.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_service_error_code_is_kept_and_internals_are_not_leaked() {
        let status = kit::error_code::status(
            tonic::Code::NotFound,
            "RESERVATION_NOT_FOUND",
            "no such reservation",
        );
        let error = ApiError::from(status);
        assert_eq!(
            (error.status, &*error.code),
            (StatusCode::NOT_FOUND, "RESERVATION_NOT_FOUND")
        );
        let internal = ApiError::from(tonic::Status::internal("password=hunter2"));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.message.contains("hunter2"));
    }
}
