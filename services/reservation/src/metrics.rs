//! What the reservation service exports on its metrics port: its gRPC calls (kit's layer),
//! holds and payments by outcome (counted from the same facts the layer sees: the method, and
//! the stable error code of a refusal), the holds being decided, its pool's usage and the time
//! of each store call.
//!
//! Outcomes: `held` / `paid` for a success (an idempotent replay counts again), otherwise the
//! error code in lower case (`seat_taken`, `seat_limit_reached`, `insufficient_funds`, ...), or
//! the gRPC code's name for a failure without one (`deadline_exceeded`).

use std::sync::Arc;

use kit::metrics::{
    GrpcMetrics, PoolUsage, Registry, StoreLatency,
    client::metrics::{counter::Counter, family::Family, gauge::Gauge},
};

type Outcomes = Family<[(&'static str, String); 1], Counter>;

pub struct ReservationMetrics {
    pub grpc: GrpcMetrics,
    /// `store_operation_duration_seconds{store="postgres", operation=...}`.
    pub store: StoreLatency,
    /// `reservation_holds_in_flight`: the gauge the hold load tracker counts on.
    pub holds_in_flight: Gauge,
}

impl ReservationMetrics {
    pub fn register(registry: &mut Registry, pool: &sqlx::PgPool) -> Self {
        let pool = pool.clone();
        kit::metrics::register_pool(registry, "postgres", move || PoolUsage::of_pg(&pool));
        let holds = Outcomes::default();
        registry.register(
            "reservation_holds",
            "Seat hold requests answered, by outcome (held, or the refusal's code)",
            holds.clone(),
        );
        let payments = Outcomes::default();
        registry.register(
            "reservation_payments",
            "Payments answered, by outcome (paid: a seat sold, or the refusal's code)",
            payments.clone(),
        );
        let holds_in_flight = Gauge::default();
        registry.register(
            "reservation_holds_in_flight",
            "HoldSeat calls being decided now",
            holds_in_flight.clone(),
        );
        let observer = Arc::new(
            move |method: &str, code: &'static str, error: Option<&str>| {
                let (family, success) = match method {
                    "ReservationService/HoldSeat" => (&holds, "held"),
                    "ReservationService/Pay" => (&payments, "paid"),
                    _ => return,
                };
                family
                    .get_or_create(&[("outcome", outcome(success, code, error))])
                    .inc();
            },
        );
        Self {
            grpc: GrpcMetrics::register(registry).with_observer(observer),
            store: StoreLatency::register(registry, "postgres"),
            holds_in_flight,
        }
    }
}

/// The outcome label: `success` for OK, else the error code (or gRPC code) in lower case. The
/// codes are this service's own stable set, so the label set stays small.
fn outcome(success: &str, code: &str, error: Option<&str>) -> String {
    if code == "OK" {
        return success.to_owned();
    }
    error.unwrap_or(code).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::outcome;

    #[test]
    fn outcomes_are_the_success_word_or_the_refusal_code_in_lower_case() {
        assert_eq!(outcome("held", "OK", None), "held");
        assert_eq!(
            outcome("held", "ALREADY_EXISTS", Some("SEAT_TAKEN")),
            "seat_taken"
        );
        assert_eq!(
            outcome("paid", "DEADLINE_EXCEEDED", None),
            "deadline_exceeded"
        );
    }
}
