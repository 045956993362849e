//! One fan's way through a presale: join, poll as advised, book when admitted (free seats, hold
//! a random one, another on SEAT_TAKEN, top up, pay), and the early join that must be refused.

use super::*;

/// One fan: join, poll as advised, book when admitted.
pub(super) async fn fan_journey(ctx: &Ctx, index: usize, visitor: &Visitor) -> Ending {
    let body = format!(
        r#"{{"userId": {}, "concertId": {}}}"#,
        visitor.user_id, ctx.concert
    );
    let (mut start, mut end, mut reply) = loop {
        let Some((start, end, reply)) = ctx
            .call(
                visitor,
                ISSUE,
                || visitor.client.post("/queue/issue-token", body.clone()),
                ok,
            )
            .await
        else {
            return Ending::Going;
        };
        if reply.status == 200 {
            break (start, end, reply);
        }
        // A clock a hair behind the queue's: the pre-queue opens in a moment.
        if reply.code() == Some("ROOM_NOT_OPEN") && end < ctx.opens_at {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        return Ending::Failed;
    };
    let Some(token) = reply.json["token"].as_str().map(str::to_owned) else {
        return Ending::Failed;
    };
    let path = format!("/queue/check-queue?token={token}");
    loop {
        let status = Status::of(&reply);
        ctx.update(index, |fan| fan.note(status, &reply, start, end, ctx));
        match status {
            Status::Active => return book(ctx, visitor, &token).await,
            Status::SoldOut if reply.json["seatsMayReturn"] == false => return Ending::SoldOut,
            Status::Prequeue | Status::Waiting | Status::SoldOut => {}
            Status::Other => return Ending::Failed,
        }
        let asked = Duration::from_secs(reply.json["pollAfterSeconds"].as_u64().unwrap_or(0));
        let pause = asked.max(ctx.poll_min);
        if Instant::now() + pause >= ctx.until {
            return Ending::Going;
        }
        tokio::time::sleep(pause).await;
        let Some((s, e, next)) = ctx
            .call(visitor, CHECK, || visitor.client.get(&path), ok)
            .await
        else {
            return Ending::Going;
        };
        match next.status {
            200 => (start, end, reply) = (s, e, next),
            401 => {
                ctx.update(index, |fan| fan.lost_after = Some(e - end));
                return Ending::Lost;
            }
            _ => return Ending::Failed,
        }
    }
}

/// An admitted fan books one seat: the concert's options with free seats, their free seats,
/// a random one held (another on SEAT_TAKEN, the list read again now and then), top up, pay.
/// The calls of flow.rs, each with an Idempotency-Key, so a hold, top-up or payment whose
/// answer was lost is sent again safely: a seat held but never paid would keep the concert
/// from selling out.
async fn book(ctx: &Ctx, visitor: &Visitor, token: &str) -> Ending {
    let user = visitor.user_id;
    let dates = format!("/api/concert/{}/available-dates", ctx.concert);
    let Some((_, _, reply)) = ctx
        .call(visitor, DATES, || visitor.client.get(&dates), ok)
        .await
    else {
        return Ending::Going;
    };
    if reply.status != 200 {
        return Ending::Failed;
    }
    let Some(&option) = fastrand::choice(&ids(&reply.json)) else {
        return Ending::NoSeat;
    };
    let seats_path = format!("/api/concert/{option}/available-seats");
    let free_seats = || async {
        let (_, _, reply) = ctx
            .call(visitor, SEATS, || visitor.client.get(&seats_path), ok)
            .await?;
        (reply.status == 200).then(|| ids(&reply.json))
    };
    let mut seats = Vec::new();
    for attempt in 0..ctx.attempts {
        // Others hold from the same list: after two taken seats it is worth reading again.
        if seats.is_empty() || attempt % 2 == 0 {
            match free_seats().await {
                Some(fresh) => seats = fresh,
                None => return Ending::Failed,
            }
        }
        if seats.is_empty() {
            return Ending::NoSeat;
        }
        let seat = seats.swap_remove(fastrand::usize(..seats.len()));
        let body = format!(
            r#"{{"token": "{token}", "concertOptionId": {option}, "seatId": {seat}, "userId": {user}}}"#
        );
        let key = format!("presale-{user}-hold-{option}-{seat}");
        let taken = |reply: &Reply| reply.code() == Some("SEAT_TAKEN");
        let Some((_, _, held)) = ctx
            .call(
                visitor,
                RESERVE,
                || {
                    visitor
                        .client
                        .post_with_key("/api/reserve", body.clone(), Some(&key))
                },
                |reply| reply.status == 303 || taken(reply),
            )
            .await
        else {
            return Ending::Going;
        };
        if taken(&held) {
            ctx.seat_taken.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if held.status != 303 {
            return Ending::Failed;
        }
        let (Some(id), Some(price)) = (
            held.json["reservationId"].as_u64(),
            held.json["price"].as_u64(),
        ) else {
            return Ending::Failed;
        };
        return pay(ctx, visitor, token, id, price).await;
    }
    Ending::NoSeat
}

/// Tops the wallet up by the seat's price and pays the hold.
async fn pay(ctx: &Ctx, visitor: &Visitor, token: &str, reservation: u64, price: u64) -> Ending {
    let user = visitor.user_id;
    let charge_path = format!("/api/users/{user}/balance/charge");
    let charge_body = format!(r#"{{"amount": {price}}}"#);
    let charge_key = format!("presale-{user}-charge-{reservation}");
    let Some((_, _, charged)) = ctx
        .call(
            visitor,
            CHARGE,
            || {
                visitor
                    .client
                    .post_with_key(&charge_path, charge_body.clone(), Some(&charge_key))
            },
            ok,
        )
        .await
    else {
        return Ending::Going;
    };
    if charged.status != 200 {
        return Ending::Failed;
    }
    let body =
        format!(r#"{{"reservationId": {reservation}, "userId": {user}, "token": "{token}"}}"#);
    let key = format!("presale-{user}-pay-{reservation}");
    match ctx
        .call(
            visitor,
            PAY,
            || {
                visitor
                    .client
                    .post_with_key("/api/payments", body.clone(), Some(&key))
            },
            ok,
        )
        .await
    {
        Some((_, end, paid)) if paid.status == 200 => Ending::Paid(end),
        Some(_) => Ending::Failed,
        None => Ending::Going,
    }
}

fn ok(reply: &Reply) -> bool {
    reply.status == 200
}

/// The `id` of each item of a JSON array.
fn ids(json: &Value) -> Vec<u64> {
    json.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether joining before the pre-queue opens is refused (409 ROOM_NOT_OPEN); `None` when the
/// answer came too late to tell.
pub(super) async fn refused_before_prequeue(
    client: &Client,
    recorder: &Arc<Recorder>,
    ctx: &Ctx,
    user: u64,
    prequeue_at: Instant,
) -> Option<bool> {
    let visitor = Visitor::new(client, recorder, user);
    let body = format!(r#"{{"userId": {user}, "concertId": {}}}"#, ctx.concert);
    let started = Instant::now();
    let result = visitor.client.post("/queue/issue-token", body).await;
    let ended = Instant::now();
    let refused = |reply: &Reply| reply.status == 409 && reply.code() == Some("ROOM_NOT_OPEN");
    recorder.record(ISSUE, ended - started, &result, refused);
    match result {
        Ok(reply) if ended < prequeue_at => Some(refused(&reply)),
        Ok(reply) if refused(&reply) => Some(true),
        _ => None,
    }
}
