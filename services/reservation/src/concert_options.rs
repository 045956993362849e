//! The options of each concert (their ids and seat counts), asked of the catalog over gRPC and
//! cached per concert. An option's seat count never changes once on sale, but an operator may
//! add an option to a concert, so a list is asked again once it is older than the configured
//! staleness. The cached list keeps answering meanwhile (the refresh runs in the background),
//! so GetOutlook, called on every admission tick, waits on the catalog only for a concert's
//! first list, and a catalog outage costs new options, not answers. Concurrent first requests
//! for a concert share one catalog call; a concert the catalog does not know is cached as such.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use kit::grpc::TracedChannel as Channel;
use ticketing_proto::catalog::v1::{self as catalog, catalog_service_client::CatalogServiceClient};
use tokio::sync::OnceCell;

use crate::error::ReservationError;

/// Concerts cached at most; past it the cache starts over (concerts on sale at once are few).
const MAX_CONCERTS: usize = 10_000;
/// A failed background refresh is tried again this much later, not on every call.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// First lists asked of the catalog at once by one call.
const CONCURRENT_FETCHES: usize = 32;

/// One option of a concert, as counting its free seats needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcertOption {
    pub id: i64,
    pub seat_count: u32,
}

/// A concert's options, or `None` for a concert the catalog does not know.
pub type Options = Option<Arc<[ConcertOption]>>;

struct Entry {
    /// Filled by the first fetch, which concurrent first callers share; a refresh replaces it
    /// with a filled one.
    cell: Arc<OnceCell<Options>>,
    /// When the list is next asked again.
    refresh_at: Instant,
    refreshing: bool,
}

#[derive(Clone)]
pub struct ConcertOptions {
    catalog: CatalogServiceClient<Channel>,
    deadline: Duration,
    stale_after: Duration,
    entries: Arc<Mutex<HashMap<i64, Entry>>>,
}

impl ConcertOptions {
    /// Lists from `channel`, each call within `deadline`, asked again after `stale_after`.
    pub fn new(channel: Channel, deadline: Duration, stale_after: Duration) -> Self {
        Self {
            catalog: CatalogServiceClient::new(channel),
            deadline,
            stale_after,
            entries: Arc::default(),
        }
    }

    /// The options of each of `concert_ids` (in no particular order); an unknown concert's are
    /// `None`. Fails only when a concert has never been listed and the catalog fails now.
    pub async fn of_concerts(
        &self,
        concert_ids: &[i64],
    ) -> Result<Vec<(i64, Options)>, ReservationError> {
        // Ids by value and a named method: a closure over `&i64` returning a future is not
        // general enough for the Send bound of the gRPC handler's future.
        futures::stream::iter(concert_ids.iter().copied())
            .map(|concert_id| self.with_id(concert_id))
            .buffer_unordered(CONCURRENT_FETCHES)
            .collect::<Vec<Result<_, ReservationError>>>()
            .await
            .into_iter()
            .collect()
    }

    async fn with_id(&self, concert_id: i64) -> Result<(i64, Options), ReservationError> {
        Ok((concert_id, self.of_concert(concert_id).await?))
    }

    async fn of_concert(&self, concert_id: i64) -> Result<Options, ReservationError> {
        let cell = {
            let mut entries = self
                .entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if entries.len() >= MAX_CONCERTS && !entries.contains_key(&concert_id) {
                entries.clear();
            }
            let now = Instant::now();
            let entry = entries.entry(concert_id).or_insert_with(|| Entry {
                cell: Arc::default(),
                refresh_at: now + self.stale_after,
                refreshing: false,
            });
            if let Some(options) = entry.cell.get() {
                if now >= entry.refresh_at && !entry.refreshing {
                    entry.refreshing = true;
                    tokio::spawn(self.clone().refresh(concert_id));
                }
                return Ok(options.clone());
            }
            entry.cell.clone()
        };
        // Not listed yet: wait for the one first fetch (a failed one leaves the cell empty, so
        // the next caller asks again).
        cell.get_or_try_init(|| self.fetch(concert_id))
            .await
            .cloned()
    }

    /// Asks for the concert's list again; the cached one answers until this replaces it.
    async fn refresh(self, concert_id: i64) {
        let fetched = self.fetch(concert_id).await;
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Gone when the cache started over meanwhile: its next caller lists it afresh.
        let Some(entry) = entries.get_mut(&concert_id) else {
            return;
        };
        entry.refreshing = false;
        match fetched {
            Ok(options) => {
                entry.cell = Arc::new(OnceCell::new_with(Some(options)));
                entry.refresh_at = Instant::now() + self.stale_after;
            }
            Err(error) => {
                tracing::warn!(%error, concert_id, "refreshing a concert's options failed; the cached list answers meanwhile");
                entry.refresh_at = Instant::now() + RETRY_AFTER;
            }
        }
    }

    async fn fetch(&self, concert_id: i64) -> Result<Options, ReservationError> {
        kit::trace::internal("catalog ListOptions", async move {
            // A read: asked again of another replica when one is cut off on its way.
            let answer = kit::grpc::retrying(true, self.deadline, |left| {
                let mut client = self.catalog.clone();
                let request = kit::grpc::request(catalog::ListOptionsRequest { concert_id }, left);
                async move { Ok(client.list_options(request).await?.into_inner()) }
            })
            .await;
            match answer {
                Ok(answer) => Ok(Some(
                    answer
                        .options
                        .into_iter()
                        .map(|option| ConcertOption {
                            id: option.id,
                            seat_count: option.seat_count,
                        })
                        .collect(),
                )),
                Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                Err(status) => Err(ReservationError::Catalog(status)),
            }
        })
        .await
    }
}
