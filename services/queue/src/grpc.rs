//! The gRPC edge: wire requests in, domain calls, wire responses out.

use ticketing_proto::queue::v1::{self as pb, queue_service_server::QueueService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{IssueToken, Token, TokenStatus, ValidateToken},
    store::QueueStore,
};

pub struct QueueGrpc {
    store: QueueStore,
}

impl QueueGrpc {
    pub fn new(store: QueueStore) -> Self {
        Self { store }
    }

    /// A token's standing on the wire, with the policy's advice on when to poll again.
    fn reply(&self, status: TokenStatus) -> pb::QueueEntry {
        let poll_after = self.store.policy().poll_after(&status.standing);
        status.into_wire(poll_after)
    }
}

#[tonic::async_trait]
impl QueueService for QueueGrpc {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::QueueEntry>, Status> {
        let IssueToken { user, queue } = request.into_inner().try_into()?;
        let status = self.store.issue(user, queue).await?;
        Ok(Response::new(self.reply(status)))
    }

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::QueueEntry>, Status> {
        let token = Token::parse(&request.into_inner().token)?;
        let status = self.store.status(token).await?;
        Ok(Response::new(self.reply(status)))
    }

    async fn validate_token(
        &self,
        request: Request<pb::ValidateTokenRequest>,
    ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
        let ValidateToken { token, user } = request.into_inner().try_into()?;
        let verdict = self.store.validate(token, user).await?;
        Ok(Response::new(verdict.into()))
    }

    async fn release_token(
        &self,
        request: Request<pb::ReleaseTokenRequest>,
    ) -> Result<Response<pb::ReleaseTokenResponse>, Status> {
        let token = Token::parse(&request.into_inner().token)?;
        let released = self.store.release(token).await?;
        Ok(Response::new(pb::ReleaseTokenResponse { released }))
    }
}
