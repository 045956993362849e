//! How the gateway of a started system identifies callers: trusted as the original clients
//! expect, or by JWTs against the development key.

use std::path::PathBuf;

use anyhow::Context;

use crate::process;

/// The gateway's identity mode (`GATEWAY_AUTH`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    Trusted,
    Jwt,
}

/// How the gateway is told to identify callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayAuth {
    /// `GATEWAY_AUTH=trusted`.
    Trusted,
    /// `GATEWAY_AUTH=jwt` against the development key in `key_dir` (its jwks.json).
    Jwt { key_dir: PathBuf },
}

impl GatewayAuth {
    /// For `jwt`, creates the development key under target/dev-identity, or reuses the one
    /// there, and (re)writes its JWKS.
    pub fn for_mode(mode: AuthMode) -> anyhow::Result<Self> {
        match mode {
            AuthMode::Trusted => Ok(Self::Trusted),
            AuthMode::Jwt => {
                let key_dir = kit::dev_identity::default_dir(&process::target_dir());
                let key = kit::dev_identity::DevKey::load_or_create(&key_dir)?;
                let jwks = key_dir.join(kit::dev_identity::JWKS_FILE);
                std::fs::write(&jwks, key.jwks_json())
                    .with_context(|| format!("writing {}", jwks.display()))?;
                Ok(Self::Jwt { key_dir })
            }
        }
    }

    pub fn mode(&self) -> AuthMode {
        match self {
            Self::Trusted => AuthMode::Trusted,
            Self::Jwt { .. } => AuthMode::Jwt,
        }
    }

    /// The gateway's GATEWAY_AUTH / GATEWAY_JWT_* variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Trusted => vec![("GATEWAY_AUTH", "trusted".into())],
            Self::Jwt { key_dir } => vec![
                ("GATEWAY_AUTH", "jwt".into()),
                (
                    "GATEWAY_JWT_JWKS_FILE",
                    key_dir
                        .join(kit::dev_identity::JWKS_FILE)
                        .display()
                        .to_string(),
                ),
                ("GATEWAY_JWT_ISSUER", kit::dev_identity::ISSUER.into()),
                ("GATEWAY_JWT_AUDIENCE", kit::dev_identity::AUDIENCE.into()),
            ],
        }
    }
}
