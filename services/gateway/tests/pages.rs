//! The fan's page, the console and their assets over HTTP: content types, the
//! Content-Security-Policy and nosniff headers, ETag revalidation, the usual 404 JSON for an
//! unknown asset, and pages that reference only assets the gateway serves and carry no inline
//! script or style (which the policy would block).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use kit::http_client::{HttpClient, Response};

async fn gateway(extra: &[&str]) -> HttpClient {
    HttpClient::for_addr(support::start_gateway(support::NO_BACKEND, extra).await)
}

async fn get(client: &HttpClient, path: &str) -> Response {
    client.get(path).send().await.expect("the gateway answers")
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn pages_and_assets_have_their_content_types_nosniff_and_an_etag() {
    let client = gateway(&[]).await;
    for (path, content_type, marker) in [
        ("/", "text/html; charset=utf-8", r#"<main id="fan""#),
        (
            "/admin",
            "text/html; charset=utf-8",
            r#"<main id="console""#,
        ),
        (
            "/assets/fan.js",
            "text/javascript; charset=utf-8",
            "ticketing-token",
        ),
        (
            "/assets/console.js",
            "text/javascript; charset=utf-8",
            "/admin/rooms",
        ),
        (
            "/assets/common.js",
            "text/javascript; charset=utf-8",
            "Ticketing",
        ),
        (
            "/assets/style.css",
            "text/css; charset=utf-8",
            "button.seat",
        ),
        ("/assets/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = get(&client, path).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&response, "cache-control"), "no-cache", "{path}");
        assert!(header(&response, "etag").starts_with('"'), "{path}");
        assert!(response.text().contains(marker), "{path} lacks {marker:?}");
    }
}

#[tokio::test]
async fn pages_carry_a_strict_content_security_policy() {
    let client = gateway(&[]).await;
    for path in ["/", "/admin"] {
        let response = get(&client, path).await;
        let csp = header(&response, "content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp} lacks {directive}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
    }
    let console = get(&client, "/admin").await;
    assert!(header(&console, "content-security-policy").ends_with("frame-ancestors 'none'"));
    assert_eq!(header(&console, "x-frame-options"), "DENY");
    let fan = get(&client, "/").await;
    assert!(header(&fan, "content-security-policy").ends_with("frame-ancestors 'self'"));
}

#[tokio::test]
async fn the_fan_page_may_be_framed_by_the_configured_embedding_sites_only() {
    let client = gateway(&["--embed-origins=https://tickets.example,http://127.0.0.1:3000"]).await;
    let fan = get(&client, "/").await;
    assert!(
        header(&fan, "content-security-policy")
            .ends_with("frame-ancestors 'self' https://tickets.example http://127.0.0.1:3000"),
        "{:?}",
        fan.header("content-security-policy")
    );
    let config = get(&client, "/app-config.json").await.json();
    assert_eq!(
        config["embedOrigins"],
        serde_json::json!(["https://tickets.example", "http://127.0.0.1:3000"])
    );
}

#[tokio::test]
async fn an_unknown_asset_is_the_usual_404_json() {
    let client = gateway(&[]).await;
    for path in [
        "/assets/nope.js",
        "/assets/fan.html",
        "/assets/..%2FCargo.toml",
        "/assets/",
    ] {
        let response = get(&client, path).await;
        assert_eq!(response.status, 404, "{path}");
        assert!(
            header(&response, "content-type").starts_with("application/json"),
            "{path}"
        );
        assert_eq!(response.json()["code"], "NOT_FOUND", "{path}");
    }
}

#[tokio::test]
async fn a_browser_holding_the_current_version_gets_304_and_no_body() {
    let client = gateway(&[]).await;
    for path in ["/", "/admin", "/assets/fan.js"] {
        let first = get(&client, path).await;
        let etag = header(&first, "etag").to_owned();
        let again = client
            .get(path)
            .header("if-none-match", etag.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty(), "{path}");
        assert_eq!(header(&again, "etag"), etag, "{path}");
        let stale = client
            .get(path)
            .header("if-none-match", "\"0000000000000000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status, 200, "{path}");
    }
}

/// Every `src="…"` and `href="…"` value in `html`.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let end = rest.find('"').unwrap();
            found.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    found
}

#[tokio::test]
async fn the_pages_reference_only_served_assets_and_nothing_inline() {
    let client = gateway(&[]).await;
    for path in ["/", "/admin"] {
        let html = get(&client, path).await.text().into_owned();
        let refs = references(&html);
        assert!(refs.iter().any(|r| r.ends_with(".js")), "{path}: {refs:?}");
        for reference in &refs {
            assert!(
                reference.starts_with("/assets/"),
                "{path} loads {reference} from elsewhere"
            );
            assert_eq!(get(&client, reference).await.status, 200, "{reference}");
        }
        // The policy would block these; none may be there to be blocked.
        let scripts = html.matches("<script").count();
        let external = html.matches("<script src=\"/assets/").count();
        assert_eq!(scripts, external, "{path} has an inline script");
        assert!(!html.contains(" style="), "{path} has an inline style");
        assert!(!html.contains("<style"), "{path} has a style element");
        assert!(!html.contains(" onclick="), "{path} has an inline handler");
    }
}

#[tokio::test]
async fn app_config_tells_the_pages_the_identity_mode() {
    let client = gateway(&[]).await;
    let response = get(&client, "/app-config.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(header(&response, "cache-control"), "no-store");
    let config = response.json();
    assert_eq!(config["auth"], "trusted");
    assert_eq!(config["devSignIn"], false);
}

/// The ids the browser tests (and embedding sites' own tests) find elements by.
#[tokio::test]
async fn the_pages_carry_every_id_of_the_dom_contract() {
    let client = gateway(&[]).await;
    let fan = get(&client, "/").await.text().into_owned();
    for id in [
        "fan",
        "user-id",
        "join",
        "signed-in-as",
        "position",
        "eta",
        "progress",
        "status",
        "admitted-until",
        "choose-hint",
        "options",
        "seat-map",
        "legend",
        "hold-countdown",
        "balance",
        "top-up",
        "pay",
        "confirmation",
        "message",
        "opens-at",
        "opens-countdown",
        "prequeue-text",
        "ended-title",
        "ended-detail",
    ] {
        assert!(
            fan.contains(&format!("id=\"{id}\"")),
            "the fan page lacks #{id}"
        );
    }
    assert!(fan.contains(r#"<main id="fan" data-state="join""#));
    assert!(fan.contains(r#"id="status" aria-live="polite""#));
    assert!(fan.contains(r#"id="message" role="alert""#));
    let console = get(&client, "/admin").await.text().into_owned();
    for id in [
        "console",
        "admin-token",
        "admin-sign-in",
        "rooms",
        "routes",
        "changes",
        "message",
    ] {
        assert!(
            console.contains(&format!("id=\"{id}\"")),
            "the console lacks #{id}"
        );
    }
    assert!(console.contains(r#"<main id="console" data-state="sign-in""#));
    assert!(console.contains(r#"id="admin-token" type="password""#));
}
