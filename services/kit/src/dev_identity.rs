//! A development identity provider: an Ed25519 signing key with its JWKS, and bearer tokens
//! signed with it. `cargo xtask up --auth jwt` writes one under target/, `cargo xtask token`
//! and the load generator mint tokens from it, and tests stand it in for a real OIDC issuer.
//! Never a production key: the private half sits in a file next to the build.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use base64::Engine;
use ed25519_dalek::{
    SigningKey,
    pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// The `iss` of every development token.
pub const ISSUER: &str = "https://ticketing.invalid/dev-issuer";
/// The `aud` of every development token.
pub const AUDIENCE: &str = "ticketing";
/// The role that marks an operator.
pub const ADMIN_ROLE: &str = "admin";
/// File names inside the key directory.
pub const KEY_FILE: &str = "dev-signing-key.pem";
pub const JWKS_FILE: &str = "jwks.json";

/// The claims of a development token, as an OIDC provider would put them.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    iat: u64,
    exp: u64,
    roles: Vec<&'a str>,
}

/// An Ed25519 signing key and its key id.
pub struct DevKey {
    signing: SigningKey,
    encoding: EncodingKey,
    kid: String,
}

impl DevKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
        Self::from_signing(SigningKey::from_bytes(&seed))
    }

    fn from_signing(signing: SigningKey) -> anyhow::Result<Self> {
        let der = signing
            .to_pkcs8_der()
            .map_err(|error| anyhow::anyhow!("encoding the key: {error}"))?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        // The key id is derived from the public key, so a rewritten key gets a new one.
        let public = signing.verifying_key().to_bytes();
        let kid = format!("dev-{}", hex8(&public));
        Ok(Self {
            signing,
            encoding,
            kid,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JSON Web Key Set (RFC 7517, OKP/Ed25519 per RFC 8037).
    pub fn jwks_json(&self) -> String {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.signing.verifying_key().to_bytes());
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
        .to_string()
    }

    /// Writes the private key (PKCS#8 PEM, owner-only) and the JWKS into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pem = self
            .signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| anyhow::anyhow!("encoding the key: {error}"))?;
        let key_path = dir.join(KEY_FILE);
        std::fs::write(&key_path, pem.as_bytes())
            .with_context(|| format!("writing {}", key_path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::write(dir.join(JWKS_FILE), self.jwks_json())
            .with_context(|| format!("writing {}", dir.join(JWKS_FILE).display()))?;
        Ok(())
    }

    /// Reads the key [`DevKey::write`] wrote into `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Self::load_file(&dir.join(KEY_FILE))
    }

    /// Reads a key file [`DevKey::write`] wrote (the gateway's development sign-in names it).
    pub fn load_file(key_path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(key_path).with_context(|| {
            format!(
                "reading {} (run `cargo xtask up --auth jwt` first)",
                key_path.display()
            )
        })?;
        let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|error| {
            anyhow::anyhow!("{} is not an Ed25519 key: {error}", key_path.display())
        })?;
        Self::from_signing(signing)
    }

    /// Reads the key in `dir`, or creates and writes one there.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        if dir.join(KEY_FILE).exists() {
            return Self::load(dir);
        }
        let key = Self::generate()?;
        key.write(dir)?;
        Ok(key)
    }

    /// A bearer token for `user_id`, an operator's when `admin`, valid for `ttl`.
    pub fn mint(&self, user_id: i64, admin: bool, ttl: Duration) -> anyhow::Result<String> {
        self.mint_at(user_id, admin, now_secs(), ttl)
    }

    /// As [`DevKey::mint`], issued at `iat` (unix seconds): tests make expired tokens with it.
    pub fn mint_at(
        &self,
        user_id: i64,
        admin: bool,
        iat: u64,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            iss: ISSUER,
            aud: AUDIENCE,
            sub: user_id.to_string(),
            iat,
            exp: iat + ttl.as_secs(),
            roles: if admin { vec![ADMIN_ROLE] } else { Vec::new() },
        };
        self.sign(&claims)
    }

    /// Signs any claims with this key (tests forge tokens with wrong claims through it).
    pub fn sign(&self, claims: &impl Serialize) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// The conventional key directory of a checkout: `target/dev-identity`.
pub fn default_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("dev-identity")
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_written_key_loads_back_with_the_same_kid_and_jwks() {
        let dir = std::env::temp_dir().join(format!("dev-identity-{}", std::process::id()));
        let key = DevKey::generate().unwrap();
        key.write(&dir).unwrap();
        let loaded = DevKey::load(&dir).unwrap();
        assert_eq!(loaded.kid(), key.kid());
        assert_eq!(
            std::fs::read_to_string(dir.join(JWKS_FILE)).unwrap(),
            key.jwks_json()
        );
        let token = loaded.mint(7, true, Duration::from_secs(60)).unwrap();
        assert_eq!(token.split('.').count(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
