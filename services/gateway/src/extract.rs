//! Extractors whose every rejection is a 400-class JSON `ApiError`, never axum's plain text.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Parsed whatever the Content-Type says (the original clients are not all
/// careful about it); syntax errors and shape errors get distinct codes.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "PAYLOAD_TOO_LARGE",
                            "request body is too large",
                        )
                    } else {
                        ApiError::bad_request("INVALID_BODY", "could not read the request body")
                    }
                })?;
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
            ApiError::bad_request(
                "INVALID_JSON",
                format!("request body is not valid JSON: {error}"),
            )
        })?;
        // Every body is an object: serde would also read a struct from an array (`[7, null]`).
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "INVALID_BODY",
                "request body must be a JSON object",
            ));
        }
        integral_floats_as_integers(&mut value);
        T::deserialize(value).map(JsonBody).map_err(|error| {
            ApiError::bad_request(
                "INVALID_BODY",
                format!("request body has the wrong shape: {error}"),
            )
        })
    }
}

/// Numbers with a zero fraction (`7.0`) become integers: JSON Schema counts them as integers
/// (the OpenAPI document's `integer` fields allow them) and a JavaScript client cannot tell
/// 7.0 from 7. Others stay as they are, and an integer field refuses them.
fn integral_floats_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(number) if number.is_f64() => {
            if let Some(float) = number.as_f64()
                && float.fract() == 0.0
                && (-9_007_199_254_740_991.0..=9_007_199_254_740_991.0).contains(&float)
            {
                // Exact: within ±(2^53 - 1) every integral f64 is an i64.
                *number = serde_json::Number::from(float as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// For `#[serde(default, deserialize_with = "not_null")]` on an optional field: absent is
/// `None`, present must be a value (`null` is refused, as the document says).
pub fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// For `#[serde(default, deserialize_with = "nullable")]` on an `Option<Option<T>>` field of a
/// patch: absent is `None` (unchanged), `null` is `Some(None)` (clear it), a value is
/// `Some(Some(value))` (set it). serde alone reads both absent and `null` as `None`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Query parameters.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| QueryParams(query.0))
            .map_err(|rejection| ApiError::bad_request("INVALID_QUERY", rejection.body_text()))
    }
}

/// Path parameters.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(path) => Ok(PathParams(path.0)),
            Err(rejection) => integral_decimal_param(parts, state)
                .await
                .and_then(|value| T::deserialize(value).ok())
                .map(PathParams)
                .ok_or_else(|| ApiError::bad_request("INVALID_PATH", rejection.body_text())),
        }
    }
}

/// A single path parameter written as an integral decimal (`/api/users/7.0/balance`) as the
/// integer it is, like [`JsonBody`]'s numbers: the document's `integer` allows it.
async fn integral_decimal_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Option<serde_json::Value> {
    let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
        .await
        .ok()?;
    let mut params = raw.iter();
    let (_, text) = params.next()?;
    if params.next().is_some() {
        return None;
    }
    let (whole, fraction) = text.split_once('.')?;
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || fraction.is_empty()
        || !fraction.bytes().all(|b| b == b'0')
    {
        return None;
    }
    whole.parse::<i64>().ok().map(serde_json::Value::from)
}

/// The optional `Idempotency-Key` header (its format is checked by the service that keeps it).
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Self(None)),
            Some(value) => value
                .to_str()
                .map(|key| Self(Some(key.to_owned())))
                .map_err(|_| {
                    ApiError::bad_request(
                        "INVALID_IDEMPOTENCY_KEY",
                        "Idempotency-Key must be visible ASCII",
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_become_integers_and_fractions_do_not() {
        let mut value =
            serde_json::json!({"id": 7.0, "rate": 0.5, "nested": [{"seat": 2.0}], "big": 1e300});
        integral_floats_as_integers(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"id": 7, "rate": 0.5, "nested": [{"seat": 2}], "big": 1e300})
        );
        assert!(value["id"].is_i64() && value["big"].is_f64());
    }

    #[test]
    fn nullable_tells_absent_from_null_from_a_value() {
        #[derive(serde::Deserialize)]
        struct Patch {
            #[serde(default, deserialize_with = "nullable")]
            at: Option<Option<String>>,
        }
        let read = |json: &str| serde_json::from_str::<Patch>(json).map(|p| p.at).ok();
        assert_eq!(read("{}"), Some(None));
        assert_eq!(read(r#"{"at": null}"#), Some(Some(None)));
        assert_eq!(read(r#"{"at": "x"}"#), Some(Some(Some("x".into()))));
        assert_eq!(read(r#"{"at": 7}"#), None, "a wrong type is still refused");
    }
}
