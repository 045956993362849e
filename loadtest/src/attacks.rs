//! `loadtest attacks`: the attacks of docs/security.md sent to a running system (`cargo xtask
//! up`, or `up --auth jwt` with `--auth-key-dir`), each checked to be refused. The same attacks
//! run as tests against servers on port 0 (services/gateway/tests/attacks.rs and
//! slow_clients.rs); this is the check that the system as launched holds them too. Exits
//! non-zero when any attack got through.
//!
//! It leaves a few holds behind (one user's seat limit on one option, for the hold time).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::{
    client::{Client, Reply},
    flow::{Admission, Polling, Visitor},
    recorder::Recorder,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The seat limit the reservation service runs with (RESERVATION_MAX_SEATS_PER_USER).
    #[arg(long, default_value_t = 4)]
    pub seat_limit: usize,
    /// The concert whose options the hoarding attack uses (the demo concert, shared room).
    #[arg(long, default_value_t = 1)]
    pub concert: u64,
    /// Slow connections of each kind (trickling heads, trickling bodies).
    #[arg(long, default_value_t = 600)]
    pub tricklers: usize,
    /// The gateway's header-read and body-read timeout (GATEWAY_*_READ_TIMEOUT_MS), in ms.
    #[arg(long, default_value_t = 5000)]
    pub door_timeout_ms: u64,
    /// How long to wait for admission, in seconds.
    #[arg(long, default_value_t = 120)]
    pub admission_secs: u64,
}

/// One attack's verdict: refused (with what was seen) or let through (with why).
type Verdict = Result<String, String>;

pub async fn run(client: &Client, gateway: &str, jwt: bool, args: Args) -> anyhow::Result<bool> {
    let first = crate::scenarios::first_user(None);
    client.prepare_users(first, 8)?;
    let (a, b) = (first + 1, first + 2);
    let mut results: Vec<(&str, Verdict)> = Vec::new();

    results.push((
        "skipping the line: made-up concert",
        made_up_concert(client, a).await,
    ));
    let admitted = admit(client, a, args.admission_secs).await;
    match &admitted {
        Ok(token) => {
            let hoard = hoard(client, a, token, &args).await;
            let retry = match &hoard {
                Ok((_, won)) => retried_hold(client, a, token, won).await,
                Err(why) => Err(format!("no hold to retry: {why}")),
            };
            results.push((
                "hoarding: 20 simultaneous holds",
                hoard.clone().map(|(seen, _)| seen),
            ));
            results.push(("retries: a hold retried by its user", retry));
            if jwt {
                let reservation = hoard
                    .as_ref()
                    .ok()
                    .and_then(|(_, won)| won.first().map(|w| w.1));
                results.push((
                    "anything for anyone: another user's wallet and reservation",
                    anything_for_anyone(client, a, b, reservation).await,
                ));
            }
        }
        Err(why) => results.push(("admission of the attacker", Err(why.clone()))),
    }
    if jwt {
        results.push(("taking someone's place", taking_a_place(client, a, b).await));
        results.push(("forged and missing bearer tokens", forged(client).await));
        results.push((
            "flooding: one caller past its rate",
            flooding(client, b).await,
        ));
    }
    results.push(("stalling the door", stalling(gateway, &args).await));

    let mut all_refused = true;
    for (attack, verdict) in &results {
        match verdict {
            Ok(seen) => println!("refused   {attack}: {seen}"),
            Err(why) => {
                all_refused = false;
                println!("THROUGH   {attack}: {why}");
            }
        }
    }
    let refused = results.iter().filter(|(_, v)| v.is_ok()).count();
    println!(
        "attacks: {refused} refused, {} through ({} mode)",
        results.len() - refused,
        if jwt { "jwt" } else { "trusted" }
    );
    Ok(all_refused)
}

fn expect(reply: &Result<Reply, crate::client::Failure>, status: u16, code: &str) -> Verdict {
    match reply {
        Ok(reply) if reply.status == status && reply.code() == Some(code) => {
            Ok(format!("{status} {code}"))
        }
        Ok(reply) => Err(format!(
            "expected {status} {code}, got {} {}",
            reply.status, reply.json
        )),
        Err(failure) => Err(format!("expected {status} {code}, got {failure}")),
    }
}

async fn made_up_concert(client: &Client, user: u64) -> Verdict {
    let body = json!({"userId": user, "concertId": 987_654_321_u64}).to_string();
    let reply = client.as_user(user).post("/queue/issue-token", body).await;
    expect(&reply, 404, "CONCERT_NOT_FOUND")
}

/// The user's ACTIVE token in the shared room, polling as told (the journeys' own step).
async fn admit(client: &Client, user: u64, within_secs: u64) -> Result<String, String> {
    let visitor = Visitor::new(client, &Arc::new(Recorder::new()), user);
    let polling = Polling {
        min: Duration::from_secs(1),
        max: Duration::from_secs(1),
    };
    match visitor
        .wait_for_admission(polling, Instant::now() + Duration::from_secs(within_secs))
        .await
    {
        Admission::Active(token) => Ok(token),
        Admission::StillWaiting => Err(format!("not admitted within {within_secs} s")),
        Admission::Failed => Err("issue-token or check-queue failed".into()),
    }
}

/// An option of the concert with at least 20 free seats, and 20 of them.
async fn free_seats(client: &Client, user: u64, concert: u64) -> Result<(u64, Vec<u64>), String> {
    let visitor = Visitor::new(client, &Arc::new(Recorder::new()), user);
    let options = visitor
        .available_dates(concert)
        .await
        .ok_or_else(|| format!("available-dates of concert {concert} failed"))?;
    for option in options {
        let seats = visitor.available_seats(option).await.unwrap_or_default();
        if seats.len() >= 20 {
            return Ok((option, seats.into_iter().take(20).collect()));
        }
    }
    Err(format!("no option of concert {concert} has 20 free seats"))
}

/// 20 simultaneous holds by one user: exactly the limit is held. Returns the (seat,
/// reservation) pairs won.
async fn hoard(
    client: &Client,
    user: u64,
    token: &str,
    args: &Args,
) -> Result<(String, Vec<(u64, u64, u64)>), String> {
    let (option, seats) = free_seats(client, user, args.concert).await?;
    let client = client.as_user(user);
    let attempts = seats.iter().map(|seat| {
        let body =
            json!({"token": token, "concertOptionId": option, "seatId": seat, "userId": user});
        let client = client.clone();
        async move { (*seat, client.post("/api/reserve", body.to_string()).await) }
    });
    let replies = futures::future::join_all(attempts).await;
    let mut won = Vec::new();
    let mut limited = 0;
    for (seat, reply) in &replies {
        match reply {
            Ok(reply) if reply.status == 303 => {
                won.push((
                    *seat,
                    reply.json["reservationId"].as_u64().unwrap_or(0),
                    option,
                ));
            }
            Ok(reply) if reply.status == 409 && reply.code() == Some("SEAT_LIMIT_REACHED") => {
                limited += 1;
            }
            Ok(reply) => return Err(format!("seat {seat}: {} {}", reply.status, reply.json)),
            Err(failure) => return Err(format!("seat {seat}: {failure}")),
        }
    }
    if won.len() == args.seat_limit && limited == 20 - args.seat_limit {
        Ok((
            format!("{} held, {limited} SEAT_LIMIT_REACHED", won.len()),
            won,
        ))
    } else {
        Err(format!(
            "{} held (limit {}), {limited} refused",
            won.len(),
            args.seat_limit
        ))
    }
}

async fn retried_hold(client: &Client, user: u64, token: &str, won: &[(u64, u64, u64)]) -> Verdict {
    let Some((seat, reservation, option)) = won.first() else {
        return Err("nothing was held".into());
    };
    let body = json!({"token": token, "concertOptionId": option, "seatId": seat, "userId": user});
    match client
        .as_user(user)
        .post("/api/reserve", body.to_string())
        .await
    {
        Ok(reply)
            if reply.status == 303
                && reply.json["reservationId"].as_u64() == Some(*reservation) =>
        {
            Ok(format!("303 with the same reservation {reservation}"))
        }
        Ok(reply) => Err(format!("{} {}", reply.status, reply.json)),
        Err(failure) => Err(failure.to_string()),
    }
}

async fn anything_for_anyone(
    client: &Client,
    victim: u64,
    thief: u64,
    reservation: Option<u64>,
) -> Verdict {
    let thief = client.as_user(thief);
    let mut seen = Vec::new();
    let charge = thief
        .post(
            &format!("/api/users/{victim}/balance/charge"),
            json!({"amount": 100_000_000}).to_string(),
        )
        .await;
    seen.push(expect(&charge, 403, "USER_MISMATCH")?);
    let balance = thief.get(&format!("/api/users/{victim}/balance")).await;
    seen.push(expect(&balance, 403, "USER_MISMATCH")?);
    if let Some(id) = reservation {
        let read = thief.get(&format!("/api/reservations/{id}")).await;
        seen.push(expect(&read, 404, "RESERVATION_NOT_FOUND")?);
    }
    Ok(seen.join(", "))
}

async fn taking_a_place(client: &Client, victim: u64, thief: u64) -> Verdict {
    let own = client
        .as_user(victim)
        .post("/queue/issue-token", "{}".into())
        .await
        .map_err(|f| f.to_string())?;
    let token = own.json["token"].as_str().unwrap_or_default().to_owned();
    let thief = client.as_user(thief);
    let asked = thief
        .post("/queue/issue-token", json!({"userId": victim}).to_string())
        .await;
    let mut seen = vec![expect(&asked, 403, "USER_MISMATCH")?];
    if let Ok(reply) = &asked
        && !token.is_empty()
        && reply.json.to_string().contains(&token)
    {
        return Err("the victim's token was in the answer".into());
    }
    let polled = thief
        .get(&format!("/queue/check-queue?token={token}"))
        .await;
    seen.push(expect(&polled, 401, "TOKEN_NOT_FOUND")?);
    Ok(seen.join(", "))
}

async fn forged(client: &Client) -> Verdict {
    let stranger = kit::dev_identity::DevKey::generate().map_err(|e| e.to_string())?;
    let token = stranger
        .mint(7, true, Duration::from_secs(600))
        .map_err(|e| e.to_string())?;
    let forged = client
        .with_bearer(&format!("Bearer {token}"))
        .post("/queue/issue-token", "{}".into())
        .await;
    let missing = client
        .without_bearer()
        .post("/queue/issue-token", "{}".into())
        .await;
    Ok(format!(
        "{}, {}",
        expect(&forged, 401, "AUTH_INVALID")?,
        expect(&missing, 401, "AUTH_REQUIRED")?
    ))
}

async fn flooding(client: &Client, user: u64) -> Verdict {
    let client = client.as_user(user);
    let path = format!("/api/users/{user}/balance");
    for sent in 1..=200 {
        match client.get(&path).await {
            Ok(reply) if reply.status == 429 && reply.code() == Some("TOO_MANY_REQUESTS") => {
                return Ok(format!("429 TOO_MANY_REQUESTS after {sent} requests"));
            }
            Ok(reply) if reply.status == 200 => {}
            Ok(reply) => return Err(format!("{} {}", reply.status, reply.json)),
            Err(failure) => return Err(failure.to_string()),
        }
    }
    Err("200 requests in a row were all answered".into())
}

/// Many connections trickling heads and bodies: an ordinary request still answers within 1 s,
/// and every trickler is cut off once the door's timeout has passed.
async fn stalling(gateway: &str, args: &Args) -> Verdict {
    let addr: SocketAddr = gateway
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("{gateway} is not http://host:port"))?;
    let head = "GET /healthz HTTP/1.1\r\nHost: attacker\r\n";
    let body = "POST /queue/issue-token HTTP/1.1\r\nHost: attacker\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{";
    let mut tricklers = Vec::new();
    for start in [head, body] {
        for _ in 0..args.tricklers {
            let mut stream = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream
                .write_all(start.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            tricklers.push(stream);
        }
    }
    let started = Instant::now();
    let ordinary = tokio::time::timeout(Duration::from_secs(1), async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    })
    .await;
    let answered_in = started.elapsed();
    if !matches!(ordinary, Ok(Some(true))) {
        return Err(format!(
            "an ordinary request got no 200 within 1 s under {} tricklers",
            tricklers.len()
        ));
    }
    // Every trickler must see its connection closed: by the timeout plus a margin.
    let cutoff = Duration::from_millis(args.door_timeout_ms) + Duration::from_secs(3);
    let waits = tricklers.into_iter().map(|mut stream| async move {
        let mut buffer = [0u8; 512];
        let until = Instant::now() + cutoff;
        loop {
            match tokio::time::timeout_at(until, stream.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    });
    let closed = futures::future::join_all(waits).await;
    let open = closed.iter().filter(|c| !**c).count();
    if open > 0 {
        return Err(format!(
            "{open} of {} tricklers still open after {cutoff:?}",
            closed.len()
        ));
    }
    Ok(format!(
        "ordinary request answered in {} ms; all {} tricklers cut off within {cutoff:?}",
        answered_in.as_millis(),
        closed.len()
    ))
}
