//! The browsing reads (the concert list, a concert's options with free-seat counts, an
//! option's free seats) answered from memory for a bounded time.
//!
//! Tens of thousands of admitted fans refresh the same few answers; each used to cost two
//! gRPC hops and a PostgreSQL query. Here each answer's JSON is built once per `ttl` and
//! shared: concurrent misses of one key wait for a single fetch, errors are never kept, and the
//! whole cache is bounded by the bytes it holds.
//!
//! **Staleness bound:** an answer is at most `GATEWAY_READ_CACHE_MS` old when served, plus the
//! one backend read that built it (itself under the request deadline). A hold made through
//! this gateway drops its option's seat list at once, so the fan who held sees it taken on the
//! next read; other replicas' holds show within the bound. The hold stays the authority: a
//! seat shown free a moment too long is refused with `SEAT_TAKEN`.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    body::Bytes,
    http::header,
    response::{IntoResponse, Response},
};
use moka::future::Cache;
use serde::Serialize;

use crate::error::ApiError;

/// Knobs of the read cache.
#[derive(clap::Args, Clone, Debug)]
pub struct ReadCacheConfig {
    /// How long a browsing answer (concert list, options with free-seat counts, free seats)
    /// is served from memory, in milliseconds; 0 turns the cache off. It is also the longest a
    /// seat held elsewhere may still be shown free (the hold refuses it).
    #[arg(long, env = "GATEWAY_READ_CACHE_MS", default_value_t = 500)]
    pub read_cache_ms: u64,

    /// Most bytes of answers kept; past it the least used are dropped first.
    #[arg(long, env = "GATEWAY_READ_CACHE_MAX_BYTES", default_value_t = 64 << 20)]
    pub read_cache_max_bytes: u64,
}

impl ReadCacheConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.read_cache_ms > 60_000 {
            return Err("GATEWAY_READ_CACHE_MS must be at most 60000 (one minute)".into());
        }
        Ok(())
    }
}

/// One cached answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Read {
    Concerts,
    /// Every option of the concert, with counts.
    ConcertOptions(i64),
    /// The options of the concert that have a free seat.
    AvailableDates(i64),
    /// The free seats of the option.
    AvailableSeats(i64),
}

/// A JSON body, serialized once.
#[derive(Clone, Debug)]
pub struct JsonBytes(Bytes);

impl JsonBytes {
    pub fn of<T: Serialize>(value: &T) -> Result<Self, ApiError> {
        serde_json::to_vec(value)
            .map(|body| Self(body.into()))
            .map_err(|error| {
                tracing::error!(%error, "answer did not serialize");
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "internal error",
                )
            })
    }
}

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

#[derive(Clone)]
pub struct ReadCache {
    /// `None`: off (every read goes to the backends).
    entries: Option<Cache<Read, JsonBytes>>,
    /// Each option's concert, as the options reads saw it: a hold names only its option, and
    /// its concert's counts must go too.
    concert_of: Cache<i64, i64>,
}

/// Options whose concert is remembered, at most (a few bytes each).
const OPTIONS_REMEMBERED: u64 = 100_000;

impl ReadCache {
    pub fn from_config(config: &ReadCacheConfig) -> Self {
        let concert_of = Cache::new(OPTIONS_REMEMBERED);
        if config.read_cache_ms == 0 {
            return Self {
                entries: None,
                concert_of,
            };
        }
        let entries = Cache::builder()
            .time_to_live(Duration::from_millis(config.read_cache_ms))
            .weigher(|_read, body: &JsonBytes| u32::try_from(body.0.len()).unwrap_or(u32::MAX))
            .max_capacity(config.read_cache_max_bytes)
            .build();
        Self {
            entries: Some(entries),
            concert_of,
        }
    }

    /// The cached answer for `read`, or the one `fetch` builds (one fetch per key at a time;
    /// a failed fetch is answered to everyone who waited for it and not kept).
    pub async fn get_or_fetch<Fut>(
        &self,
        read: Read,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<JsonBytes, ApiError>
    where
        Fut: Future<Output = Result<JsonBytes, ApiError>>,
    {
        match &self.entries {
            None => fetch().await,
            Some(entries) => entries
                .try_get_with(read, fetch())
                .await
                .map_err(|error: Arc<ApiError>| (*error).clone()),
        }
    }

    /// Drops `read`'s answer: the next read fetches it again.
    pub async fn forget(&self, read: Read) {
        if let Some(entries) = &self.entries {
            entries.invalidate(&read).await;
        }
    }

    /// Remembers which concert `options` belong to (for [`ReadCache::seat_changed`]).
    pub async fn note_options(&self, concert_id: i64, options: Vec<i64>) {
        if self.entries.is_some() {
            for option in options {
                self.concert_of.insert(option, concert_id).await;
            }
        }
    }

    /// A seat of `option_id` was held (or found taken) through this gateway: its free seats
    /// and its concert's counts are read afresh next time.
    pub async fn seat_changed(&self, option_id: i64) {
        self.forget(Read::AvailableSeats(option_id)).await;
        if let Some(concert_id) = self.concert_of.get(&option_id).await {
            self.forget(Read::ConcertOptions(concert_id)).await;
            self.forget(Read::AvailableDates(concert_id)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn cache(ttl_ms: u64) -> ReadCache {
        ReadCache::from_config(&ReadCacheConfig {
            read_cache_ms: ttl_ms,
            read_cache_max_bytes: 1 << 20,
        })
    }

    async fn answer(calls: &AtomicUsize) -> Result<JsonBytes, ApiError> {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        JsonBytes::of(&n)
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_key_share_one_fetch() {
        let cache = cache(60_000);
        let calls = AtomicUsize::new(0);
        let reads = (0..32).map(|_| cache.get_or_fetch(Read::AvailableSeats(1), || answer(&calls)));
        let answers = futures::future::join_all(reads).await;
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_kept_and_forget_refetches() {
        let cache = cache(60_000);
        let failed = cache
            .get_or_fetch(Read::Concerts, || async {
                Err(ApiError::bad_request("NOPE", "no"))
            })
            .await;
        assert_eq!(failed.err().map(|e| e.code), Some("NOPE".into()));
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            cache
                .get_or_fetch(Read::Concerts, || answer(&calls))
                .await
                .map_err(|e| e.code)
                .ok();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the failure was not kept");
        cache.forget(Read::Concerts).await;
        cache
            .get_or_fetch(Read::Concerts, || answer(&calls))
            .await
            .map_err(|e| e.code)
            .ok();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_changed_seat_drops_its_option_and_its_concerts_counts() {
        let cache = cache(60_000);
        let calls = AtomicUsize::new(0);
        let reads = [
            Read::AvailableSeats(5),
            Read::ConcertOptions(2),
            Read::AvailableDates(2),
            Read::ConcertOptions(3),
        ];
        cache.note_options(2, vec![4, 5]).await;
        for read in reads {
            let _ = cache.get_or_fetch(read, || answer(&calls)).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        cache.seat_changed(5).await;
        for read in reads {
            let _ = cache.get_or_fetch(read, || answer(&calls)).await;
        }
        // Option 5's seats and concert 2's two answers again; concert 3's was kept.
        assert_eq!(calls.load(Ordering::SeqCst), 7);
    }

    #[tokio::test]
    async fn ttl_zero_fetches_every_time() {
        let cache = cache(0);
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            cache
                .get_or_fetch(Read::ConcertOptions(7), || answer(&calls))
                .await
                .map_err(|e| e.code)
                .ok();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
