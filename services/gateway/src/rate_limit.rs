//! Requests per caller: a GCRA token bucket per verified user (the JWT subject) and, where
//! configured, per client address (off by default: one load generator or one NAT is one
//! address). Past it: 429 `TOO_MANY_REQUESTS` with `Retry-After`.

use std::{net::IpAddr, net::SocketAddr, num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Request},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use crate::{error::ApiError, identity::Caller};

/// Rate-limit settings.
#[derive(clap::Args, Clone, Debug)]
pub struct RateLimitConfig {
    /// Sustained requests per second per caller (0 = no limit).
    #[arg(long, env = "GATEWAY_RATE_LIMIT_PER_SEC", default_value_t = 20)]
    pub rate_limit_per_sec: u32,

    /// Requests a caller may send at once above the sustained rate.
    #[arg(long, env = "GATEWAY_RATE_LIMIT_BURST", default_value_t = 40)]
    pub rate_limit_burst: u32,

    /// Also limit per client address (behind a proxy every caller shares its address).
    #[arg(long, env = "GATEWAY_RATE_LIMIT_BY_ADDRESS", default_value_t = false, action = clap::ArgAction::Set)]
    pub rate_limit_by_address: bool,
}

impl RateLimitConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_limit_per_sec > 0 && self.rate_limit_burst == 0 {
            return Err("GATEWAY_RATE_LIMIT_BURST must be > 0 when a rate is set".into());
        }
        Ok(())
    }
}

#[derive(Clone, Default)]
pub struct RateLimits {
    per_user: Option<Arc<DefaultKeyedRateLimiter<i64>>>,
    per_address: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        let Some(rate) = NonZeroU32::new(config.rate_limit_per_sec) else {
            return Self::default();
        };
        let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
        let quota = Quota::per_second(rate).allow_burst(burst);
        Self {
            per_user: Some(Arc::new(RateLimiter::keyed(quota))),
            per_address: config
                .rate_limit_by_address
                .then(|| Arc::new(RateLimiter::keyed(quota))),
        }
    }

    /// Forgets callers whose buckets are full again, so the maps hold only recent callers.
    /// Runs until the task is dropped.
    pub async fn housekeeping(self) {
        let mut interval = tokio::time::interval(Duration::from_secs(30));
        loop {
            interval.tick().await;
            if let Some(limiter) = &self.per_user {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            if let Some(limiter) = &self.per_address {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    /// How long the caller must wait, if it is over its rate.
    fn check(&self, caller: Option<&Caller>, peer: Option<IpAddr>) -> Option<Duration> {
        if let (Some(limiter), Some(Caller::User(user))) = (&self.per_user, caller)
            && let Err(not_until) = limiter.check_key(&user.id)
        {
            return Some(not_until.wait_time_from(limiter.clock().now()));
        }
        if let (Some(limiter), Some(ip)) = (&self.per_address, peer)
            && let Err(not_until) = limiter.check_key(&ip)
        {
            return Some(not_until.wait_time_from(limiter.clock().now()));
        }
        None
    }
}

impl RateLimits {
    /// The 429 for a caller over its rate (identity must already be on the request).
    pub fn refusal(&self, request: &Request) -> Option<Response> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let wait = self.check(request.extensions().get::<Caller>(), peer)?;
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Some(
            (
                [(header::RETRY_AFTER, seconds.max(1).to_string())],
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOO_MANY_REQUESTS",
                    "too many requests from this caller; retry later",
                ),
            )
                .into_response(),
        )
    }
}
