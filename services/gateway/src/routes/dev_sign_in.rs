//! The development sign-in: `POST /dev/sign-in {"userId": 7, "admin": false}` →
//! `{"token": "<JWT>"}`, signed with the development key `cargo xtask up --auth jwt` writes, so
//! the fan's page and the console can be tried in `jwt` mode without an identity provider.
//!
//! Off unless `GATEWAY_DEV_SIGN_IN_KEY_FILE` names that key; refused at start-up unless
//! `GATEWAY_AUTH=jwt` and the key signs tokens the gateway's JWKS accepts. When off, both
//! routes are the gateway's usual 404: nothing says the feature exists. Anyone who can reach a
//! gateway with it on can be anyone, operators included — never in production.

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use kit::dev_identity::DevKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::ApiError,
    extract::JsonBody,
    identity::{AuthMode, Identity, User},
    wire::valid_id,
};

/// How long a development token is valid: a working session.
const TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status, sign_in))
}

/// The development sign-in setting.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DevSignInConfig {
    /// The development signing key (PKCS#8 PEM) that `cargo xtask up --auth jwt` writes to
    /// target/dev-identity/dev-signing-key.pem. Set, it turns on `POST /dev/sign-in`, which
    /// hands anyone a token for any user, operators included: development only, `jwt` only.
    #[arg(long, env = "GATEWAY_DEV_SIGN_IN_KEY_FILE")]
    pub dev_sign_in_key_file: Option<PathBuf>,
}

impl DevSignInConfig {
    pub fn validate(&self, mode: AuthMode) -> Result<(), String> {
        if self.dev_sign_in_key_file.is_some() && mode != AuthMode::Jwt {
            return Err(
                "GATEWAY_DEV_SIGN_IN_KEY_FILE needs GATEWAY_AUTH=jwt (in trusted mode every \
                 request already says who it is)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The key tokens are minted with, when the development sign-in is on.
#[derive(Clone, Default)]
pub struct DevSignIn {
    key: Option<Arc<DevKey>>,
}

impl DevSignIn {
    /// Loads the key and proves the gateway accepts what it signs: a sign-in whose tokens are
    /// then refused would only confuse.
    pub async fn from_config(
        config: &DevSignInConfig,
        identity: &Identity,
    ) -> anyhow::Result<Self> {
        let Some(path) = &config.dev_sign_in_key_file else {
            return Ok(Self::default());
        };
        let Identity::Jwt(verifier) = identity else {
            anyhow::bail!("GATEWAY_DEV_SIGN_IN_KEY_FILE needs GATEWAY_AUTH=jwt");
        };
        let key = DevKey::load_file(path)?;
        let probe = key.mint(1, true, Duration::from_secs(60))?;
        if verifier.verify(&probe).await != Ok(User { id: 1, admin: true }) {
            anyhow::bail!(
                "GATEWAY_DEV_SIGN_IN_KEY_FILE: tokens signed with {} are not accepted by the \
                 gateway's JWKS, issuer, audience and roles claim (is it the key of \
                 GATEWAY_JWT_JWKS_FILE?)",
                path.display()
            );
        }
        tracing::warn!(
            key = %path.display(),
            "DEVELOPMENT SIGN-IN IS ON: POST /dev/sign-in gives anyone a token for any user, \
             operators included. Never run this outside development."
        );
        Ok(Self {
            key: Some(Arc::new(key)),
        })
    }

    pub fn enabled(&self) -> bool {
        self.key.is_some()
    }

    fn key(&self) -> Result<&DevKey, ApiError> {
        // Off looks exactly like a route that does not exist.
        self.key
            .as_deref()
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route"))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignInBody {
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    user_id: i64,
    #[serde(default)]
    admin: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInView {
    /// A bearer token for `Authorization: Bearer …`.
    token: String,
    expires_in_seconds: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SignInStatus {
    enabled: bool,
}

crate::errors!(local StatusErrors {
    404 => ["NOT_FOUND"],
});

/// 200 when the development sign-in is on (the pages ask before showing its form), else 404.
#[utoipa::path(
    get,
    path = "/dev/sign-in",
    tag = "pages",
    operation_id = "getDevSignIn",
    security(()),
    responses(
        (status = 200, description = "The development sign-in is on", body = SignInStatus),
        StatusErrors,
    )
)]
async fn status(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.dev_sign_in.key()?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(SignInStatus { enabled: true }),
    ))
}

crate::errors!(local SignInErrors {
    400 => ["INVALID_JSON", "INVALID_BODY", "INVALID_USER_ID"],
    404 => ["NOT_FOUND"],
});

/// A development token for any user (`admin`: with the operator role). Development only:
/// 404 unless `GATEWAY_DEV_SIGN_IN_KEY_FILE` is set (`cargo xtask up --auth jwt` sets it).
#[utoipa::path(
    post,
    path = "/dev/sign-in",
    tag = "pages",
    operation_id = "devSignIn",
    request_body = SignInBody,
    security(()),
    responses(
        (status = 200, description = "A bearer token", body = SignInView),
        SignInErrors,
    )
)]

async fn sign_in(
    State(state): State<AppState>,
    body: Result<JsonBody<SignInBody>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    // Off is 404 whatever the body: the route must not answer as if it existed.
    let key = state.dev_sign_in.key()?;
    let JsonBody(body) = body?;
    let user_id = valid_id(body.user_id, "INVALID_USER_ID", "userId")?;
    let token = key.mint(user_id, body.admin, TOKEN_TTL).map_err(|error| {
        tracing::error!(%error, "minting a development token failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        )
    })?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(SignInView {
            token,
            expires_in_seconds: TOKEN_TTL.as_secs(),
        }),
    ))
}
