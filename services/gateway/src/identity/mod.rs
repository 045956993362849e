//! Who is calling. `trusted` believes the userId a request carries (the original clients);
//! `jwt` verifies an OIDC-style bearer token and the user is its `sub`. One layer works the
//! caller out for every request; handlers take a [`Caller`] and never read credentials.

pub mod admin;
pub mod jwks;
pub mod jwt;

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, wire::valid_id};

/// How the gateway knows who calls. There is no default: a deployment says which.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Believe the userId in the request (the original clients; never on the public internet).
    Trusted,
    /// Verify `Authorization: Bearer` JWTs against the issuer's JWKS.
    Jwt,
}

/// Identity settings.
#[derive(clap::Args, Clone, Debug)]
pub struct IdentityConfig {
    /// `trusted` (userId in requests is believed) or `jwt` (bearer tokens are verified). Required.
    #[arg(long = "auth", env = "GATEWAY_AUTH", value_enum)]
    pub mode: AuthMode,

    /// The issuer's JWKS over HTTP(S) (re-fetched when a token names an unknown key id).
    #[arg(long, env = "GATEWAY_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// The issuer's JWKS as a file (instead of a URL).
    #[arg(long, env = "GATEWAY_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<std::path::PathBuf>,

    /// The required `iss` claim.
    #[arg(long, env = "GATEWAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The required `aud` claim (one of the token's audiences).
    #[arg(long, env = "GATEWAY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "GATEWAY_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,

    /// The claim that lists the caller's roles (an array, or a space-separated string).
    #[arg(long, env = "GATEWAY_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,

    /// The role that marks an operator.
    #[arg(long, env = "GATEWAY_JWT_ADMIN_ROLE", default_value = "admin")]
    pub jwt_admin_role: String,

    /// `trusted` mode only: the bearer secret that opens the operator's API (`/admin/...`).
    /// Unset, the operator's API is closed. At least 24 visible ASCII characters.
    #[arg(long, env = "GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl IdentityConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(secret) = &self.admin_token {
            if self.mode == AuthMode::Jwt {
                return Err(
                    "GATEWAY_ADMIN_TOKEN is for trusted mode; with GATEWAY_AUTH=jwt \
                            operators sign in with the admin role"
                        .into(),
                );
            }
            if secret.len() < admin::MIN_ADMIN_TOKEN_LEN
                || !secret.bytes().all(|byte| byte.is_ascii_graphic())
            {
                return Err(format!(
                    "GATEWAY_ADMIN_TOKEN must be at least {} visible ASCII characters",
                    admin::MIN_ADMIN_TOKEN_LEN
                ));
            }
        }
        if self.mode == AuthMode::Trusted {
            return Ok(());
        }
        match (&self.jwt_jwks_url, &self.jwt_jwks_file) {
            (Some(_), Some(_)) => {
                return Err("set one of GATEWAY_JWT_JWKS_URL and GATEWAY_JWT_JWKS_FILE".into());
            }
            (None, None) => {
                return Err(
                    "GATEWAY_AUTH=jwt needs GATEWAY_JWT_JWKS_URL or GATEWAY_JWT_JWKS_FILE".into(),
                );
            }
            (Some(url), None) => {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|_| format!("GATEWAY_JWT_JWKS_URL is not a URL: {url:?}"))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) {
                    return Err("GATEWAY_JWT_JWKS_URL must be http:// or https://".into());
                }
            }
            (None, Some(_)) => {}
        }
        if self.jwt_issuer.as_deref().is_none_or(str::is_empty)
            || self.jwt_audience.as_deref().is_none_or(str::is_empty)
        {
            return Err(
                "GATEWAY_AUTH=jwt needs GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE".into(),
            );
        }
        Ok(())
    }
}

/// What the gateway checks callers with.
#[derive(Clone)]
pub enum Identity {
    Trusted,
    Jwt(Arc<jwt::Verifier>),
}

impl Identity {
    pub async fn from_config(config: &IdentityConfig) -> anyhow::Result<Self> {
        Ok(match config.mode {
            AuthMode::Trusted => Self::Trusted,
            AuthMode::Jwt => Self::Jwt(Arc::new(jwt::Verifier::from_config(config).await?)),
        })
    }
}

/// A verified user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub admin: bool,
}

/// The caller of one request, as the identity layer found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// `trusted` mode: whoever the request says.
    Trusted,
    /// `jwt` mode, a valid bearer token.
    User(User),
    /// `jwt` mode, no credential: only public routes answer.
    Anonymous,
}

impl Caller {
    /// The user a request acts as. Trusted: the claimed id, which must be there. Verified: the
    /// token's subject, which a claimed id must equal.
    pub fn acting_user(&self, claimed: Option<i64>, field: &str) -> Result<i64, ApiError> {
        match (self, claimed) {
            (Self::Trusted, Some(claimed)) => valid_id(claimed, "INVALID_USER_ID", field),
            (Self::Trusted, None) => Err(ApiError::bad_request(
                "INVALID_BODY",
                format!("{field} is required"),
            )),
            (Self::User(user), Some(claimed)) if claimed != user.id => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "USER_MISMATCH",
                format!("{field} is not the signed-in user"),
            )),
            (Self::User(user), _) => Ok(user.id),
            (Self::Anonymous, _) => Err(auth_required()),
        }
    }

    /// Whether the caller may see what belongs to `owner` (operators see everything).
    pub fn may_see(&self, owner: i64) -> bool {
        match self {
            Self::Trusted => true,
            Self::User(user) => user.admin || user.id == owner,
            Self::Anonymous => false,
        }
    }

    /// True when identity is proven: other users' things are then hidden, not refused.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::User(_))
    }
}

/// Handlers that act for a user take a `Caller`: anonymous callers in `jwt` mode are 401.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller::Anonymous) | None => Err(auth_required()),
            Some(caller) => Ok(*caller),
        }
    }
}

fn auth_required() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "AUTH_REQUIRED",
        "sign in: send Authorization: Bearer <token>",
    )
}

/// The caller of `request`, worked out once per request by the request layer (app.rs). A
/// credential that is present but wrong is refused (401), whatever the route.
pub async fn caller_of(identity: &Identity, headers: &HeaderMap) -> Result<Caller, Response> {
    match identity {
        Identity::Trusted => Ok(Caller::Trusted),
        Identity::Jwt(verifier) => match bearer(headers) {
            Ok(None) => Ok(Caller::Anonymous),
            Ok(Some(token)) => match verifier.verify(token).await {
                Ok(user) => Ok(Caller::User(user)),
                Err(reason) => Err(invalid_token(&reason)),
            },
            Err(reason) => Err(invalid_token(reason)),
        },
    }
}

/// The bearer token of `Authorization`, if any; an Authorization of another kind is an error.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not ASCII")?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or("Authorization must be `Bearer <token>`")?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err("Authorization must be `Bearer <token>`");
    }
    Ok(Some(token.trim()))
}

fn invalid_token(reason: &str) -> Response {
    (
        [(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)],
        ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_INVALID", reason.to_owned()),
    )
        .into_response()
}
