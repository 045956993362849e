//! A system in `jwt` mode with a development key the test mints bearer tokens from, standing in
//! for a real OIDC issuer.

use std::{path::PathBuf, time::Duration};

use kit::dev_identity::{AUDIENCE, DevKey, ISSUER};

use super::{Reply, System, default_policy};

pub struct JwtSystem {
    pub system: System,
    pub key: DevKey,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The whole system, its gateway in `jwt` mode trusting a fresh development key.
pub async fn jwt_system(extra: &[&str]) -> JwtSystem {
    let dir = std::env::temp_dir().join(format!("jwt-{}", uuid::Uuid::new_v4().simple()));
    let key = DevKey::generate().unwrap();
    key.write(&dir).unwrap();
    let jwks = format!("--jwt-jwks-file={}", dir.join("jwks.json").display());
    let issuer = format!("--jwt-issuer={ISSUER}");
    let audience = format!("--jwt-audience={AUDIENCE}");
    let mut flags = vec![
        "--auth=jwt",
        jwks.as_str(),
        issuer.as_str(),
        audience.as_str(),
    ];
    flags.extend_from_slice(extra);
    JwtSystem {
        system: System::start_with(default_policy(), &flags).await,
        key,
        _dir: TempDir(dir),
    }
}

impl JwtSystem {
    /// `Authorization` for `user`, without the admin role.
    pub fn bearer(&self, user: i64) -> String {
        self.bearer_as(user, false)
    }

    /// `Authorization` for `user`, with the admin role when `admin`.
    pub fn bearer_as(&self, user: i64, admin: bool) -> String {
        let token = self
            .key
            .mint(user, admin, Duration::from_secs(600))
            .unwrap();
        format!("Bearer {token}")
    }

    pub async fn post(&self, user: i64, path: &str, body: &str) -> Reply {
        let bearer = self.bearer(user);
        self.system
            .http
            .post_with(path, body, &[("authorization", &bearer)])
            .await
    }

    pub async fn get(&self, user: i64, path: &str) -> Reply {
        let bearer = self.bearer(user);
        self.system
            .http
            .send_with("GET", path, None, None, &[("authorization", &bearer)])
            .await
    }
}
