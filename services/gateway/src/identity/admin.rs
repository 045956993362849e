//! Who may use the operator's API. `jwt` mode: a verified user whose roles claim holds the
//! admin role. `trusted` mode (where the userId in a body is believed, so it proves nothing):
//! a bearer secret shared with the operators, `GATEWAY_ADMIN_TOKEN`. Neither: closed.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use crate::{
    AppState,
    error::ApiError,
    identity::{AuthMode, Caller, IdentityConfig, bearer},
};

/// Shortest admin secret accepted at start-up: long enough that guessing it over HTTP is hopeless.
pub const MIN_ADMIN_TOKEN_LEN: usize = 24;

/// How this gateway knows an operator.
#[derive(Clone)]
pub enum AdminAccess {
    /// `jwt` mode: the admin role in a verified token.
    Role,
    /// `trusted` mode with `GATEWAY_ADMIN_TOKEN`.
    Secret(Arc<[u8]>),
    /// `trusted` mode without a secret: nobody is an operator.
    Closed,
}

impl AdminAccess {
    pub fn from_config(config: &IdentityConfig) -> Self {
        match (config.mode, &config.admin_token) {
            (AuthMode::Jwt, _) => Self::Role,
            (AuthMode::Trusted, Some(secret)) => Self::Secret(secret.as_bytes().into()),
            (AuthMode::Trusted, None) => Self::Closed,
        }
    }
}

/// An operator, proven; `actor` names them in the change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    pub actor: String,
}

/// The name the change log gives whoever holds the shared admin secret.
pub const SECRET_ACTOR: &str = "admin-token";

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let caller = parts.extensions.get::<Caller>().copied();
        match (caller, &state.admin) {
            (Some(Caller::User(user)), _) if user.admin => Ok(Self {
                actor: format!("user:{}", user.id),
            }),
            (Some(Caller::User(_)), _) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ADMIN_ROLE_REQUIRED",
                "the signed-in user is not an operator",
            )
            .into_response()),
            (Some(Caller::Trusted), AdminAccess::Secret(secret)) => match bearer(&parts.headers) {
                Ok(None) => Err(credential_required()),
                Ok(Some(token)) if bool::from(token.as_bytes().ct_eq(secret)) => Ok(Self {
                    actor: SECRET_ACTOR.to_owned(),
                }),
                Ok(Some(_)) | Err(_) => Err(invalid_credential()),
            },
            (Some(Caller::Trusted), _) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "ADMIN_CLOSED",
                "the operator's API is closed: set GATEWAY_ADMIN_TOKEN (trusted mode) or \
                 sign in with the admin role (jwt mode)",
            )
            .into_response()),
            (Some(Caller::Anonymous) | None, _) => Err(credential_required()),
        }
    }
}

fn credential_required() -> Response {
    (
        [(header::WWW_AUTHENTICATE, "Bearer")],
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AUTH_REQUIRED",
            "the operator's API needs Authorization: Bearer <admin credential>",
        ),
    )
        .into_response()
}

fn invalid_credential() -> Response {
    (
        [(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)],
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AUTH_INVALID",
            "the admin credential is wrong",
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    fn validate(args: &[&str]) -> Result<(), String> {
        let mut all = vec!["gateway"];
        all.extend_from_slice(args);
        crate::Config::parse_from(all).validate()
    }

    #[test]
    fn an_admin_secret_must_be_long_visible_ascii_and_is_for_trusted_mode_only() {
        let long = "--admin-token=0123456789abcdefghijklmn";
        assert_eq!(validate(&["--auth=trusted", long]), Ok(()));
        assert!(validate(&["--auth=trusted", "--admin-token=short"]).is_err());
        assert!(validate(&["--auth=trusted", "--admin-token=0123456789 abcdefghijklmn"]).is_err());
        let jwt = [
            "--auth=jwt",
            "--jwt-jwks-url=https://issuer.example/jwks.json",
            "--jwt-issuer=https://issuer.example/",
            "--jwt-audience=ticketing",
        ];
        assert_eq!(validate(&jwt), Ok(()));
        let mut jwt_with_secret = jwt.to_vec();
        jwt_with_secret.push(long);
        assert!(validate(&jwt_with_secret).is_err());
    }
}
