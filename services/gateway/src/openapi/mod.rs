//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' own types: every API
//! route is registered with `utoipa_axum::routes!` (its path, its handler and its document entry
//! in one), so the router and the document cannot drift apart. `GET /openapi.json` serves it;
//! `GET /docs` is an interactive reference (Swagger UI, vendored and embedded, see [`docs`]).
//! The routes that are deliberately not in the document are listed once, in [`UNDOCUMENTED`];
//! tests/openapi.rs fails when the router has any other route the document lacks.

pub mod docs;
pub mod errors;
pub mod parameters;

use std::sync::LazyLock;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{
    AppState,
    identity::{AuthMode, Identity},
    routes,
};

/// Routes the router has and the document leaves out, each with the reason: they are pages and
/// files for browsers, not part of the JSON API.
pub const UNDOCUMENTED: &[(&str, &str)] = &[
    ("/", "the fan's page: HTML for browsers"),
    ("/admin", "the operator's console: HTML for browsers"),
    ("/assets/{file}", "the pages' scripts, styles and images"),
    (
        "/docs",
        "this document's interactive reference: HTML for browsers",
    ),
    (
        "/docs/{file}",
        "the reference's scripts and styles (Swagger UI)",
    ),
];

/// The security scheme of a signed-in fan (`jwt` mode).
pub const BEARER_JWT: &str = "bearerJwt";
/// The security scheme of an operator in `trusted` mode (`GATEWAY_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "adminToken";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ticketing gateway",
        description = "The public HTTP/JSON API of the concert-ticketing system: the waiting room, \
            browsing, holds, payments and wallets, and the operators' admin API. Shapes are this \
            document's; the rules a schema cannot say (idempotency, identity modes, rooms, limits) \
            are in docs/api.md. Errors are `{\"status\", \"code\", \"message\"}` with a stable `code`; \
            each response lists the codes it may carry.",
        license(name = "MIT"),
    ),
    components(schemas(errors::ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "queue", description = "The waiting room: join it, and poll your place"),
        (name = "concerts", description = "Browsing: concerts, their options and free seats (no sign-in)"),
        (name = "reservations", description = "Holding a seat, and reading a reservation"),
        (name = "payments", description = "Paying for a held seat"),
        (name = "wallets", description = "A user's balance, and topping it up"),
        (name = "admin", description = "The operators' API: rooms, their figures and settings, the change log"),
        (name = "pages", description = "What the embedded pages ask the gateway"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The two ways of signing in. Both are `Authorization: Bearer`; which one a route takes is
/// on the route (fans: a JWT in `jwt` mode; operators: the admin token or an admin's JWT).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_JWT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`GATEWAY_AUTH=jwt`: an OIDC access token (ES256, RS256 or EdDSA) whose \
                         numeric `sub` is the user; the `admin` role in its `roles` claim marks \
                         an operator. In `trusted` mode fans send none (the `userId` is believed).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`GATEWAY_AUTH=trusted`: the operators' shared secret, \
                         `GATEWAY_ADMIN_TOKEN` (the admin API is closed without it).",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every route of the JSON API, each registered with its entry in the OpenAPI document
/// (`utoipa_axum::routes!`): what [`document`] describes and the router serves.
pub fn api() -> utoipa_axum::router::OpenApiRouter<crate::AppState> {
    utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(utoipa_axum::routes!(openapi_json))
        .merge(routes::queue::routes())
        .merge(routes::concerts::routes())
        .merge(routes::reservations::routes())
        .merge(routes::payments::routes())
        .merge(routes::wallets::routes())
        .merge(routes::health::routes())
        .merge(routes::admin::routes())
        .merge(routes::dev_sign_in::routes())
        .merge(routes::pages::routes())
}

/// The document of every API route as a gateway in `mode` serves it: the routes' own
/// entries, made exact for the mode — who signs in (fans: nobody in `trusted` mode, a bearer
/// JWT in `jwt` mode; operators: the admin token, or an admin's JWT) and whether a body's
/// `userId` is required (`trusted`) or optional, the bearer's subject (`jwt`).
pub fn document(mode: AuthMode) -> Value {
    let mut base = api().into_openapi();
    base.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut document = serde_json::to_value(base).unwrap_or_default();
    // At least one setting (the handler says 400 INVALID_BODY to `{}`). Set here: utoipa 5.5
    // writes `#[schema(min_properties = 1)]` as `maxProperties`.
    let patch = &mut document["components"]["schemas"]["SettingsPatch"];
    patch["minProperties"] = Value::from(1);
    // Nor a rate of 0 with a cap of 0: nobody would ever wait (400 INVALID_ROOM_SETTINGS).
    patch["not"] = serde_json::json!({
        "required": ["admissionRate", "activeCap"],
        "properties": {"admissionRate": {"const": 0}, "activeCap": {"const": 0}},
    });
    camel_case_links(&mut document);
    for_mode(&mut document, mode);
    document
}

/// utoipa 5.5 writes a Link's fields in snake case (`operation_id`); OpenAPI says `operationId`.
fn camel_case_links(document: &mut Value) {
    let responses = document["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let links = response
            .get_mut("links")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|links| links.values_mut())
            .filter_map(Value::as_object_mut);
        for link in links {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
}

/// The bodies whose `userId` names the acting user.
const ACTING_USER_BODIES: &[&str] = &["IssueTokenBody", "ReserveBody", "PayBody"];

fn for_mode(document: &mut Value, mode: AuthMode) {
    let (dropped_scheme, name) = match mode {
        AuthMode::Trusted => (BEARER_JWT, "trusted"),
        AuthMode::Jwt => (ADMIN_TOKEN, "jwt"),
    };
    if let Some(description) = document["info"]["description"].as_str() {
        document["info"]["description"] = Value::from(format!(
            "{description} This gateway runs with `GATEWAY_AUTH={name}`; the document says what \
             that mode asks for."
        ));
    }
    let operations = document["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let Some(security) = operation.get_mut("security").and_then(Value::as_array_mut) else {
            continue;
        };
        security.retain(|requirement| requirement.get(dropped_scheme).is_none());
        let signed_in = security
            .iter()
            .any(|requirement| requirement.get(BEARER_JWT).is_some());
        if mode == AuthMode::Jwt && signed_in {
            // Fans' routes: the bearer token is no longer optional.
            security.retain(|requirement| requirement.as_object().is_some_and(|r| !r.is_empty()));
        }
        if security.is_empty() {
            security.push(Value::Object(Default::default()));
        }
    }
    if mode == AuthMode::Jwt {
        for body in ACTING_USER_BODIES {
            let schema = &mut document["components"]["schemas"][*body];
            if let Some(required) = schema["required"].as_array_mut() {
                required.retain(|field| field != "userId");
            }
            let user_id = &mut schema["properties"]["userId"];
            if user_id.is_object() {
                user_id["type"] = serde_json::json!(["integer", "null"]);
            }
        }
    }
}

/// The document of each mode as JSON, built once: it depends on the code and the mode only.
static TRUSTED_JSON: LazyLock<Bytes> = LazyLock::new(|| json_of(AuthMode::Trusted));
static JWT_JSON: LazyLock<Bytes> = LazyLock::new(|| json_of(AuthMode::Jwt));

fn json_of(mode: AuthMode) -> Bytes {
    match serde_json::to_vec(&document(mode)) {
        Ok(json) => Bytes::from(json),
        // A derived document always serialises; this only keeps the request path panic-free.
        Err(_) => Bytes::from_static(b"{}"),
    }
}

/// This document: OpenAPI 3.1, generated from the handlers' types.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
        errors::Local,
    )
)]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    let json = match state.identity {
        Identity::Trusted => TRUSTED_JSON.clone(),
        Identity::Jwt(_) => JWT_JSON.clone(),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        json,
    )
        .into_response()
}
