//! Seat existence and prices, asked of the catalog over gRPC and cached per option: a seat
//! map does not change once its option is on sale. Concurrent first requests for an option
//! share one catalog call.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use kit::grpc::TracedChannel as Channel;
use ticketing_proto::catalog::v1::{self as catalog, catalog_service_client::CatalogServiceClient};
use tokio::sync::OnceCell;

use crate::error::ReservationError;

/// Options cached at most; past it the cache starts over (options on sale at once are few).
const MAX_OPTIONS: usize = 10_000;

/// What a hold needs to know about a seat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatPrice {
    pub grade: String,
    pub price_minor: i64,
}

struct OptionSeats {
    sale_opens_at_ms: i64,
    seats: HashMap<i32, SeatPrice>,
}

/// One option's seat map, fetched once however many callers ask at the same time.
type SharedFetch = Arc<OnceCell<Arc<OptionSeats>>>;

#[derive(Clone)]
pub struct SeatPrices {
    catalog: CatalogServiceClient<Channel>,
    deadline: Duration,
    options: Arc<Mutex<HashMap<i64, SharedFetch>>>,
}

impl SeatPrices {
    pub fn new(channel: Channel, deadline: Duration) -> Self {
        Self {
            catalog: CatalogServiceClient::new(channel),
            deadline,
            options: Arc::default(),
        }
    }

    /// The seat's grade and price, if the option exists, is on sale and has that seat.
    pub async fn seat(&self, option_id: i64, seat_no: i32) -> Result<SeatPrice, ReservationError> {
        let option = self.option(option_id).await?;
        if now_ms() < option.sale_opens_at_ms {
            return Err(ReservationError::SaleNotOpen);
        }
        option
            .seats
            .get(&seat_no)
            .cloned()
            .ok_or(ReservationError::SeatNotFound)
    }

    async fn option(&self, option_id: i64) -> Result<Arc<OptionSeats>, ReservationError> {
        let cell = {
            let mut options = self
                .options
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if options.len() >= MAX_OPTIONS && !options.contains_key(&option_id) {
                options.clear();
            }
            options.entry(option_id).or_default().clone()
        };
        cell.get_or_try_init(|| self.fetch(option_id))
            .await
            .cloned()
    }

    #[tracing::instrument(name = "catalog GetSeatMap", skip_all)]
    async fn fetch(&self, option_id: i64) -> Result<Arc<OptionSeats>, ReservationError> {
        let request = kit::grpc::request(
            catalog::GetSeatMapRequest {
                concert_option_id: option_id,
            },
            self.deadline,
        );
        let map = match self.catalog.clone().get_seat_map(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(ReservationError::OptionNotFound);
            }
            Err(status) => return Err(ReservationError::Catalog(status)),
        };
        Ok(Arc::new(OptionSeats {
            sale_opens_at_ms: map.sale_opens_at_unix_ms,
            seats: map
                .seats
                .into_iter()
                .map(|seat| {
                    (
                        seat.seat_id,
                        SeatPrice {
                            grade: seat.grade,
                            price_minor: seat.price_minor,
                        },
                    )
                })
                .collect(),
        }))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
