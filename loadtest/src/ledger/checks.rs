//! The checks that hold what clients saw confirmed against what the system holds.

use std::collections::HashSet;

use super::{Seen, Stored};
use crate::report::{Check, check};

/// Every payment a client saw confirmed is stored with its amount, and its reservation is
/// CONFIRMED in the database and through the API; the lost ones counted.
pub fn confirmed_payments_exist(seen: &Seen, stored: &Stored) -> (Check, u64) {
    let mut lost = Vec::new();
    for payment in &seen.payments {
        let in_database = stored.reservations.get(&payment.reservation);
        let kept = in_database.is_some_and(|r| {
            r.status == "CONFIRMED"
                && r.user == payment.user as i64
                && r.paid == Some(payment.amount as i64)
                && (payment.payment.is_none() || r.payment == payment.payment.map(|p| p as i64))
        }) && stored
            .api_status
            .get(&payment.reservation)
            .map(String::as_str)
            == Some("CONFIRMED");
        if !kept {
            lost.push(payment.reservation);
        }
    }
    let detail = format!(
        "{} payments confirmed to clients; {} of them not CONFIRMED with their payment in the database and through the API{}",
        seen.payments.len(),
        lost.len(),
        examples(&lost),
    );
    (check(lost.is_empty(), detail), lost.len() as u64)
}

/// No seat sold to two clients, none held or sold twice in the database, every sale's claim
/// its own, no sold seat offered as free; the seats sold twice counted.
pub fn no_seat_twice(seen: &Seen, stored: &Stored) -> (Check, u64) {
    let mut sold = HashSet::new();
    let to_two_clients = seen
        .payments
        .iter()
        .filter(|p| !sold.insert((p.option, p.seat)))
        .count() as u64;
    let twice_in_database = stored.seats_twice.len() as u64;
    let offered_sold = seen
        .payments
        .iter()
        .filter(|p| {
            stored
                .offered
                .get(&p.option)
                .is_some_and(|free| free.contains(&p.seat))
        })
        .count();
    let sold_twice = to_two_clients.max(twice_in_database);
    let ok = sold_twice == 0 && stored.claims_astray == 0 && offered_sold == 0;
    let detail = format!(
        "{} seats sold to clients: {to_two_clients} sold to two; in the database {twice_in_database} seats held or sold by two reservations, {} sales whose claim is not theirs; {offered_sold} sold seats offered as free",
        sold.len(),
        stored.claims_astray
    );
    (check(ok, detail), sold_twice)
}

/// Every wallet of the run's users, in the database and through the API, is its top-ups
/// confirmed less its payments confirmed.
pub fn wallets_exact(seen: &Seen, stored: &Stored) -> Check {
    let mut wrong = Vec::new();
    for (user, expected) in &seen.balances {
        let in_database = i128::from(stored.wallets.get(user).copied().unwrap_or(0));
        let through_api = stored.api_balances.get(user).copied().map(i128::from);
        if in_database != *expected || through_api != Some(*expected) {
            wrong.push(*user);
        }
    }
    let seen_reservations: HashSet<u64> = seen.payments.iter().map(|p| p.reservation).collect();
    let unseen = stored
        .payments_of_users
        .difference(&seen_reservations)
        .count();
    check(
        wrong.is_empty(),
        format!(
            "{} wallets; {} differ from the top-ups less the payments confirmed to their owner (database or API){}; {unseen} payments in the database no client saw confirmed",
            seen.balances.len(),
            wrong.len(),
            examples(&wrong),
        ),
    )
}

/// ": a, b, c" for the first few of `ids`, or nothing.
fn examples(ids: &[u64]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let first: Vec<String> = ids.iter().take(5).map(u64::to_string).collect();
    format!(" (e.g. {})", first.join(", "))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use std::collections::{BTreeMap, HashMap};

    use crate::ledger::{Call, Entry, StoredReservation};

    fn entry(user: u64, call: Call, answer: Option<Value>) -> Entry {
        Entry {
            user,
            key: format!("k-{user}"),
            call,
            answer,
        }
    }

    fn pay(reservation: u64, seat: u64) -> Call {
        Call::Pay {
            reservation,
            option: 1,
            seat,
            price: 100,
            token: "t".into(),
        }
    }

    /// Users 1 and 2 each topped up 100 and paid 100 (reservations 10 and 20, seats 1 and 2);
    /// user 3 topped up 100 and has no payment confirmed; user 4's top-up never answered.
    fn seen() -> Seen {
        Seen::of(&[
            entry(1, Call::Charge { amount: 100 }, Some(json!({}))),
            entry(1, pay(10, 1), Some(json!({"amount": 100, "paymentId": 7}))),
            entry(2, Call::Charge { amount: 100 }, Some(json!({}))),
            entry(2, pay(20, 2), Some(json!({"amount": 100, "paymentId": 8}))),
            entry(3, Call::Charge { amount: 100 }, Some(json!({}))),
            entry(3, pay(30, 3), None),
            entry(4, Call::Charge { amount: 50 }, None),
        ])
    }

    fn confirmed(user: i64, payment: i64) -> StoredReservation {
        StoredReservation {
            status: "CONFIRMED".into(),
            user,
            payment: Some(payment),
            paid: Some(100),
        }
    }

    /// The system as it should be after `seen()`.
    fn kept() -> Stored {
        Stored {
            reservations: HashMap::from([(10, confirmed(1, 7)), (20, confirmed(2, 8))]),
            wallets: HashMap::from([(1, 0), (2, 0), (3, 100)]),
            payments_of_users: HashSet::from([10, 20]),
            api_status: HashMap::from([(10, "CONFIRMED".into()), (20, "CONFIRMED".into())]),
            api_balances: HashMap::from([(1, 0), (2, 0), (3, 100), (4, 0)]),
            offered: HashMap::from([(1, HashSet::from([3, 4, 5]))]),
            ..Stored::default()
        }
    }

    #[test]
    fn what_clients_saw_is_the_answered_calls_only() {
        let seen = seen();
        assert_eq!(seen.payments.len(), 2);
        assert_eq!(seen.payments[0].payment, Some(7));
        assert_eq!(
            seen.balances,
            BTreeMap::from([(1, 0), (2, 0), (3, 100), (4, 0)])
        );
    }

    #[test]
    fn a_system_that_kept_everything_passes_every_check() {
        let (seen, stored) = (seen(), kept());
        let (payments, lost) = confirmed_payments_exist(&seen, &stored);
        assert!(payments.ok, "{}", payments.detail);
        assert_eq!(lost, 0);
        let (seats, twice) = no_seat_twice(&seen, &stored);
        assert!(seats.ok, "{}", seats.detail);
        assert_eq!(twice, 0);
        let wallets = wallets_exact(&seen, &stored);
        assert!(wallets.ok, "{}", wallets.detail);
    }

    #[test]
    fn a_confirmed_payment_missing_or_not_confirmed_anywhere_is_lost() {
        let seen = seen();
        let mut gone = kept();
        gone.reservations.remove(&10);
        assert_eq!(confirmed_payments_exist(&seen, &gone).1, 1);
        let mut expired = kept();
        expired.reservations.insert(
            20,
            StoredReservation {
                status: "EXPIRED".into(),
                ..confirmed(2, 8)
            },
        );
        assert_eq!(confirmed_payments_exist(&seen, &expired).1, 1);
        let mut other_amount = kept();
        other_amount.reservations.insert(
            20,
            StoredReservation {
                paid: Some(99),
                ..confirmed(2, 8)
            },
        );
        assert_eq!(confirmed_payments_exist(&seen, &other_amount).1, 1);
        let mut api_disagrees = kept();
        api_disagrees.api_status.insert(10, "HELD".into());
        let (check, lost) = confirmed_payments_exist(&seen, &api_disagrees);
        assert!(!check.ok);
        assert_eq!(lost, 1);
        assert!(check.detail.contains("e.g. 10"), "{}", check.detail);
    }

    #[test]
    fn a_seat_sold_twice_anywhere_or_sold_and_offered_breaks_the_seat_check() {
        let stored = kept();
        let mut two_buyers = seen();
        two_buyers.payments[1].seat = 1;
        let (check, twice) = no_seat_twice(&two_buyers, &stored);
        assert!(!check.ok);
        assert_eq!(twice, 1);

        let seen = seen();
        let twice_in_database = Stored {
            seats_twice: vec![(1, 9, 2)],
            ..kept()
        };
        assert_eq!(no_seat_twice(&seen, &twice_in_database).1, 1);
        let astray = Stored {
            claims_astray: 1,
            ..kept()
        };
        assert!(!no_seat_twice(&seen, &astray).0.ok);
        let mut offered = kept();
        offered.offered.insert(1, HashSet::from([1]));
        let (check, twice) = no_seat_twice(&seen, &offered);
        assert!(!check.ok);
        assert_eq!(twice, 0, "offered, not sold twice");
    }

    #[test]
    fn a_wallet_off_by_anything_in_the_database_or_the_api_breaks_the_wallet_check() {
        let seen = seen();
        let mut charged_twice = kept();
        charged_twice.wallets.insert(3, 200);
        assert!(!wallets_exact(&seen, &charged_twice).ok);
        let mut api = kept();
        api.api_balances.insert(1, 100);
        assert!(!wallets_exact(&seen, &api).ok);
        let mut unanswered = kept();
        unanswered.api_balances.remove(&2);
        assert!(
            !wallets_exact(&seen, &unanswered).ok,
            "no answer is no proof"
        );
        let mut ghost = kept();
        ghost.payments_of_users.insert(30);
        ghost.wallets.insert(3, 0);
        ghost.api_balances.insert(3, 0);
        let check = wallets_exact(&seen, &ghost);
        assert!(!check.ok);
        assert!(
            check
                .detail
                .contains("1 payments in the database no client saw confirmed"),
            "{}",
            check.detail
        );
    }
}
