//! The OpenAPI document against the router that serves: every route the router has is in the
//! document (or in `openapi::UNDOCUMENTED`, with its reason), every documented operation is
//! served; `/openapi.json` is OpenAPI 3.1 over HTTP; `/docs` serves Swagger UI and its files
//! with a Content-Security-Policy of this origin only.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use axum::{Router, routing::get, routing::post};
use clap::Parser;
use kit::http_client::HttpClient;
use serde_json::Value;
use support::{NO_BACKEND, start_gateway};

/// `METHOD /path` for every route of `router`. axum has no API that lists routes, but its
/// `Debug` output names each route's path (`Node { paths: {RouteId(n): "/path"} }`) and each
/// method router's `Allow` header (`allow_header: Bytes(b"GET,HEAD")`). A route added as a
/// service (no method router) is `* /path`. Fails the test when the output has no route at
/// all, so a change in axum's format cannot make the check pass vacuously.
fn served_routes(router: &Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let (routes_part, rest) = debug
        .split_once("node: Node { paths: {")
        .expect("axum's Router Debug output lists its paths");
    // The map ends at the first `"}` (paths contain braces of their own: `{id}`).
    let paths_part = rest.find("\"}").map_or(rest, |end| &rest[..=end]);
    let path_of = |id: &str| -> String {
        let key = format!("RouteId({id}): \"");
        let start = paths_part.find(&key).expect("every route id has a path") + key.len();
        let end = paths_part[start..].find('"').expect("a quoted path");
        paths_part[start..start + end].to_owned()
    };
    let mut routes = BTreeSet::new();
    for endpoint in routes_part.split("RouteId(").skip(1) {
        let (id, body) = endpoint.split_once("): ").expect("RouteId(n): endpoint");
        let path = path_of(id);
        let methods = body
            .split_once("allow_header: Bytes(b\"")
            .and_then(|(_, allow)| allow.split_once('"'))
            .map(|(allow, _)| allow.to_owned());
        match methods {
            Some(allow) => {
                for method in allow.split(',') {
                    // axum answers HEAD with the GET handler: not a route of its own.
                    if method != "HEAD" {
                        routes.insert(format!("{method} {path}"));
                    }
                }
            }
            None => {
                routes.insert(format!("* {path}"));
            }
        }
    }
    assert!(
        !routes.is_empty(),
        "no route found in the router's Debug output; has axum's format changed?\n{debug}"
    );
    routes
}

/// `METHOD /path` for every operation of the document.
fn documented_operations(document: &Value) -> BTreeSet<String> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            if item.get(method).is_some() {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations
}

/// The routes of `router` that are neither documented nor listed in `openapi::UNDOCUMENTED`.
fn undocumented(router: &Router, document: &Value) -> Vec<String> {
    let documented = documented_operations(document);
    served_routes(router)
        .into_iter()
        .filter(|route| !documented.contains(route))
        .filter(|route| {
            let path = route.split_once(' ').map_or("", |(_, path)| path);
            !gateway::openapi::UNDOCUMENTED
                .iter()
                .any(|(excluded, _)| *excluded == path)
        })
        .collect()
}

fn document() -> Value {
    gateway::openapi::document(gateway::identity::AuthMode::Trusted)
}

/// The gateway's whole router, as `gateway::build` serves it (backends are never called).
async fn gateway_router() -> Router {
    let config = gateway::Config::parse_from([
        "gateway",
        "--auth=trusted",
        &format!("--queue-url={NO_BACKEND}"),
        &format!("--catalog-url={NO_BACKEND}"),
        &format!("--reservation-url={NO_BACKEND}"),
    ]);
    let state = gateway::state(&config).await.expect("state");
    gateway::app::router(state, &config)
}

#[tokio::test]
async fn every_route_the_gateway_serves_is_in_the_document_or_excluded_with_a_reason() {
    let router = gateway_router().await;
    let served = served_routes(&router);
    // The parser sees real routes: one documented, one excluded.
    assert!(served.contains("GET /healthz"), "{served:?}");
    assert!(served.contains("GET /docs"), "{served:?}");
    let missing = undocumented(&router, &document());
    assert!(
        missing.is_empty(),
        "routes the OpenAPI document lacks (register them with utoipa_axum::routes! and \
         #[utoipa::path], or list them in openapi::UNDOCUMENTED with the reason): {missing:?}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let served = served_routes(&gateway_router().await);
    let unserved: Vec<String> = documented_operations(&document())
        .into_iter()
        .filter(|operation| !served.contains(operation))
        .collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn a_route_added_to_the_router_without_a_document_entry_is_reported() {
    let router = gateway_router().await;
    let document = document();
    // Only what the test adds (the coverage test above answers for the rest).
    let before = undocumented(&router, &document);
    let added = |after: Vec<String>| -> Vec<String> {
        after
            .into_iter()
            .filter(|route| !before.contains(route))
            .collect()
    };
    let with_new_path = router.clone().route("/x", get(|| async { "undocumented" }));
    assert_eq!(added(undocumented(&with_new_path, &document)), ["GET /x"]);
    let with_new_method = router.route("/healthz", post(|| async { "undocumented" }));
    assert_eq!(
        added(undocumented(&with_new_method, &document)),
        ["POST /healthz"]
    );
}

#[test]
fn the_exclusions_are_pages_and_files_each_with_a_reason() {
    let document = document();
    for (path, reason) in gateway::openapi::UNDOCUMENTED {
        assert!(!reason.is_empty(), "{path} has no reason");
        assert!(
            document["paths"].get(*path).is_none(),
            "{path} is both documented and excluded"
        );
    }
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_of_every_operation() {
    let addr = start_gateway(NO_BACKEND, &[]).await;
    let response = HttpClient::for_addr(addr)
        .get("/openapi.json")
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let document: Value = response.try_json().expect("JSON");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        document["openapi"]
    );
    assert_eq!(document["info"]["title"], "Ticketing gateway");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearerJwt"]["scheme"], "bearer");
    assert_eq!(schemes["adminToken"]["scheme"], "bearer");
    assert!(document["components"]["schemas"]["Error"].is_object());
    let link =
        &document["paths"]["/queue/issue-token"]["post"]["responses"]["200"]["links"]["checkQueue"];
    assert_eq!(link["operationId"], "checkQueue", "{link}");

    let operations = documented_operations(&document);
    for route in [
        "POST /queue/issue-token",
        "GET /queue/check-queue",
        "GET /api/concert/get-concerts",
        "POST /api/reserve",
        "POST /api/payments",
        "GET /openapi.json",
    ] {
        assert!(
            operations.contains(route),
            "{route} missing: {operations:?}"
        );
    }
    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(
                ids.insert(
                    operation["operationId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                ),
                "{name}: operationId missing or not unique"
            );
            assert!(operation["tags"][0].is_string(), "{name}: no tag");
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|status| status.starts_with('2') || status.starts_with('3')),
                "{name}: no success response"
            );
            // Every error names its codes: an enum on `code` over the shared Error schema.
            for (status, response) in responses {
                if status.starts_with('4') {
                    let schema = &response["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["allOf"][0]["$ref"], "#/components/schemas/Error",
                        "{name} {status}"
                    );
                    assert!(
                        schema["allOf"][1]["properties"]["code"]["enum"][0].is_string(),
                        "{name} {status}: no codes"
                    );
                }
            }
            // Every operation documents the rate limit's answer with its Retry-After.
            assert!(
                responses["429"]["headers"]["Retry-After"].is_object(),
                "{name}: 429 without Retry-After"
            );
        }
    }
}

#[tokio::test]
async fn the_mutating_posts_document_their_idempotency_key_and_fans_their_bearer_token() {
    let document = document();
    for path in [
        "/api/reserve",
        "/api/payments",
        "/api/users/{user_id}/balance/charge",
    ] {
        let operation = &document["paths"][path]["post"];
        let parameters = operation["parameters"].as_array().expect("parameters");
        assert!(
            parameters
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
            "{path}: {parameters:?}"
        );
        // No sign-in in trusted mode.
        assert_eq!(operation["security"], serde_json::json!([{}]), "{path}");
    }
}

#[test]
fn the_document_of_each_mode_says_who_signs_in_and_whether_user_id_is_required() {
    use gateway::identity::AuthMode;
    let trusted = gateway::openapi::document(AuthMode::Trusted);
    let jwt = gateway::openapi::document(AuthMode::Jwt);
    let security = |document: &Value, path: &str, method: &str| {
        document["paths"][path][method]["security"].clone()
    };
    use serde_json::json;
    assert_eq!(security(&trusted, "/api/reserve", "post"), json!([{}]));
    assert_eq!(
        security(&jwt, "/api/reserve", "post"),
        json!([{"bearerJwt": []}])
    );
    assert_eq!(
        security(&trusted, "/admin/rooms", "get"),
        json!([{"adminToken": []}])
    );
    assert_eq!(
        security(&jwt, "/admin/rooms", "get"),
        json!([{"bearerJwt": []}])
    );
    // Browsing needs no sign-in in either mode.
    for document in [&trusted, &jwt] {
        assert_eq!(
            security(document, "/api/concert/get-concerts", "get"),
            json!([{}])
        );
    }
    for body in ["IssueTokenBody", "ReserveBody", "PayBody"] {
        let required = |document: &Value| {
            document["components"]["schemas"][body]["required"]
                .as_array()
                .is_some_and(|fields| fields.contains(&json!("userId")))
        };
        assert!(
            required(&trusted),
            "{body}: userId required in trusted mode"
        );
        assert!(!required(&jwt), "{body}: userId optional in jwt mode");
    }
}

#[tokio::test]
async fn docs_serves_swagger_ui_and_its_files_with_a_self_only_policy() {
    let addr = start_gateway(NO_BACKEND, &[]).await;
    let client = HttpClient::for_addr(addr);
    let page = client.get("/docs").send().await.expect("answers");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page
        .header("content-security-policy")
        .expect("a CSP")
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let html = page.text().into_owned();
    assert!(!html.contains("<script>"), "an inline script: {html}");
    for (file, content_type, marker) in [
        (
            "/docs/swagger-ui-bundle.js",
            "text/javascript",
            "SwaggerUIBundle",
        ),
        ("/docs/swagger-ui.css", "text/css", ".swagger-ui"),
        ("/docs/docs-init.js", "text/javascript", "/openapi.json"),
    ] {
        assert!(html.contains(file), "the page does not load {file}");
        let asset = client.get(file).send().await.expect("answers");
        assert_eq!(asset.status, 200, "{file}");
        assert!(
            asset
                .header("content-type")
                .unwrap()
                .starts_with(content_type),
            "{file}: {:?}",
            asset.header("content-type")
        );
        assert!(asset.text().contains(marker), "{file} lacks {marker}");
    }
    let missing = client
        .get("/docs/swagger-ui-bundle.js.map")
        .send()
        .await
        .expect("answers");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.try_json().unwrap()["code"], "NOT_FOUND");
}
