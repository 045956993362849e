//! What `cargo xtask fuzz` (Schemathesis against the OpenAPI document) found, pinned over HTTP
//! on the real system: integers written as `7.0` are integers (JSON Schema says so), and a
//! well-formed settings change that only conflicts with the room's other settings is 409, a
//! body is an object (never an array read as a struct).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use support::{System, assert_error, default_policy};

const SECRET: &str = "fuzz-findings-admin-secret-0123456789";

#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_accepted_as_integers() {
    let system = System::start(default_policy()).await;
    let http = &system.http;
    let joined = http.post("/queue/issue-token", r#"{"userId": 7.0}"#).await;
    assert_eq!(joined.status, 200, "{}", joined.json);
    let charged = http
        .post("/api/users/7/balance/charge", r#"{"amount": 500.0}"#)
        .await;
    assert_eq!(charged.status, 200, "{}", charged.json);
    assert_eq!(charged.json["balance"], 500);
    // So is an integer path parameter written as 7.0.
    let balance = http.get("/api/users/7.0/balance").await;
    assert_eq!(balance.status, 200, "{}", balance.json);
    assert_eq!(balance.json["balance"], 500);
    assert_error(
        &http.get("/api/users/7.5/balance").await,
        400,
        "INVALID_PATH",
    );
    // A fraction is still not an integer.
    assert_error(
        &http
            .post("/api/users/7/balance/charge", r#"{"amount": 500.5}"#)
            .await,
        400,
        "INVALID_BODY",
    );
}

#[tokio::test]
async fn a_body_must_be_a_json_object_not_an_array_serde_would_read_as_a_struct() {
    let system = System::start_queue_only(default_policy()).await;
    assert_error(
        &system.http.post("/queue/issue-token", "[7, null]").await,
        400,
        "INVALID_BODY",
    );
    assert_error(
        &system.http.post("/queue/issue-token", "null").await,
        400,
        "INVALID_BODY",
    );
}

#[tokio::test]
async fn a_rate_of_zero_while_the_room_has_no_cap_is_a_conflict_not_a_bad_request() {
    // The default policy has no active cap: a rate of 0 would leave the room with neither.
    let system = System::start_with(default_policy(), &[&format!("--admin-token={SECRET}")]).await;
    let bearer = format!("Bearer {SECRET}");
    let patch = |body: &'static str| {
        let http = system.http.clone();
        let bearer = bearer.clone();
        async move {
            http.send_with(
                "PATCH",
                "/admin/rooms/default",
                Some(body),
                Some("application/json"),
                &[("authorization", bearer.as_str())],
            )
            .await
        }
    };
    assert_error(
        &patch(r#"{"admissionRate": 0}"#).await,
        409,
        "INVALID_ROOM_SETTINGS",
    );
    // The same change with a cap is fine; the patch alone breaking the rule stays 400.
    let capped = patch(r#"{"admissionRate": 0, "activeCap": 5}"#).await;
    assert_eq!(capped.status, 200, "{}", capped.json);
    assert_error(
        &patch(r#"{"admissionRate": 100001}"#).await,
        400,
        "INVALID_ROOM_SETTINGS",
    );
    // A setting is a value: null is not "leave it as it is" (that is leaving it out).
    assert_error(
        &patch(r#"{"admissionRate": null, "paused": false}"#).await,
        400,
        "INVALID_BODY",
    );
}
