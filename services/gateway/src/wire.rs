//! What the JSON carries and every route checks the same way: ids that JavaScript clients can
//! hold, seat numbers, instants as RFC 3339.

use crate::error::ApiError;

/// RFC 3339 (UTC) text for unix milliseconds, as the JSON bodies carry instants.
pub fn rfc3339(unix_ms: i64) -> Option<String> {
    let nanos = i128::from(unix_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Unix milliseconds for RFC 3339 text (any offset; a fraction below a millisecond is dropped),
/// or None when it is not RFC 3339 or before 1970 (the backends' instants are positive).
pub fn unix_ms_of_rfc3339(text: &str) -> Option<i64> {
    let instant =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(instant.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .filter(|ms| *ms > 0)
}

/// Largest id accepted from JSON: integers above 2^53 - 1 do not survive JavaScript clients.
pub const MAX_ID: i64 = 9_007_199_254_740_991;

/// A positive id no larger than [`MAX_ID`], or a 400 naming the field.
pub fn valid_id(value: i64, code: &'static str, field: &str) -> Result<i64, ApiError> {
    if (1..=MAX_ID).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::bad_request(
            code,
            format!("{field} must be an integer between 1 and {MAX_ID}"),
        ))
    }
}

/// A seat number: 1 to 2^31 - 1.
pub fn valid_seat(value: i64) -> Result<i32, ApiError> {
    i32::try_from(value)
        .ok()
        .filter(|seat| *seat > 0)
        .ok_or_else(|| {
            ApiError::bad_request("INVALID_SEAT_ID", "seatId must be a positive integer")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_render_as_rfc3339() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_800_000_000_123).as_deref(),
            Some("2027-01-15T08:00:00.123Z")
        );
    }

    #[test]
    fn rfc3339_text_reads_as_unix_ms_with_any_offset() {
        assert_eq!(
            unix_ms_of_rfc3339("2027-01-15T08:00:00.123Z"),
            Some(1_800_000_000_123)
        );
        assert_eq!(
            unix_ms_of_rfc3339("2027-01-15T09:00:00.123456+01:00"),
            Some(1_800_000_000_123)
        );
        for bad in [
            "",
            "tomorrow",
            "2027-01-15",
            "2027-01-15T08:00",
            "2027-01-15T08:00:00",
            "2027-13-15T08:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(unix_ms_of_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_are_positive_and_json_safe() {
        assert!(valid_id(1, "X", "id").is_ok());
        assert!(valid_id(MAX_ID, "X", "id").is_ok());
        assert!(valid_id(0, "X", "id").is_err());
        assert!(valid_id(-1, "X", "id").is_err());
        assert!(valid_id(MAX_ID + 1, "X", "id").is_err());
    }
}
