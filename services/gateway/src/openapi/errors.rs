//! Error answers in the document: one `Error` schema (`{"status", "code", "message"}`), and per
//! operation and status the stable `code`s it may carry, as an `enum` on `code` — so a fuzzer
//! reading the document flags a code a route was never documented to answer.
//!
//! Each operation names its errors with [`errors!`]; every operation also gets the answers that
//! the layers in front of the handlers give on any route ([`ANY_ROUTE`]), and routes that call a
//! backend the failures of that call ([`BACKEND`]).

use std::collections::BTreeMap;

use utoipa::{
    ToSchema,
    openapi::{
        ContentBuilder, RefOr, Response, ResponseBuilder,
        header::HeaderBuilder,
        schema::{AllOfBuilder, ObjectBuilder, Ref, Type},
    },
};

/// An error, on every route: `status` repeats the HTTP status, `code` is stable and
/// machine-readable, `message` is for people.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)] // the wire shape (error.rs writes it); here for the document only
pub struct ErrorBody {
    #[schema(example = 409)]
    status: u16,
    #[schema(example = "SEAT_TAKEN")]
    code: String,
    #[schema(example = "the seat is taken")]
    message: String,
}

/// What the layers in front of every handler may answer: a credential that is present but
/// wrong (`jwt` mode), a body too slow or too large, a caller over its rate, the in-flight
/// limit, the request's deadline.
pub const ANY_ROUTE: &[(u16, &[&str])] = &[
    (401, &["AUTH_INVALID"]),
    (408, &["BODY_TIMEOUT"]),
    (413, &["PAYLOAD_TOO_LARGE"]),
    (429, &["TOO_MANY_REQUESTS"]),
    (503, &["OVERLOADED"]),
    (504, &["REQUEST_TIMEOUT"]),
];

/// A backend call that failed: a service unavailable (or its store: the service's own code
/// passes through), or past its deadline.
pub const BACKEND: &[(u16, &[&str])] = &[
    (
        503,
        &[
            "SERVICE_UNAVAILABLE",
            "QUEUE_STORE_UNAVAILABLE",
            "CATALOG_STORE_UNAVAILABLE",
            "CATALOG_UNAVAILABLE",
            "RESERVATION_STORE_UNAVAILABLE",
        ],
    ),
    (504, &["UPSTREAM_TIMEOUT"]),
];

/// The responses for `own` plus `shared`, one per status, each listing its codes.
pub fn responses(
    own: &[(u16, &[&str])],
    shared: &[&[(u16, &[&str])]],
) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (status, codes) in own.iter().chain(shared.iter().flat_map(|set| set.iter())) {
        let known = by_status.entry(*status).or_default();
        for code in *codes {
            if !known.contains(code) {
                known.push(code);
            }
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| (status.to_string(), RefOr::T(response(status, &codes))))
        .collect()
}

fn response(status: u16, codes: &[&str]) -> Response {
    let listed = codes
        .iter()
        .map(|code| format!("`{code}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Error");
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Error"))
        .item(
            ObjectBuilder::new()
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .enum_values(Some([status])),
                )
                .property(
                    "code",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(codes.iter().copied())),
                ),
        );
    let mut builder = ResponseBuilder::new()
        .description(format!("{reason}: {listed}"))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        );
    if status == 429 || codes.contains(&"OVERLOADED") {
        builder = builder.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    if codes.contains(&"AUTH_INVALID") {
        builder = builder.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(
                    r#"`Bearer error="invalid_token"` when a bearer token was refused"#,
                ))
                .build(),
        );
    }
    builder.build()
}

/// `errors!(Name { 400 => ["INVALID_X"], 404 => ["X_NOT_FOUND"] })` defines `Name`, the error
/// responses of an operation that calls a backend (its codes, [`ANY_ROUTE`]'s and
/// [`BACKEND`]'s); `errors!(Name + SHARED { .. })` adds the codes of a `&[(u16, &[&str])]`
/// that several operations share; `errors!(local Name { .. })` is an operation that calls no
/// backend. One per operation: in `#[utoipa::path(responses(..., Name))]` a later responses
/// type replaces an earlier one's entry for the same status.
#[macro_export]
macro_rules! errors {
    ($(#[$meta:meta])* $name:ident $(+ $extra:path)* { $($status:literal => [$($code:literal),+ $(,)?]),* $(,)? }) => {
        $crate::errors!(@define $(#[$meta])* $name [$crate::openapi::errors::ANY_ROUTE, $crate::openapi::errors::BACKEND $(, $extra)*] { $($status => [$($code),+]),* });
    };
    ($(#[$meta:meta])* local $name:ident { $($status:literal => [$($code:literal),+ $(,)?]),* $(,)? }) => {
        $crate::errors!(@define $(#[$meta])* $name [$crate::openapi::errors::ANY_ROUTE] { $($status => [$($code),+]),* });
    };
    (@define $(#[$meta:meta])* $name:ident [$($shared:expr),*] { $($status:literal => [$($code:literal),+]),* }) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                $crate::openapi::errors::responses(&[$(($status, &[$($code),+])),*], &[$($shared),*])
            }
        }
    };
}

errors!(
    /// The errors of a route that calls no backend: only what the layers answer.
    local Local {}
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_one_status_are_merged_into_one_response() {
        let merged = responses(&[(503, &["DEPENDENCY_DOWN"])], &[ANY_ROUTE, BACKEND]);
        let json = serde_json::to_value(&merged["503"]).unwrap_or_default();
        let codes = &json["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]
            ["enum"];
        let codes: Vec<&str> = codes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .collect();
        // The operation's own first, then the shared ones, each once.
        assert_eq!(
            codes[..3],
            ["DEPENDENCY_DOWN", "OVERLOADED", "SERVICE_UNAVAILABLE"]
        );
        assert_eq!(codes.len(), 2 + BACKEND[0].1.len(), "{codes:?}");
        assert!(json["headers"]["Retry-After"].is_object(), "{json}");
        assert!(merged.contains_key("429") && merged.contains_key("401"));
    }
}
