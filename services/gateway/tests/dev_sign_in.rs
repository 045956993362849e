//! The development sign-in over HTTP: off (404, whatever is sent) unless configured; on, it
//! hands out tokens the same gateway accepts as the named user; and the gateway refuses to
//! start with it in trusted mode or with a key its JWKS does not trust.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use clap::Parser;
use kit::dev_identity::{AUDIENCE, DevKey, ISSUER, JWKS_FILE, KEY_FILE};
use support::{Http, assert_error};

/// A directory with a fresh development key and its JWKS, removed when dropped.
struct KeyDir(PathBuf);

impl KeyDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("dev-sign-in-{}", uuid::Uuid::new_v4()));
        DevKey::generate().unwrap().write(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Gateway flags for `jwt` mode trusting `jwks_dir`'s key, signing in with `key_dir`'s.
fn jwt_flags(jwks_dir: &Path, key_dir: Option<&Path>) -> Vec<String> {
    let mut flags = vec![
        "--auth=jwt".to_owned(),
        format!("--jwt-jwks-file={}", jwks_dir.join(JWKS_FILE).display()),
        format!("--jwt-issuer={ISSUER}"),
        format!("--jwt-audience={AUDIENCE}"),
    ];
    if let Some(dir) = key_dir {
        flags.push(format!(
            "--dev-sign-in-key-file={}",
            dir.join(KEY_FILE).display()
        ));
    }
    flags
}

async fn gateway(flags: &[String]) -> Http {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Http::new(support::start_gateway(support::NO_BACKEND, &flags).await)
}

#[tokio::test]
async fn the_dev_sign_in_is_not_there_unless_configured() {
    let keys = KeyDir::new();
    for http in [
        gateway(&[]).await,
        gateway(&jwt_flags(keys.path(), None)).await,
    ] {
        assert_error(&http.get("/dev/sign-in").await, 404, "NOT_FOUND");
        assert_error(
            &http
                .post("/dev/sign-in", r#"{"userId": 7, "admin": true}"#)
                .await,
            404,
            "NOT_FOUND",
        );
        // Not even a bad body tells it apart from a route that does not exist.
        assert_error(&http.post("/dev/sign-in", "{").await, 404, "NOT_FOUND");
        assert_eq!(http.get("/app-config.json").await.json["devSignIn"], false);
    }
}

#[tokio::test]
async fn a_dev_sign_in_token_is_accepted_by_the_gateway_as_that_user() {
    let keys = KeyDir::new();
    let http = gateway(&jwt_flags(keys.path(), Some(keys.path()))).await;
    assert_eq!(http.get("/dev/sign-in").await.status, 200);
    let config = http.get("/app-config.json").await.json;
    assert_eq!(
        (config["auth"].as_str(), config["devSignIn"].as_bool()),
        (Some("jwt"), Some(true))
    );

    let reply = http.post("/dev/sign-in", r#"{"userId": 7}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let token = reply.json["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    // The identity check comes before any backend: another user's wallet is 403 for user 7
    // (a token the gateway refused would be 401), and user 7's own passes the door (then 503
    // from the backend this test did not start).
    let others = http
        .send_with(
            "GET",
            "/api/users/8/balance",
            None,
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_error(&others, 403, "USER_MISMATCH");
    let own = http
        .send_with(
            "GET",
            "/api/users/7/balance",
            None,
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(own.status, 503, "{}", own.json);
    let forged = http
        .send_with(
            "GET",
            "/api/users/7/balance",
            None,
            None,
            &[("authorization", "Bearer x.y.z")],
        )
        .await;
    assert_error(&forged, 401, "AUTH_INVALID");
}

#[tokio::test]
async fn a_dev_sign_in_token_carries_the_admin_role_only_when_asked() {
    let keys = KeyDir::new();
    let http = gateway(&jwt_flags(keys.path(), Some(keys.path()))).await;
    for (body, roles) in [
        (
            r#"{"userId": 3, "admin": true}"#,
            serde_json::json!(["admin"]),
        ),
        (r#"{"userId": 3, "admin": false}"#, serde_json::json!([])),
        (r#"{"userId": 3}"#, serde_json::json!([])),
    ] {
        let reply = http.post("/dev/sign-in", body).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        let token = reply.json["token"].as_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["sub"], "3");
        assert_eq!(claims["roles"], roles, "{body}");
    }
}

#[tokio::test]
async fn the_dev_sign_in_refuses_bad_bodies_with_their_codes() {
    let keys = KeyDir::new();
    let http = gateway(&jwt_flags(keys.path(), Some(keys.path()))).await;
    assert_error(
        &http.post("/dev/sign-in", r#"{"userId": 0}"#).await,
        400,
        "INVALID_USER_ID",
    );
    assert_error(
        &http
            .post("/dev/sign-in", r#"{"userId": 9007199254740992}"#)
            .await,
        400,
        "INVALID_USER_ID",
    );
    assert_error(&http.post("/dev/sign-in", "{").await, 400, "INVALID_JSON");
    assert_error(
        &http.post("/dev/sign-in", r#"{"admin": true}"#).await,
        400,
        "INVALID_BODY",
    );
    assert_error(
        &http
            .post("/dev/sign-in", r#"{"userId": 1, "roles": ["admin"]}"#)
            .await,
        400,
        "INVALID_BODY",
    );
}

fn config(flags: &[String]) -> gateway::Config {
    let mut args = vec![
        "gateway".to_owned(),
        "--listen-addr=127.0.0.1:0".to_owned(),
        "--metrics-addr=127.0.0.1:0".to_owned(),
    ];
    args.extend(flags.iter().cloned());
    gateway::Config::parse_from(args)
}

async fn start_error(flags: &[String]) -> String {
    match gateway::build(config(flags), std::future::pending()).await {
        Ok(_) => panic!("the gateway started with {flags:?}"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test]
async fn the_gateway_refuses_a_dev_sign_in_it_could_not_honour() {
    let keys = KeyDir::new();
    let other = KeyDir::new();
    let key_file = format!(
        "--dev-sign-in-key-file={}",
        keys.path().join(KEY_FILE).display()
    );

    // Trusted mode: every request already says who it is.
    let trusted = start_error(&["--auth=trusted".to_owned(), key_file.clone()]).await;
    assert!(trusted.contains("GATEWAY_AUTH=jwt"), "{trusted}");

    // A key whose tokens the gateway's JWKS does not trust.
    let untrusted = start_error(&jwt_flags(other.path(), Some(keys.path()))).await;
    assert!(untrusted.contains("not accepted"), "{untrusted}");

    // No key file there.
    let missing_dir = keys.path().join("missing");
    let missing = start_error(&jwt_flags(keys.path(), Some(&missing_dir))).await;
    assert!(missing.contains("reading"), "{missing}");

    // Not a key.
    std::fs::write(other.path().join(KEY_FILE), "not a key").unwrap();
    let garbage = start_error(&jwt_flags(keys.path(), Some(other.path()))).await;
    assert!(garbage.contains("not an Ed25519 key"), "{garbage}");
}
