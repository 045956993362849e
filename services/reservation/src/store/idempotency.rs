//! First answers of requests made with an Idempotency-Key. The key row is written in the same
//! transaction as the operation: a concurrent retry waits on it and then reads the answer; a
//! failed first attempt leaves no row, so its retry runs again.
//!
//! Answers are stored as JSON of the domain types (`answer jsonb`, migration 0003), never in a
//! wire format: the serde form of `Reservation`, `Payment` and `Wallet` is this store's format,
//! pinned by the tests below and by the migration that converted older answers to it.

use futures::future::BoxFuture;
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgPool};

use crate::{
    domain::{IdempotencyKey, Payment, Reservation, Wallet},
    error::ReservationError,
};

/// What an operation made with an Idempotency-Key answers; its operation's name keys the rows
/// (`idempotency_keys.operation`), so an answer is only ever read back as the type it was.
pub trait Answer: Serialize + DeserializeOwned {
    const OPERATION: &'static str;
}

/// HoldSeat answers the reservation held.
impl Answer for Reservation {
    const OPERATION: &'static str = "hold";
}

/// Pay answers the payment made.
impl Answer for Payment {
    const OPERATION: &'static str = "pay";
}

/// ChargeWallet answers the wallet charged.
impl Answer for Wallet {
    const OPERATION: &'static str = "charge";
}

/// Which request a key belongs to (besides its operation, given by the answer's type).
pub struct Scope<'a> {
    pub user_id: i64,
    pub key: &'a IdempotencyKey,
    /// The request's parameters: the same key with other parameters is refused.
    pub fingerprint: String,
}

impl<'a> Scope<'a> {
    pub fn new(user_id: i64, key: &'a IdempotencyKey, fingerprint: String) -> Self {
        Self {
            user_id,
            key,
            fingerprint,
        }
    }
}

/// The key row of `T`'s operation for `scope`: its fingerprint and stored answer.
const STORED: &str = "select fingerprint, answer::text from idempotency_keys \
     where operation = $1 and user_id = $2 and key = $3";

fn decode<T: Answer>(answer: Option<String>) -> Result<T, ReservationError> {
    let answer = answer.ok_or_else(|| {
        ReservationError::Corrupt(format!("{} idempotency row without answer", T::OPERATION))
    })?;
    serde_json::from_str(&answer).map_err(|error| {
        ReservationError::Corrupt(format!("{} idempotency answer: {error}", T::OPERATION))
    })
}

/// Runs `operation` in a transaction once per key; later calls with the key get the first
/// answer.
pub async fn once<T, F>(
    pool: &PgPool,
    scope: Scope<'_>,
    operation: F,
) -> Result<T, ReservationError>
where
    T: Answer,
    F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, ReservationError>>,
{
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query(
        "insert into idempotency_keys (operation, user_id, key, fingerprint) values ($1, $2, $3, $4) \
         on conflict do nothing",
    )
    .bind(T::OPERATION)
    .bind(scope.user_id)
    .bind(scope.key.as_str())
    .bind(&scope.fingerprint)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        let (fingerprint, answer): (String, Option<String>) = sqlx::query_as(STORED)
            .bind(T::OPERATION)
            .bind(scope.user_id)
            .bind(scope.key.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.rollback().await?;
        if fingerprint != scope.fingerprint {
            return Err(ReservationError::IdempotencyKeyReused);
        }
        return decode(answer);
    }
    let answer = operation(&mut tx).await?;
    let encoded = serde_json::to_string(&answer)
        .map_err(|error| ReservationError::Corrupt(format!("encoding an answer: {error}")))?;
    sqlx::query(
        "update idempotency_keys set answer = $4::jsonb \
         where operation = $1 and user_id = $2 and key = $3",
    )
    .bind(T::OPERATION)
    .bind(scope.user_id)
    .bind(scope.key.as_str())
    .bind(encoded)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(answer)
}

/// The first answer stored for `scope`, without running anything.
pub async fn replay<T: Answer>(pool: &PgPool, scope: Scope<'_>) -> Result<T, ReservationError> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(STORED)
        .bind(T::OPERATION)
        .bind(scope.user_id)
        .bind(scope.key.as_str())
        .fetch_optional(pool)
        .await?;
    match row {
        Some((fingerprint, _)) if fingerprint != scope.fingerprint => {
            Err(ReservationError::IdempotencyKeyReused)
        }
        Some((_, answer @ Some(_))) => decode(answer),
        // Absent, or a first attempt still in flight (its row is not committed, so not seen).
        _ => Err(ReservationError::NothingToReplay),
    }
}

/// Forgets answers older than `retention_hours`.
pub async fn prune(pool: &PgPool, retention_hours: u64) -> Result<u64, ReservationError> {
    let hours = i32::try_from(retention_hours).unwrap_or(i32::MAX);
    Ok(sqlx::query(
        "delete from idempotency_keys where created_at < now() - make_interval(hours => $1)",
    )
    .bind(hours)
    .execute(pool)
    .await?
    .rows_affected())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::ReservationStatus;

    /// Stored answers outlive a deploy (and migration 0003 writes this format for older ones):
    /// each type's JSON is pinned here, so a renamed field fails this test instead of making
    /// stored answers unreadable.
    #[test]
    fn stored_answers_keep_their_json_form() {
        let reservation = Reservation {
            id: 1,
            user_id: 2,
            concert_option_id: 3,
            seat_no: 4,
            status: ReservationStatus::Held,
            price_minor: 5,
            grade: "VIP".into(),
            created_at_ms: 6,
            expires_at_ms: 7,
        };
        let stored = json!({
            "id": 1, "user_id": 2, "concert_option_id": 3, "seat_no": 4, "status": "HELD",
            "price_minor": 5, "grade": "VIP", "created_at_ms": 6, "expires_at_ms": 7,
        });
        assert_eq!(serde_json::to_value(&reservation).unwrap(), stored);
        assert_eq!(
            serde_json::from_value::<Reservation>(stored).unwrap(),
            reservation
        );

        let payment = Payment {
            id: 1,
            reservation_id: 2,
            user_id: 3,
            amount_minor: 4,
            paid_at_ms: 5,
            balance_after_minor: 6,
        };
        let stored = json!({
            "id": 1, "reservation_id": 2, "user_id": 3, "amount_minor": 4, "paid_at_ms": 5,
            "balance_after_minor": 6,
        });
        assert_eq!(serde_json::to_value(&payment).unwrap(), stored);
        assert_eq!(serde_json::from_value::<Payment>(stored).unwrap(), payment);

        let wallet = Wallet {
            user_id: 1,
            balance_minor: 2,
        };
        let stored = json!({ "user_id": 1, "balance_minor": 2 });
        assert_eq!(serde_json::to_value(wallet).unwrap(), stored);
        assert_eq!(serde_json::from_value::<Wallet>(stored).unwrap(), wallet);
    }

    #[test]
    fn every_status_is_stored_as_its_column_spells_it() {
        for (status, spelled) in [
            (ReservationStatus::Held, "HELD"),
            (ReservationStatus::Confirmed, "CONFIRMED"),
            (ReservationStatus::Expired, "EXPIRED"),
            (ReservationStatus::Cancelled, "CANCELLED"),
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), json!(spelled));
        }
    }

    #[test]
    fn an_unreadable_or_missing_answer_is_corrupt_not_a_panic() {
        assert!(matches!(
            decode::<Wallet>(None),
            Err(ReservationError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<Wallet>(Some(r#"{"user_id": 1}"#.into())),
            Err(ReservationError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<Payment>(Some("not json".into())),
            Err(ReservationError::Corrupt(_))
        ));
    }
}
