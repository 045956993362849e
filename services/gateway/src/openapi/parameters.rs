//! Request parameters that several operations share, for the document.

use utoipa::IntoParams;

/// The optional `Idempotency-Key` of the mutating POSTs: a retry with the same key gets the
/// first answer; the same key with other parameters is 409 `IDEMPOTENCY_KEY_REUSED`.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by extract::IdempotencyKey; here for the document only
pub struct IdempotencyKeyHeader {
    /// 1 to 200 visible ASCII characters, e.g. a UUID per logical attempt.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 200,
        pattern = "^[!-~]+$"
    )]
    idempotency_key: Option<String>,
}
