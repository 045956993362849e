//! `/healthz` (the process is alive) and `/readyz` (every backend answers its gRPC health check).

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "UP"})) }))
        .route("/readyz", get(readyz))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let checks = state.backends.channels().map(|(name, channel)| {
        let request = state.backends.request(HealthCheckRequest {
            service: String::new(),
        });
        async move {
            let serving = HealthClient::new(channel)
                .check(request)
                .await
                .is_ok_and(|response| response.into_inner().status() == ServingStatus::Serving);
            (name, serving)
        }
    });
    let results = futures::future::join_all(checks).await;
    let ready = results.iter().all(|(_, serving)| *serving);
    let dependencies: serde_json::Map<String, Value> = results
        .into_iter()
        .map(|(name, serving)| (name.to_owned(), json!(if serving { "UP" } else { "DOWN" })))
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"status": if ready { "UP" } else { "DOWN" }, "dependencies": dependencies})),
    )
}
