//! The gRPC edge: wire requests in, repository calls, wire responses out.

use ticketing_proto::catalog::v1::{self as pb, catalog_service_server::CatalogService};
use tonic::{Request, Response, Status};

use crate::{domain::positive_id, error::CatalogError, repo::CatalogRepo};

pub struct CatalogGrpc {
    repo: CatalogRepo,
    /// Every repository call is timed here, the one place the edge reaches the store.
    latency: kit::metrics::StoreLatency,
}

impl CatalogGrpc {
    pub fn new(repo: CatalogRepo, latency: kit::metrics::StoreLatency) -> Self {
        Self { repo, latency }
    }

    /// A repository read, timed, and run again when the server had ended its connection's
    /// session (a restart: `kit::postgres::again_if_session_ended`).
    async fn store<T, F, Fut>(&self, name: &'static str, read: F) -> Result<T, CatalogError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CatalogError>>,
    {
        self.latency
            .time(name, kit::postgres::again_if_session_ended(read))
            .await
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogGrpc {
    async fn list_concerts(
        &self,
        _: Request<pb::ListConcertsRequest>,
    ) -> Result<Response<pb::ListConcertsResponse>, Status> {
        let concerts = self.store("concerts", || self.repo.concerts()).await?;
        Ok(Response::new(pb::ListConcertsResponse {
            concerts: concerts.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_concert(
        &self,
        request: Request<pb::GetConcertRequest>,
    ) -> Result<Response<pb::Concert>, Status> {
        let concert_id = positive_id(
            request.into_inner().concert_id,
            "INVALID_CONCERT_ID",
            "concertId",
        )?;
        Ok(Response::new(
            self.store("concert", || self.repo.concert(concert_id))
                .await?
                .into(),
        ))
    }

    async fn list_options(
        &self,
        request: Request<pb::ListOptionsRequest>,
    ) -> Result<Response<pb::ListOptionsResponse>, Status> {
        let concert_id = positive_id(
            request.into_inner().concert_id,
            "INVALID_CONCERT_ID",
            "concertId",
        )?;
        let options = self
            .store("options", || self.repo.options(concert_id))
            .await?;
        Ok(Response::new(pb::ListOptionsResponse {
            options: options.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_seat_map(
        &self,
        request: Request<pb::GetSeatMapRequest>,
    ) -> Result<Response<pb::SeatMap>, Status> {
        let option_id = positive_id(
            request.into_inner().concert_option_id,
            "INVALID_CONCERT_OPTION_ID",
            "concertOptionId",
        )?;
        Ok(Response::new(
            self.store("seat_map", || self.repo.seat_map(option_id))
                .await?
                .into(),
        ))
    }
}
