//! Bearer tokens for a gateway that runs `GATEWAY_AUTH=jwt`: minted from the development key
//! (`cargo xtask up --auth jwt` writes it under target/dev-identity), one per virtual user and
//! all of them before the run starts, so signing is never inside a timed call.

use std::{
    path::Path,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use hyper::header::HeaderValue;
use kit::dev_identity::DevKey;

/// How long a minted token stays valid: longer than any run.
pub const TOKEN_TTL: Duration = Duration::from_secs(4 * 3600);

/// The user the run's own checks (availability, reservations) call as; an operator.
pub const OPERATOR_USER_ID: u64 = 1;

/// The development key and the tokens minted from it for the run's users.
pub struct Identity {
    key: DevKey,
    /// The users of the current run (or step), minted by [`Identity::prepare`].
    prepared: RwLock<Arc<Bearers>>,
    /// Users asked for that had not been prepared (minted on the spot; should stay 0).
    minted_late: AtomicU64,
}

/// `Authorization` values for users `first..first + values.len()`.
#[derive(Default)]
struct Bearers {
    first: u64,
    values: Vec<HeaderValue>,
}

impl Identity {
    /// Reads the key `cargo xtask up --auth jwt` wrote into `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            key: DevKey::load(dir)?,
            prepared: RwLock::new(Arc::default()),
            minted_late: AtomicU64::new(0),
        })
    }

    /// `Bearer <token>` for one user.
    pub fn bearer(&self, user_id: u64, admin: bool) -> anyhow::Result<HeaderValue> {
        let sub = i64::try_from(user_id).context("user id above 2^63")?;
        let token = self.key.mint(sub, admin, TOKEN_TTL)?;
        Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
    }

    /// Mints a token for every user in `first..first + count` (replacing the previous set),
    /// on every core: untimed work before the run.
    pub fn prepare(&self, first: u64, count: u64) -> anyhow::Result<()> {
        let started = Instant::now();
        let count = usize::try_from(count).context("too many users")?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = count.div_ceil(threads).max(1);
        let mut values = Vec::with_capacity(count);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .step_by(chunk)
                .map(|start| {
                    let end = (start + chunk).min(count);
                    scope.spawn(move || {
                        (start..end)
                            .map(|i| self.bearer(first + i as u64, false))
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            for handle in handles {
                let part = handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a minting thread panicked"))??;
                values.extend(part);
            }
            anyhow::Ok(())
        })?;
        *self
            .prepared
            .write()
            .map_err(|_| anyhow::anyhow!("identity lock poisoned"))? =
            Arc::new(Bearers { first, values });
        if count >= 1000 {
            eprintln!(
                "auth: {count} bearer tokens minted in {:.1} s (before the run)",
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// The prepared `Authorization` value of `user_id`; minted on the spot (and counted) when
    /// the scenario did not prepare it.
    pub fn for_user(&self, user_id: u64) -> anyhow::Result<HeaderValue> {
        if let Ok(prepared) = self.prepared.read()
            && let Some(value) = user_id
                .checked_sub(prepared.first)
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| prepared.values.get(i))
        {
            return Ok(value.clone());
        }
        if self.minted_late.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!("auth: user {user_id} had no token minted before the run; minting now");
        }
        self.bearer(user_id, false)
    }

    /// Tokens minted during the run because a scenario had not prepared them.
    pub fn minted_late(&self) -> u64 {
        self.minted_late.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    pub(crate) fn key_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("loadtest-{name}-{}", std::process::id()));
        DevKey::generate().unwrap().write(&dir).unwrap();
        dir
    }

    #[test]
    fn prepared_users_get_their_own_token_and_others_are_minted_late() {
        let dir = key_dir("identity");
        let identity = Identity::load(&dir).unwrap();
        identity.prepare(1000, 50).unwrap();
        let first = identity.for_user(1000).unwrap();
        let last = identity.for_user(1049).unwrap();
        assert_ne!(first, last);
        assert!(first.to_str().unwrap().starts_with("Bearer ey"));
        assert_eq!(identity.minted_late(), 0);
        identity.for_user(999).unwrap();
        identity.for_user(1050).unwrap();
        assert_eq!(identity.minted_late(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
