//! The fan's page (`/`), the operator's console (`/admin`) and their assets (`/assets/{file}`),
//! embedded in the binary: no CDN, no build step, works offline. `GET /app-config.json` tells
//! the pages how the gateway identifies callers and whether the development sign-in is on.
//!
//! Every page and asset carries an ETag (a hash of its bytes, so a new binary is a new tag) and
//! `Cache-Control: no-cache`: browsers revalidate and get a 304 until the gateway is upgraded.
//! Pages get a Content-Security-Policy that allows only this origin's scripts and styles (none
//! inline) and connections back to this origin.

use std::sync::{Arc, LazyLock};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{AppState, error::ApiError, extract::PathParams, identity::Identity};

/// The pages and their files are outside the API document (`openapi::UNDOCUMENTED`); what
/// the pages ask the gateway is in it.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route("/", get(fan_page))
        .route("/admin", get(console_page))
        .route("/assets/{file}", get(asset))
        .routes(routes!(app_config))
}

/// Who may frame the fan's page.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct PagesConfig {
    /// Origins (comma-separated, e.g. `https://tickets.example`) of sites that embed the fan's
    /// page in a frame and hand it the fan's bearer token with `postMessage`. The page accepts
    /// tokens only from these (and its own origin); the console can never be framed.
    #[arg(long, env = "GATEWAY_EMBED_ORIGINS", value_delimiter = ',')]
    pub embed_origins: Vec<String>,
}

impl PagesConfig {
    pub fn validate(&self) -> Result<(), String> {
        for origin in &self.embed_origins {
            let uri: http::Uri = origin
                .parse()
                .map_err(|_| format!("GATEWAY_EMBED_ORIGINS: {origin:?} is not an origin"))?;
            let bare = uri.path() == "/" && !origin.ends_with('/') && uri.query().is_none();
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() || !bare
            {
                return Err(format!(
                    "GATEWAY_EMBED_ORIGINS: {origin:?} must be scheme://host[:port], nothing more"
                ));
            }
        }
        Ok(())
    }
}

/// What the pages need at run time, built once at start-up.
#[derive(Clone)]
pub struct Pages {
    inner: Arc<PagesInner>,
}

struct PagesInner {
    /// The fan page's Content-Security-Policy (frame-ancestors lists the embedding sites).
    fan_csp: HeaderValue,
    embed_origins: Vec<String>,
}

/// Scripts, styles, fetches and images from this origin only; nothing inline, no plugins.
const BASE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'";

impl Pages {
    pub fn from_config(config: &PagesConfig) -> anyhow::Result<Self> {
        let mut ancestors = vec!["'self'".to_owned()];
        ancestors.extend(config.embed_origins.iter().cloned());
        let fan_csp = HeaderValue::from_str(&format!(
            "{BASE_CSP}; frame-ancestors {}",
            ancestors.join(" ")
        ))?;
        Ok(Self {
            inner: Arc::new(PagesInner {
                fan_csp,
                embed_origins: config.embed_origins.clone(),
            }),
        })
    }
}

/// One embedded file, its content type and its ETag.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const FAN_HTML: Asset = Asset {
    name: "fan.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../assets/fan.html"),
};

const CONSOLE_HTML: Asset = Asset {
    name: "console.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../../assets/console.html"),
};

/// What `/assets/{file}` serves; anything else is the gateway's usual 404.
const ASSETS: &[Asset] = &[
    Asset {
        name: "fan.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/fan.js"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console.js"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/common.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/favicon.svg"),
    },
];

/// ETags by asset name, computed once (FNV-1a over the bytes: a tag, not a security check).
static ETAGS: LazyLock<Vec<(&'static str, HeaderValue)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .chain([&FAN_HTML, &CONSOLE_HTML])
        .map(|asset| {
            let hash = asset.bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
            let tag = HeaderValue::from_str(&format!("\"{hash:016x}\""))
                .unwrap_or(HeaderValue::from_static("\"0\""));
            (asset.name, tag)
        })
        .collect()
});

fn etag_of(name: &str) -> HeaderValue {
    ETAGS
        .iter()
        .find(|(tagged, _)| *tagged == name)
        .map_or(HeaderValue::from_static("\"0\""), |(_, tag)| tag.clone())
}

/// The asset with its headers, or 304 when the browser already holds this version.
fn serve(asset: &Asset, csp: Option<HeaderValue>, request_headers: &HeaderMap) -> Response {
    let etag = etag_of(asset.name);
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == "*" || tag.trim().as_bytes() == etag.as_bytes())
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The fan's bearer token may sit in the URL fragment; fragments are never sent, and no
    // page of this origin needs to tell others where it was.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(csp) = csp {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

async fn fan_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&FAN_HTML, Some(state.pages.inner.fan_csp.clone()), &headers)
}

/// The console never renders inside another site's frame (its buttons pause a sale).
async fn console_page(headers: HeaderMap) -> Response {
    let csp = HeaderValue::from_str(&format!("{BASE_CSP}; frame-ancestors 'none'"))
        .unwrap_or(HeaderValue::from_static("default-src 'none'"));
    let mut response = serve(&CONSOLE_HTML, Some(csp), &headers);
    response
        .headers_mut()
        .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn asset(headers: HeaderMap, PathParams(file): PathParams<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => serve(asset, None, &headers),
        None => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such asset").into_response(),
    }
}

/// What the pages ask before showing a sign-in: the identity mode, whether the development
/// sign-in answers, and which embedding sites may hand over a token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppConfig {
    /// `trusted` or `jwt`.
    #[schema(value_type = String, pattern = "^(trusted|jwt)$")]
    auth: &'static str,
    dev_sign_in: bool,
    embed_origins: Vec<String>,
}

crate::errors!(local AppConfigErrors {});

#[utoipa::path(
    get,
    path = "/app-config.json",
    tag = "pages",
    operation_id = "getAppConfig",
    security(()),
    responses(
        (status = 200, description = "How the pages should sign in", body = AppConfig),
        AppConfigErrors,
    )
)]
async fn app_config(State(state): State<AppState>) -> impl IntoResponse {
    let auth = match state.identity {
        Identity::Trusted => "trusted",
        Identity::Jwt(_) => "jwt",
    };
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(AppConfig {
            auth,
            dev_sign_in: state.dev_sign_in.enabled(),
            embed_origins: state.pages.inner.embed_origins.clone(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_its_own_etag() {
        let tags: Vec<_> = ETAGS.iter().map(|(_, tag)| tag.clone()).collect();
        for (i, tag) in tags.iter().enumerate() {
            assert!(tag.to_str().is_ok_and(|t| t.len() == 18), "{tag:?}");
            assert!(!tags[i + 1..].contains(tag), "duplicate ETag {tag:?}");
        }
    }

    #[test]
    fn embed_origins_must_be_bare_origins() {
        let ok = PagesConfig {
            embed_origins: vec![
                "https://tickets.example".into(),
                "http://127.0.0.1:3000".into(),
            ],
        };
        assert_eq!(ok.validate(), Ok(()));
        for bad in [
            "tickets.example",
            "https://tickets.example/",
            "https://tickets.example/page",
            "javascript:alert(1)",
            "https://a.example; script-src *",
        ] {
            let config = PagesConfig {
                embed_origins: vec![bad.into()],
            };
            assert!(config.validate().is_err(), "{bad:?} should be refused");
        }
    }
}
