//! Bearer-token verification: signature by one of the issuer's keys (ES256, RS256 or EdDSA,
//! the algorithm fixed by the key, never by the token), issuer, audience, expiry with a small
//! leeway, and a numeric `sub` that is the user id.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::Value;

use super::{
    IdentityConfig, User,
    jwks::{Jwks, JwksSource},
};
use crate::wire::MAX_ID;

pub struct Verifier {
    jwks: Jwks,
    /// One set of checks per accepted algorithm, built once (each holds the issuer and audience
    /// sets; building them per request allocated on every call).
    validations: [(Algorithm, Validation); 3],
    roles_claim: String,
    admin_role: String,
}

impl Verifier {
    pub async fn from_config(config: &IdentityConfig) -> anyhow::Result<Self> {
        // The configuration was validated with the gateway's (Config::validate).
        let source = match (&config.jwt_jwks_url, &config.jwt_jwks_file) {
            (Some(url), _) => JwksSource::Url(url.parse()?),
            (None, Some(path)) => JwksSource::File(path.clone()),
            (None, None) => anyhow::bail!("no JWKS source"),
        };
        let issuer = config.jwt_issuer.clone().unwrap_or_default();
        let audience = config.jwt_audience.clone().unwrap_or_default();
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&issuer]);
            validation.set_audience(&[&audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.leeway = config.jwt_leeway_secs;
            validation.validate_nbf = true;
            (algorithm, validation)
        };
        Ok(Self {
            jwks: Jwks::load(source).await?,
            validations: [
                validation(Algorithm::ES256),
                validation(Algorithm::RS256),
                validation(Algorithm::EdDSA),
            ],
            roles_claim: config.jwt_roles_claim.clone(),
            admin_role: config.jwt_admin_role.clone(),
        })
    }

    /// The user a token proves, or why it proves nothing (said to the client: the reasons
    /// name only what a holder of a real token could know anyway).
    pub async fn verify(&self, token: &str) -> Result<User, String> {
        let header =
            decode_header(token).map_err(|_| "the bearer token is not a JWT".to_owned())?;
        let key = self
            .jwks
            .key(header.kid.as_deref())
            .await
            .ok_or_else(|| "the bearer token is signed by an unknown key".to_owned())?;
        if header.alg != key.algorithm {
            return Err("the bearer token's algorithm does not match its key".into());
        }
        let (_, validation) = self
            .validations
            .iter()
            .find(|(algorithm, _)| *algorithm == key.algorithm)
            .ok_or_else(|| "the bearer token's algorithm is not accepted".to_owned())?;
        let claims = decode::<HashMap<String, Value>>(token, &key.key, validation)
            .map_err(|error| reason(&error))?
            .claims;
        let id = claims
            .get("sub")
            .and_then(Value::as_str)
            .and_then(|sub| sub.parse::<i64>().ok())
            .filter(|id| (1..=MAX_ID).contains(id))
            .ok_or_else(|| "the token's subject is not a user id".to_owned())?;
        let admin = match claims.get(&self.roles_claim) {
            Some(Value::Array(roles)) => roles
                .iter()
                .any(|role| role.as_str() == Some(&self.admin_role)),
            Some(Value::String(roles)) => roles.split_whitespace().any(|r| r == self.admin_role),
            _ => false,
        };
        Ok(User { id, admin })
    }
}

fn reason(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the bearer token has expired",
        ErrorKind::ImmatureSignature => "the bearer token is not valid yet",
        ErrorKind::InvalidIssuer => "the bearer token is from another issuer",
        ErrorKind::InvalidAudience => "the bearer token is for another audience",
        ErrorKind::MissingRequiredClaim(_) => "the bearer token lacks a required claim",
        ErrorKind::InvalidSignature => "the bearer token's signature is invalid",
        _ => "the bearer token is invalid",
    }
    .to_owned()
}
