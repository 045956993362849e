//! The issuer's public keys: a JSON Web Key Set read from a file or fetched over HTTP(S),
//! re-fetched when a token names a key id we do not know (the issuer rotated its keys) —
//! at most once per [`REFETCH_MIN_INTERVAL`], so forged key ids cannot make us hammer it.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use tokio::sync::{Mutex, RwLock};

/// A key id seen for the first time triggers a re-fetch at most this often.
pub const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Keys older than this are re-fetched on the next unknown key id regardless (revocations).
const MAX_AGE: Duration = Duration::from_secs(3600);
/// Deadline of one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Where the keys come from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    File(PathBuf),
    Url(http::Uri),
}

/// One verification key and the only algorithm it may be used with.
#[derive(Clone)]
pub struct VerifyingKey {
    pub algorithm: Algorithm,
    pub key: Arc<DecodingKey>,
}

struct Loaded {
    by_kid: HashMap<String, VerifyingKey>,
    /// Keys without a `kid`, usable by tokens without one.
    anonymous: Vec<VerifyingKey>,
    fetched_at: Instant,
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

pub struct Jwks {
    source: JwksSource,
    loaded: RwLock<Loaded>,
    /// Serialises re-fetches and remembers when the last one was tried.
    refetch: Mutex<Option<Instant>>,
    client: HttpsClient,
}

impl Jwks {
    /// Loads the keys now: a gateway that cannot read its issuer's keys must not start.
    pub async fn load(source: JwksSource) -> anyhow::Result<Self> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let loaded = read(&source, &client).await?;
        Ok(Self {
            source,
            loaded: RwLock::new(loaded),
            refetch: Mutex::new(None),
            client,
        })
    }

    /// The key for `kid`, re-fetching the set once when it is unknown (rate-limited).
    pub async fn key(&self, kid: Option<&str>) -> Option<VerifyingKey> {
        if let Some(key) = self.lookup(kid).await {
            return Some(key);
        }
        // Only a named key can be newly published; a token without kid gets no re-fetch.
        kid?;
        let mut last = self.refetch.lock().await;
        // Someone else may have re-fetched while we waited.
        if let Some(key) = self.lookup(kid).await {
            return Some(key);
        }
        let stale = self.loaded.read().await.fetched_at.elapsed() >= MAX_AGE;
        let recently = last.is_some_and(|at| at.elapsed() < REFETCH_MIN_INTERVAL);
        if recently && !stale {
            return None;
        }
        *last = Some(Instant::now());
        match read(&self.source, &self.client).await {
            Ok(fresh) => *self.loaded.write().await = fresh,
            Err(error) => {
                tracing::warn!(%error, "re-fetching the JWKS failed; keeping the old keys")
            }
        }
        drop(last);
        self.lookup(kid).await
    }

    async fn lookup(&self, kid: Option<&str>) -> Option<VerifyingKey> {
        let loaded = self.loaded.read().await;
        match kid {
            Some(kid) => loaded.by_kid.get(kid).cloned(),
            None if loaded.anonymous.len() + loaded.by_kid.len() == 1 => loaded
                .anonymous
                .first()
                .or_else(|| loaded.by_kid.values().next())
                .cloned(),
            None => None,
        }
    }
}

async fn read(source: &JwksSource, client: &HttpsClient) -> anyhow::Result<Loaded> {
    let bytes = match source {
        JwksSource::File(path) => tokio::fs::read(path)
            .await
            .map_err(|error| anyhow::anyhow!("reading {}: {error}", path.display()))?
            .into(),
        JwksSource::Url(uri) => fetch(client, uri).await?,
    };
    let set: JwkSet = serde_json::from_slice(&bytes)
        .map_err(|error| anyhow::anyhow!("the JWKS is not a JSON Web Key Set: {error}"))?;
    let mut loaded = Loaded {
        by_kid: HashMap::new(),
        anonymous: Vec::new(),
        fetched_at: Instant::now(),
    };
    for jwk in &set.keys {
        let Some(key) = verifying_key(jwk) else {
            tracing::warn!(kid = ?jwk.common.key_id, "JWKS key skipped: not an ES256, RS256 or EdDSA signing key");
            continue;
        };
        match &jwk.common.key_id {
            Some(kid) => {
                loaded.by_kid.insert(kid.clone(), key);
            }
            None => loaded.anonymous.push(key),
        }
    }
    if loaded.by_kid.is_empty() && loaded.anonymous.is_empty() {
        anyhow::bail!("the JWKS has no usable signing key (ES256, RS256 or EdDSA)");
    }
    Ok(loaded)
}

async fn fetch(client: &HttpsClient, uri: &http::Uri) -> anyhow::Result<Bytes> {
    let call = async {
        let response = client.get(uri.clone()).await?;
        if !response.status().is_success() {
            anyhow::bail!("GET {uri} answered {}", response.status());
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|error| anyhow::anyhow!("reading the JWKS from {uri}: {error}"))?;
        Ok(body.to_bytes())
    };
    tokio::time::timeout(FETCH_TIMEOUT, call)
        .await
        .map_err(|_| anyhow::anyhow!("GET {uri} took longer than {FETCH_TIMEOUT:?}"))?
}

/// The key and its one algorithm, for the three families we accept; `None` for anything else
/// (symmetric keys, encryption keys, other curves).
fn verifying_key(jwk: &Jwk) -> Option<VerifyingKey> {
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    // A declared algorithm must be the one the key type implies.
    let declared = match jwk.common.key_algorithm {
        None => inferred,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return None,
    };
    if declared != inferred {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyingKey {
        algorithm: inferred,
        key: Arc::new(key),
    })
}
