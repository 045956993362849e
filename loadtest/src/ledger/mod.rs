//! What clients saw confirmed during a run — top-ups and payments, each sent with an
//! Idempotency-Key — and the checks that hold it against the system afterwards, through the
//! API and through reservation's own database:
//!
//! - `confirmed_payments_exist`: every payment a client saw confirmed is in the database with
//!   its amount, its reservation CONFIRMED there and through the API;
//! - `no_seat_twice`: no seat is sold to two clients, none is held or sold twice in the
//!   database, every sale's claim points at it, and no seat sold is offered as free;
//! - `wallets_exact`: every wallet, in the database and through the API, is the top-ups
//!   confirmed to its owner less the payments confirmed to them.
//!
//! A call whose answer never came (the client gave up, or the run ended under it) is asked
//! once more with its key before the checks ([`Ledger::settle`]), as a careful client coming
//! back would: its first answer if it went through, else it goes through now or is refused.

mod checks;
mod stored;

use std::{collections::BTreeMap, sync::Mutex};

use serde_json::Value;

pub use checks::{confirmed_payments_exist, no_seat_twice, wallets_exact};
#[cfg(test)]
use stored::StoredReservation;
pub use stored::{Stored, stored};

use crate::client::Client;

/// A keyed call a client made.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// A top-up of the wallet.
    Charge { amount: u64 },
    /// A payment for a held seat.
    Pay {
        reservation: u64,
        option: u64,
        seat: u64,
        price: u64,
        token: String,
    },
}

/// One keyed call and the answer that confirmed it (None: none came).
#[derive(Clone, Debug)]
pub struct Entry {
    pub user: u64,
    pub key: String,
    pub call: Call,
    pub answer: Option<Value>,
}

/// The run's keyed calls, noted before each is sent (a call cut off by the run's end is
/// still known) and confirmed when its answer comes.
#[derive(Default)]
pub struct Ledger {
    entries: Mutex<Vec<Entry>>,
}

impl Ledger {
    /// Notes a call about to be sent; the handle to confirm it with.
    pub fn sent(&self, user: u64, key: String, call: Call) -> usize {
        let Ok(mut entries) = self.entries.lock() else {
            return usize::MAX;
        };
        entries.push(Entry {
            user,
            key,
            call,
            answer: None,
        });
        entries.len() - 1
    }

    /// The call `sent` answered was confirmed with `answer`.
    pub fn confirmed(&self, sent: usize, answer: Value) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(entry) = entries.get_mut(sent)
        {
            entry.answer = Some(answer);
        }
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Sends every call that got no answer once more with its key (see the module's
    /// documentation); answers how many were sent and how many were confirmed then.
    pub async fn settle(&self, client: &Client) -> (u64, u64) {
        let (mut asked, mut confirmed) = (0, 0);
        for (index, entry) in self.entries().into_iter().enumerate() {
            if entry.answer.is_some() {
                continue;
            }
            asked += 1;
            let user = client.as_user(entry.user);
            let reply = match &entry.call {
                Call::Charge { amount } => {
                    user.post_with_key(
                        &format!("/api/users/{}/balance/charge", entry.user),
                        format!(r#"{{"amount": {amount}}}"#),
                        Some(&entry.key),
                    )
                    .await
                }
                Call::Pay {
                    reservation, token, ..
                } => {
                    user.post_with_key(
                        "/api/payments",
                        format!(
                            r#"{{"reservationId": {reservation}, "userId": {}, "token": "{token}"}}"#,
                            entry.user
                        ),
                        Some(&entry.key),
                    )
                    .await
                }
            };
            if let Ok(reply) = reply
                && reply.status == 200
            {
                self.confirmed(index, reply.json);
                confirmed += 1;
            }
        }
        (asked, confirmed)
    }
}

/// A payment a client saw confirmed.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenPayment {
    pub user: u64,
    pub reservation: u64,
    pub option: u64,
    pub seat: u64,
    pub amount: u64,
    pub payment: Option<u64>,
}

/// What the clients saw: the payments confirmed, and each wallet's balance as the top-ups
/// and payments confirmed make it.
#[derive(Debug, Default)]
pub struct Seen {
    pub payments: Vec<SeenPayment>,
    pub balances: BTreeMap<u64, i128>,
}

impl Seen {
    pub fn of(entries: &[Entry]) -> Self {
        let mut seen = Self::default();
        for entry in entries {
            let balance = seen.balances.entry(entry.user).or_default();
            let Some(answer) = &entry.answer else {
                continue;
            };
            match &entry.call {
                Call::Charge { amount } => *balance += i128::from(*amount),
                Call::Pay {
                    reservation,
                    option,
                    seat,
                    price,
                    ..
                } => {
                    let amount = answer["amount"].as_u64().unwrap_or(*price);
                    *balance -= i128::from(amount);
                    seen.payments.push(SeenPayment {
                        user: entry.user,
                        reservation: *reservation,
                        option: *option,
                        seat: *seat,
                        amount,
                        payment: answer["paymentId"].as_u64(),
                    });
                }
            }
        }
        seen
    }
}
