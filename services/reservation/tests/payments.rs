//! Paying over gRPC against a real catalog and real PostgreSQL: only a token from the room that
//! admitted the hold pays for it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod support;

use support::{OWN_ROOM_CONCERT, System, default_room, failure, room_of, wrong_room};
use ticketing_proto::reservation::v1 as pb;

const OWN_ROOM_OPTION: i64 = 3;

#[tokio::test]
async fn paying_needs_a_token_from_the_room_that_admitted_the_hold() {
    let system = System::start(4).await;
    system.charge(7, 1_000_000).await;
    let held = system
        .hold(7, OWN_ROOM_OPTION, 1, room_of(OWN_ROOM_CONCERT))
        .await
        .unwrap();
    for room in [default_room(), room_of(1), room_of(99)] {
        assert_eq!(
            failure(system.pay(held.id, 7, room, None).await),
            wrong_room()
        );
    }
    // Refused payments took nothing and sold nothing.
    assert_eq!(system.balance(7).await, 1_000_000);
    assert_eq!(
        system.reservation(held.id).await.status(),
        pb::ReservationStatus::Held
    );

    let payment = system
        .pay(held.id, 7, room_of(OWN_ROOM_CONCERT), None)
        .await
        .unwrap();
    assert_eq!(payment.amount_minor, held.price_minor);
    assert_eq!(system.balance(7).await, 1_000_000 - held.price_minor);
    assert_eq!(
        system.reservation(held.id).await.status(),
        pb::ReservationStatus::Confirmed
    );
}

#[tokio::test]
async fn a_default_room_hold_is_paid_with_a_default_room_token() {
    let system = System::start(4).await;
    system.charge(7, 1_000_000).await;
    let held = system.hold(7, 1, 1, default_room()).await.unwrap();
    assert_eq!(
        failure(system.pay(held.id, 7, room_of(1), None).await),
        wrong_room()
    );
    system.pay(held.id, 7, default_room(), None).await.unwrap();
}

#[tokio::test]
async fn a_payment_refused_for_its_room_leaves_its_idempotency_key_unused() {
    let system = System::start(4).await;
    system.charge(7, 1_000_000).await;
    let held = system
        .hold(7, OWN_ROOM_OPTION, 2, room_of(OWN_ROOM_CONCERT))
        .await
        .unwrap();
    let key = || Some("pay-1".to_owned());
    assert_eq!(
        failure(system.pay(held.id, 7, default_room(), key()).await),
        wrong_room()
    );
    let paid = system
        .pay(held.id, 7, room_of(OWN_ROOM_CONCERT), key())
        .await
        .unwrap();
    // The paid-for token is released: a retry arrives without a room and replays the answer.
    let replayed = system
        .client
        .clone()
        .pay(pb::PayRequest {
            reservation_id: held.id,
            user_id: 7,
            idempotency_key: key(),
            replay_only: true,
            admitted_by: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed, paid);
}

#[tokio::test]
async fn a_payment_without_a_room_is_an_invalid_argument_unless_it_only_replays() {
    let system = System::start(4).await;
    system.charge(7, 1_000_000).await;
    let held = system.hold(7, 1, 3, default_room()).await.unwrap();
    assert_eq!(
        failure(system.pay(held.id, 7, None, None).await),
        (tonic::Code::InvalidArgument, "INVALID_ROOM".into())
    );
    assert_eq!(
        failure(system.pay(held.id, 7, room_of(0), None).await),
        (tonic::Code::InvalidArgument, "INVALID_ROOM".into())
    );
    let replay = system
        .client
        .clone()
        .pay(pb::PayRequest {
            reservation_id: held.id,
            user_id: 7,
            idempotency_key: Some("never-used".into()),
            replay_only: true,
            admitted_by: None,
        })
        .await;
    assert_eq!(
        failure(replay),
        (tonic::Code::NotFound, "NOTHING_TO_REPLAY".into())
    );
    assert_eq!(system.balance(7).await, 1_000_000);
}
