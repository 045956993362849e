//! Requests made with an Idempotency-Key against a real catalog and real PostgreSQL: a retry
//! gets the first answer from the store (as JSON of the domain types) and nothing runs twice,
//! including for answers stored before migration 0003 in the old protobuf format.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use prost::Message;
use support::{System, default_room, failure};
use ticketing_proto::reservation::v1 as pb;

const DEFAULT_ROOM_OPTION: i64 = 1;

impl System {
    async fn charge_with_key(
        &self,
        user_id: i64,
        amount_minor: i64,
        key: &str,
    ) -> Result<pb::Wallet, tonic::Status> {
        self.client
            .clone()
            .charge_wallet(pb::ChargeWalletRequest {
                user_id,
                amount_minor,
                idempotency_key: Some(key.into()),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    async fn replay_payment(
        &self,
        reservation_id: i64,
        user_id: i64,
        key: &str,
    ) -> Result<pb::Payment, tonic::Status> {
        self.client
            .clone()
            .pay(pb::PayRequest {
                reservation_id,
                user_id,
                idempotency_key: Some(key.into()),
                replay_only: true,
                admitted_by: None,
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The stored answer of `operation` under `key`, as JSON.
    async fn stored_answer(&self, operation: &str, key: &str) -> Option<serde_json::Value> {
        let (answer,): (Option<String>,) = sqlx::query_as(
            "select answer::text from idempotency_keys where operation = $1 and key = $2",
        )
        .bind(operation)
        .bind(key)
        .fetch_one(&self.db)
        .await
        .expect("idempotency row");
        answer.map(|json| serde_json::from_str(&json).expect("stored answer is JSON"))
    }

    async fn payments_of(&self, reservation_id: i64) -> i64 {
        let (count,): (i64,) =
            sqlx::query_as("select count(*) from payments where reservation_id = $1")
                .bind(reservation_id)
                .fetch_one(&self.db)
                .await
                .expect("count");
        count
    }
}

fn key_reused() -> (tonic::Code, String) {
    (
        tonic::Code::FailedPrecondition,
        "IDEMPOTENCY_KEY_REUSED".into(),
    )
}

#[tokio::test]
async fn a_retried_charge_gets_its_first_answer_and_credits_once() {
    let system = System::start(4).await;
    let first = system.charge_with_key(7, 500, "top-up-1").await.unwrap();
    assert_eq!(
        first,
        pb::Wallet {
            user_id: 7,
            balance_minor: 500
        }
    );
    // Another charge in between: a retry that ran again would answer 500 + 100 + 500.
    system.charge(7, 100).await;
    let retry = system.charge_with_key(7, 500, "top-up-1").await.unwrap();
    assert_eq!(retry, first);
    assert_eq!(system.balance(7).await, 600);
    // The same key for another amount is refused and credits nothing.
    assert_eq!(
        failure(system.charge_with_key(7, 900, "top-up-1").await),
        key_reused()
    );
    assert_eq!(system.balance(7).await, 600);
    assert_eq!(
        system.stored_answer("charge", "top-up-1").await,
        Some(serde_json::json!({ "user_id": 7, "balance_minor": 500 }))
    );
}

#[tokio::test]
async fn a_retried_payment_gets_its_first_answer_and_debits_once() {
    let system = System::start(4).await;
    system.charge(7, 1_000_000).await;
    let held = system
        .hold(7, DEFAULT_ROOM_OPTION, 4, default_room())
        .await
        .unwrap();
    let key = || Some("pay-once".to_owned());
    let paid = system.pay(held.id, 7, default_room(), key()).await.unwrap();
    // Run again, this payment would be refused ALREADY_PAID: the answer comes from the store.
    let retry = system.pay(held.id, 7, default_room(), key()).await.unwrap();
    assert_eq!(retry, paid);
    let replayed = system.replay_payment(held.id, 7, "pay-once").await.unwrap();
    assert_eq!(replayed, paid);
    assert_eq!(system.balance(7).await, 1_000_000 - held.price_minor);
    assert_eq!(system.payments_of(held.id).await, 1);
    assert_eq!(
        system.stored_answer("pay", "pay-once").await,
        Some(serde_json::json!({
            "id": paid.id,
            "reservation_id": held.id,
            "user_id": 7,
            "amount_minor": held.price_minor,
            "paid_at_ms": paid.paid_at_unix_ms,
            "balance_after_minor": 1_000_000 - held.price_minor,
        }))
    );
}

#[tokio::test]
async fn a_retried_hold_gets_its_first_answer_even_after_the_hold_ran_out() {
    let system = System::start(4).await;
    let key = || Some("hold-once".to_owned());
    let first = system
        .hold_with_key(7, DEFAULT_ROOM_OPTION, 6, default_room(), key())
        .await
        .unwrap();
    assert_eq!(first.status(), pb::ReservationStatus::Held);
    // Run again after the deadline, the hold would be a new reservation of the free seat.
    system.expire(first.id).await;
    let retry = system
        .hold_with_key(7, DEFAULT_ROOM_OPTION, 6, default_room(), key())
        .await
        .unwrap();
    assert_eq!(retry, first);
    assert_eq!(system.rows_of(7).await, 1);
    assert_eq!(
        system.reservation(first.id).await.status(),
        pb::ReservationStatus::Expired
    );
    // The same key for another seat is refused and holds nothing.
    assert_eq!(
        failure(
            system
                .hold_with_key(7, DEFAULT_ROOM_OPTION, 7, default_room(), key())
                .await
        ),
        key_reused()
    );
    assert_eq!(system.rows_of(7).await, 1);
    let stored = system.stored_answer("hold", "hold-once").await.unwrap();
    assert_eq!(stored["id"], first.id);
    assert_eq!(stored["status"], "HELD");
    assert_eq!(stored["seat_no"], 6);
}

/// Milliseconds since the epoch, about now: multi-byte varints in the old format.
fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A key row as the service wrote it before migration 0003: the answer protobuf-encoded.
async fn insert_old_answer(
    db: &sqlx::PgPool,
    operation: &str,
    user_id: i64,
    key: &str,
    fingerprint: &str,
    response: Vec<u8>,
) {
    sqlx::query(
        "insert into idempotency_keys (operation, user_id, key, fingerprint, response) \
         values ($1, $2, $3, $4, $5)",
    )
    .bind(operation)
    .bind(user_id)
    .bind(key)
    .bind(fingerprint)
    .bind(response)
    .execute(db)
    .await
    .expect("old idempotency row");
}

/// A reservation row as `hold_seat` writes it, `minutes_left` before (or after) its deadline.
async fn insert_reservation(
    db: &sqlx::PgPool,
    user_id: i64,
    option_id: i64,
    seat_no: i32,
    status: &str,
    price_minor: i64,
    minutes_left: i32,
) -> i64 {
    let (id,): (i64,) = sqlx::query_as(
        "insert into reservations (user_id, concert_option_id, seat_no, status, price_minor, grade, \
                                   expires_at, concert_id, waiting_room_concert_id) \
         values ($1, $2, $3, $4, $5, 'VIP', now() + make_interval(mins => $6), 1, null) \
         returning id",
    )
    .bind(user_id)
    .bind(option_id)
    .bind(seat_no)
    .bind(status)
    .bind(price_minor)
    .bind(minutes_left)
    .fetch_one(db)
    .await
    .expect("reservation");
    id
}

/// A deployment's database before this upgrade: migrations 0001-0002 only, with answers the
/// old code stored (protobuf) for a charge, two payments (one of a zero-price seat, whose
/// amount and balance proto3 leaves out), a hold that has since run out, and one row whose
/// bytes are not a message at all. Then the new service starts on it (migrating to 0003) and
/// each request is retried with its key.
#[tokio::test]
async fn answers_stored_in_the_old_protobuf_format_replay_after_the_upgrade() {
    let url = kit::postgres::fresh_database(&support::server_url())
        .await
        .expect("fresh database");
    let old = sqlx::PgPool::connect(&url).await.expect("connect");
    reservation::MIGRATOR
        .run_to(2, &old)
        .await
        .expect("migrate to 0002");

    // User 7 charged 5,000, then paid 1,200 for a seat; user 8 paid for a free seat without a
    // wallet; user 9 held a seat whose hold has since run out.
    sqlx::query("insert into wallets (user_id, balance_minor) values (7, 3800)")
        .execute(&old)
        .await
        .unwrap();
    let old_charge = pb::Wallet {
        user_id: 7,
        balance_minor: 5_000,
    };
    insert_old_answer(
        &old,
        "charge",
        7,
        "old-charge",
        "5000",
        old_charge.encode_to_vec(),
    )
    .await;

    let paid_at = now_ms() - 60_000;
    let mut old_payments = Vec::new();
    for (user_id, seat_no, price_minor, balance_after) in [(7, 1, 1_200, 3_800), (8, 2, 0, 0)] {
        let reservation_id =
            insert_reservation(&old, user_id, 1, seat_no, "CONFIRMED", price_minor, 5).await;
        let (payment_id,): (i64,) = sqlx::query_as(
            "insert into payments (reservation_id, user_id, amount_minor, balance_after) \
             values ($1, $2, $3, $4) returning id",
        )
        .bind(reservation_id)
        .bind(user_id)
        .bind(price_minor)
        .bind(balance_after)
        .fetch_one(&old)
        .await
        .unwrap();
        let payment = pb::Payment {
            id: payment_id,
            reservation_id,
            user_id,
            amount_minor: price_minor,
            paid_at_unix_ms: paid_at,
            balance_after_minor: balance_after,
        };
        insert_old_answer(
            &old,
            "pay",
            user_id,
            "old-pay",
            &reservation_id.to_string(),
            payment.encode_to_vec(),
        )
        .await;
        old_payments.push(payment);
    }

    let held = insert_reservation(&old, 9, DEFAULT_ROOM_OPTION, 5, "HELD", 150_000, -1).await;
    let old_hold = pb::Reservation {
        id: held,
        user_id: 9,
        concert_option_id: DEFAULT_ROOM_OPTION,
        seat_no: 5,
        status: pb::ReservationStatus::Held.into(),
        price_minor: 150_000,
        // Not ASCII: a length-delimited field's length counts bytes, not characters.
        grade: "VIP ★".into(),
        created_at_unix_ms: paid_at,
        expires_at_unix_ms: paid_at + 300_000,
    };
    insert_old_answer(
        &old,
        "hold",
        9,
        "old-hold",
        &format!("{DEFAULT_ROOM_OPTION}:5"),
        old_hold.encode_to_vec(),
    )
    .await;

    insert_old_answer(&old, "charge", 7, "garbled", "300", vec![0xff, 0xff]).await;
    old.close().await;

    let system = System::start_on(4, &url).await;

    // The charge is answered as it was the first time and credits nothing.
    assert_eq!(
        system
            .charge_with_key(7, 5_000, "old-charge")
            .await
            .unwrap(),
        old_charge
    );
    assert_eq!(system.balance(7).await, 3_800);

    // Both payments replay, with or without a room; neither is run again (ALREADY_PAID).
    for payment in &old_payments {
        let user_id = payment.user_id;
        let replayed = system
            .replay_payment(payment.reservation_id, user_id, "old-pay")
            .await
            .unwrap();
        assert_eq!(&replayed, payment);
        let retried = system
            .pay(
                payment.reservation_id,
                user_id,
                default_room(),
                Some("old-pay".into()),
            )
            .await
            .unwrap();
        assert_eq!(&retried, payment);
        assert_eq!(system.payments_of(payment.reservation_id).await, 1);
    }
    assert_eq!(system.balance(7).await, 3_800);

    // The hold's answer comes back; run again, it would have held the run-out seat anew.
    let retried = system
        .hold_with_key(
            9,
            DEFAULT_ROOM_OPTION,
            5,
            default_room(),
            Some("old-hold".into()),
        )
        .await
        .unwrap();
    assert_eq!(retried, old_hold);
    assert_eq!(system.rows_of(9).await, 1);

    // An answer that never decoded is refused, not run again.
    let garbled = system.charge_with_key(7, 300, "garbled").await;
    assert_eq!(failure(garbled), (tonic::Code::Internal, "INTERNAL".into()));
    assert_eq!(system.balance(7).await, 3_800);
    assert_eq!(system.stored_answer("charge", "garbled").await, None);
}
