//! The transport convention for stable, machine-readable error codes: a service puts its
//! domain error's code (e.g. `SEAT_TAKEN`) in the `x-error-code` metadata of the gRPC status,
//! and the gateway copies it into the JSON error body. The codes themselves belong to each
//! service; only the carrier is shared.

use tonic::{Code, Status, metadata::MetadataValue};

/// Metadata key carrying the stable error code on a failed gRPC call.
pub const METADATA_KEY: &str = "x-error-code";

/// A gRPC status whose metadata carries `error_code`.
pub fn status(code: Code, error_code: &'static str, message: impl Into<String>) -> Status {
    let mut status = Status::new(code, message);
    status
        .metadata_mut()
        .insert(METADATA_KEY, MetadataValue::from_static(error_code));
    status
}

/// The stable error code a service attached to `status`, if any.
pub fn of(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get(METADATA_KEY)
        .and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_round_trips_through_status_metadata() {
        let status = status(Code::NotFound, "TOKEN_NOT_FOUND", "no such token");
        assert_eq!(of(&status), Some("TOKEN_NOT_FOUND"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(of(&Status::internal("plain")), None);
    }
}
