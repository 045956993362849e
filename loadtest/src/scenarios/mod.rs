//! One module per load scenario; each returns a [`crate::report::Run`].

pub mod capacity;
pub mod contention;
pub mod cost;
pub mod faults;
pub mod holds;
pub mod issue_tokens;
pub mod limits;
pub mod presale;
pub mod queue_spike;
pub mod reserve_flow;

/// The first user id of a run: the one given, or a random base far from earlier runs' users
/// (ids stay below 2^53, what the API accepts).
pub fn first_user(given: Option<u64>) -> u64 {
    given.unwrap_or_else(|| fastrand::u64(1..(1 << 40)) * 1000)
}
