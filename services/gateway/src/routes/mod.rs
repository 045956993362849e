//! One module per route group of the HTTP contract.

pub mod admin;
pub mod admission;
pub mod concerts;
pub mod dev_sign_in;
pub mod health;
pub mod pages;
pub mod payments;
pub mod queue;
pub mod reservations;
pub mod wallets;
