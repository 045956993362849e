//! Faults injected into a running system, for the `faults` scenario
//! (`scenarios/faults.rs`): which and when ([`schedule`]), into what processes ([`driver`],
//! [`process`]), and each fault's figures afterwards ([`figures`]).

pub mod driver;
pub mod figures;
pub mod process;
pub mod schedule;
