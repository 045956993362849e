//! The load generator's HTTP client: [`kit::http_client`]'s pooled keep-alive client (TCP_NODELAY,
//! 4096 idle connections per host, a 10 s deadline per call) answering status and JSON, plus
//! who is calling. Against a gateway in `jwt` mode each virtual user's copy carries its own
//! bearer token ([`Client::as_user`]); without an identity (trusted mode) requests are exactly
//! as before: no `Authorization` header at all.

use std::{sync::Arc, time::Duration};

use hyper::{
    Method,
    header::{AUTHORIZATION, HeaderValue},
};
use kit::http_client::{HttpClient, Options};
use serde_json::Value;

use crate::auth::{Identity, OPERATOR_USER_ID};

/// Why a call got no HTTP answer: `Timeout(deadline)` or `Transport(message)`, counted under
/// [`Failure::label`].
pub use kit::http_client::Error as Failure;

#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    /// The development key and the run's minted tokens (`--auth-key-dir`), if any.
    identity: Option<Arc<Identity>>,
    /// `Authorization` sent on every request of this copy.
    bearer: Option<HeaderValue>,
}

pub struct Reply {
    pub status: u16,
    pub json: Value,
}

impl Reply {
    /// The contract's stable error code, when the body carries one.
    pub fn code(&self) -> Option<&str> {
        self.json["code"].as_str()
    }
}

pub type CallResult = Result<Reply, Failure>;

const OPTIONS: Options = Options {
    deadline: Duration::from_secs(10),
    pool_max_idle_per_host: 4096,
};

impl Client {
    pub fn new(base: &str) -> Self {
        Self {
            http: HttpClient::with_options(base, OPTIONS),
            identity: None,
            bearer: None,
        }
    }

    /// Calls as users with tokens from `identity`; this client itself (the run's own checks)
    /// calls as an operator ([`OPERATOR_USER_ID`], admin role).
    pub fn with_identity(mut self, identity: Identity) -> anyhow::Result<Self> {
        self.bearer = Some(identity.bearer(OPERATOR_USER_ID, true)?);
        self.identity = Some(Arc::new(identity));
        Ok(self)
    }

    /// Mints the tokens of users `first..first + count` before a run (nothing in trusted mode).
    pub fn prepare_users(&self, first: u64, count: u64) -> anyhow::Result<()> {
        match &self.identity {
            Some(identity) => identity.prepare(first, count),
            None => Ok(()),
        }
    }

    /// A copy that calls as `user_id` (the same connection pool): with that user's bearer
    /// token when there is an identity, unchanged otherwise.
    pub fn as_user(&self, user_id: u64) -> Self {
        let Some(identity) = &self.identity else {
            return self.clone();
        };
        let mut client = self.clone();
        match identity.for_user(user_id) {
            Ok(bearer) => client.bearer = Some(bearer),
            Err(error) => {
                // Sent without a token: the gateway answers 401 and the run counts it.
                eprintln!("auth: no token for user {user_id}: {error:#}");
                client.bearer = None;
            }
        }
        client
    }

    /// A copy that sends exactly this `Authorization` value (attacks forge their own).
    pub fn with_bearer(&self, value: &str) -> Self {
        let mut client = self.clone();
        client.bearer = HeaderValue::from_str(value).ok();
        client
    }

    /// A copy that sends no `Authorization` at all.
    pub fn without_bearer(&self) -> Self {
        let mut client = self.clone();
        client.bearer = None;
        client
    }

    /// Tokens a scenario failed to mint before its run (0 unless a scenario forgot).
    pub fn tokens_minted_late(&self) -> u64 {
        self.identity.as_ref().map_or(0, |i| i.minted_late())
    }

    pub async fn get(&self, path: &str) -> CallResult {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: String) -> CallResult {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: String) -> CallResult {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// A POST, with an `Idempotency-Key` when `key` is given: sent again with the same key
    /// after a lost answer, it gets the first answer instead of doing it twice.
    pub async fn post_with_key(&self, path: &str, body: String, key: Option<&str>) -> CallResult {
        self.send_with(Method::POST, path, Some(body), key).await
    }

    /// Whether calls carry bearer tokens from a development key (the client itself as an
    /// operator).
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    async fn send(&self, method: Method, path: &str, body: Option<String>) -> CallResult {
        self.send_with(method, path, body, None).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        idempotency_key: Option<&str>,
    ) -> CallResult {
        let mut call = self.http.request(method, path);
        if let Some(key) = idempotency_key {
            call = call.header("idempotency-key", key);
        }
        if let Some(body) = body {
            call = call.json(body);
        }
        if let Some(bearer) = &self.bearer {
            call = call.header(AUTHORIZATION, bearer.clone());
        }
        let reply = call.send().await?;
        Ok(Reply {
            status: reply.status,
            json: reply.json(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::Client;
    use crate::auth::{Identity, tests::key_dir};

    /// The raw bytes of the next request the client sends, answered with an empty 200.
    async fn capture(listener: &TcpListener) -> String {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap();
            seen.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    break;
                }
            }
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            .await
            .unwrap();
        String::from_utf8(seen).unwrap()
    }

    #[tokio::test]
    async fn without_an_identity_no_authorization_is_sent_and_with_one_only_that_line_is_added() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let body = r#"{"userId": 7}"#.to_owned();

        let trusted = Client::new(&base).as_user(7);
        let (reply, plain) = tokio::join!(
            trusted.post("/queue/issue-token", body.clone()),
            capture(&listener)
        );
        assert_eq!(reply.unwrap().status, 200);
        assert!(
            !plain.to_ascii_lowercase().contains("authorization"),
            "{plain}"
        );
        assert!(
            plain.starts_with("POST /queue/issue-token HTTP/1.1\r\n"),
            "{plain}"
        );
        assert!(plain.ends_with(&format!("\r\n\r\n{body}")), "{plain}");

        let dir = key_dir("client");
        let client = Client::new(&base)
            .with_identity(Identity::load(&dir).unwrap())
            .unwrap();
        client.prepare_users(7, 1).unwrap();
        let user = client.as_user(7);
        let (reply, signed) = tokio::join!(
            user.post("/queue/issue-token", body.clone()),
            capture(&listener)
        );
        assert_eq!(reply.unwrap().status, 200);
        let mut extra: Vec<&str> = signed.split("\r\n").collect();
        let at = extra
            .iter()
            .position(|l| l.starts_with("authorization: Bearer "))
            .expect("a bearer line");
        let token = extra
            .remove(at)
            .trim_start_matches("authorization: Bearer ")
            .to_owned();
        assert_eq!(
            extra.join("\r\n"),
            plain,
            "the bearer line is the only difference"
        );
        assert_eq!(client.tokens_minted_late(), 0);

        // The token verifies against the key's JWKS and names user 7.
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(&std::fs::read_to_string(dir.join("jwks.json")).unwrap()).unwrap();
        let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[kit::dev_identity::ISSUER]);
        validation.set_audience(&[kit::dev_identity::AUDIENCE]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "7");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
