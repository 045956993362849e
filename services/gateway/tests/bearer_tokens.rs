//! Bearer tokens against an issuer's JWKS served over HTTP: the three accepted algorithms, the
//! key fixing the algorithm, key rotation picked up on the first token of a new key, and
//! made-up key ids unable to make the gateway hammer the issuer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, routing::get};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kit::dev_identity::{AUDIENCE, DevKey, ISSUER, now_secs};
use serde_json::{Value, json};
use support::{Http, assert_error};

const FIXTURE_JWKS: &str = include_str!("fixtures/es256-rs256-jwks.json");
const ES256_KEY: &[u8] = include_bytes!("fixtures/es256-test-key.pem");
const RS256_KEY: &[u8] = include_bytes!("fixtures/rs256-test-key.pem");

/// An issuer's JWKS endpoint whose document the test can change, counting the fetches.
#[derive(Clone, Default)]
struct Issuer {
    jwks: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn serve(&self) -> SocketAddr {
        async fn jwks(State(issuer): State<Issuer>) -> String {
            issuer.fetches.fetch_add(1, Ordering::SeqCst);
            issuer.jwks.lock().unwrap().clone()
        }
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn publish(&self, sets: &[&str]) {
        let keys: Vec<Value> = sets
            .iter()
            .flat_map(|set| {
                serde_json::from_str::<Value>(set).unwrap()["keys"]
                    .as_array()
                    .unwrap()
                    .clone()
            })
            .collect();
        *self.jwks.lock().unwrap() = json!({ "keys": keys }).to_string();
    }
}

async fn gateway_trusting(issuer: &Issuer) -> Http {
    let addr = issuer.serve().await;
    let url = format!("--jwt-jwks-url=http://{addr}/jwks.json");
    let iss = format!("--jwt-issuer={ISSUER}");
    let aud = format!("--jwt-audience={AUDIENCE}");
    // The queue is never reached: a refused token stops at the door, and an accepted one
    // shows as 503 from the dead queue — anything but 401 means the token was accepted.
    Http::new(support::start_gateway(support::NO_BACKEND, &["--auth=jwt", &url, &iss, &aud]).await)
}

fn claims(user: i64) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": user.to_string(), "exp": now_secs() + 600})
}

fn signed(algorithm: Algorithm, kid: &str, key: &EncodingKey, user: i64) -> String {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims(user), key).unwrap()
}

async fn issue(http: &Http, token: &str) -> support::Reply {
    http.post_with(
        "/queue/issue-token",
        "{}",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

#[tokio::test]
async fn es256_rs256_and_eddsa_tokens_of_the_issuers_keys_are_accepted_and_the_key_fixes_the_algorithm()
 {
    let issuer = Issuer::default();
    let dev = DevKey::generate().unwrap();
    issuer.publish(&[FIXTURE_JWKS, &dev.jwks_json()]);
    let http = gateway_trusting(&issuer).await;
    let es256 = EncodingKey::from_ec_pem(ES256_KEY).unwrap();
    let rs256 = EncodingKey::from_rsa_pem(RS256_KEY).unwrap();
    for token in [
        signed(Algorithm::ES256, "test-es256", &es256, 3),
        signed(Algorithm::RS256, "test-rs256", &rs256, 3),
        dev.mint(3, false, Duration::from_secs(60)).unwrap(),
    ] {
        let reply = issue(&http, &token).await;
        assert_eq!(
            reply.status, 503,
            "accepted, then the dead queue: {}",
            reply.json
        );
    }
    // An RS256 token presented under the ES256 key's id: the key decides, so it is refused.
    let confused = signed(Algorithm::RS256, "test-es256", &rs256, 3);
    assert_error(&issue(&http, &confused).await, 401, "AUTH_INVALID");
    // HS256 with the public key as the secret (the classic confusion): no symmetric keys.
    let public_as_secret = EncodingKey::from_secret(FIXTURE_JWKS.as_bytes()).unwrap();
    let hs = signed(Algorithm::HS256, "test-rs256", &public_as_secret, 3);
    assert_error(&issue(&http, &hs).await, 401, "AUTH_INVALID");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_its_first_token_and_made_up_key_ids_cannot_hammer_the_issuer()
{
    let issuer = Issuer::default();
    let old = DevKey::generate().unwrap();
    issuer.publish(&[&old.jwks_json()]);
    let http = gateway_trusting(&issuer).await;
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        1,
        "keys are read at start-up"
    );
    assert_eq!(
        issue(&http, &old.mint(4, false, Duration::from_secs(60)).unwrap())
            .await
            .status,
        503
    );

    // The issuer rotates: a token of the new key is accepted after one re-fetch.
    let new = DevKey::generate().unwrap();
    issuer.publish(&[&old.jwks_json(), &new.jwks_json()]);
    let reply = issue(&http, &new.mint(4, false, Duration::from_secs(60)).unwrap()).await;
    assert_eq!(reply.status, 503, "{}", reply.json);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);

    // Fifty forged tokens, each naming a key id nobody published: refused, and not one more
    // fetch inside the re-fetch interval.
    for n in 0..50 {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(format!("forged-{n}"));
        let stranger = DevKey::generate().unwrap();
        let token = stranger.sign(&claims(4)).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[0] = base64_header(&header);
        let forged = parts.join(".");
        assert_error(&issue(&http, &forged).await, 401, "AUTH_INVALID");
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
}

fn base64_header(header: &Header) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap())
}
