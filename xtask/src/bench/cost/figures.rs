//! A cost row's figures as read from a run's report: every process's CPU per request, rate,
//! latency and errors, for a request kind, the holds, or the bare floor of the queue pair's path.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::format::{Results, micros, show};

/// The measured processes: the key in a run's `cpu.by_process`, and the column header.
pub(super) const PROCESSES: [(&str, &str); 6] = [
    ("gateway", "gateway"),
    ("queue", "queue"),
    ("catalog", "catalog"),
    ("reservation", "reservation"),
    ("redis", "Redis"),
    ("postgresql", "PostgreSQL"),
];

/// The floor's bare processes and the columns of the services they stand in for.
const FLOOR_STANDS_FOR: [(&str, &str); 2] = [("bare-relay", "gateway"), ("bare-grpc", "queue")];
/// The floor's path, in those columns.
pub(super) const FLOOR_PATH: &[&str] = &["gateway", "queue", "redis"];
pub(super) const FLOOR_LABEL: &str =
    "floor of that path: bare relay → bare gRPC server → one Redis script";

/// The floor measured flat out (against the queue pair), or at the holds' rate and users; or
/// the same bare hops flat out carrying the queue's store doing a kind's work (`issue-token`,
/// `check-queue`).
#[derive(Clone, Copy)]
pub(super) enum Floor {
    FlatOut,
    AtHoldsRate,
    WithStore(&'static str),
}

impl Floor {
    fn pointer(self) -> String {
        match self {
            Floor::FlatOut => "/results/floor".into(),
            Floor::AtHoldsRate => "/results/floor_at_holds_rate".into(),
            Floor::WithStore(kind) => format!("/results/floor_with_store/{kind}"),
        }
    }
}

/// One row's figures.
pub(in crate::bench) struct Figures {
    pub(super) rps: Option<f64>,
    pub(super) p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
    pub(super) errors: Option<f64>,
    /// µs per request by process key.
    pub(super) cpu: BTreeMap<&'static str, f64>,
    pub(super) load_generator: Option<f64>,
}

impl Figures {
    /// From a run's figures at `base`: `rps` and `errors` are the pointers that hold them.
    pub(super) fn read(run: &Value, base: &str, rps: &str, errors: &str) -> Self {
        let at = |pointer: &str| run.pointer(&format!("{base}{pointer}"));
        let cpu = PROCESSES
            .iter()
            .filter_map(|(key, _)| {
                let us = at(&format!("/cpu/by_process/{key}/us_per_request"))?.as_f64()?;
                Some((*key, us))
            })
            .collect();
        Self {
            rps: at(rps).and_then(Value::as_f64),
            p50_ms: at("/latency/p50_ms").and_then(Value::as_f64),
            p99_ms: at("/latency/p99_ms").and_then(Value::as_f64),
            // A count, or counts by status and code.
            errors: at(errors).and_then(|e| {
                e.as_f64()
                    .or_else(|| Some(e.as_object()?.values().filter_map(Value::as_f64).sum()))
            }),
            cpu,
            load_generator: at("/cpu/load_generator/us_per_request").and_then(Value::as_f64),
        }
    }

    pub(in crate::bench) fn of_kind(results: &Results, run: &str, kind: &str) -> Option<Self> {
        let run = results.get(run)?;
        let base = format!("/results/kinds/{kind}");
        run.pointer(&base)?;
        Some(Self::read(run, &base, "/requests_per_second", "/errors"))
    }

    /// The floor of the queue pair's path in a cost run: its bare relay in the gateway's column
    /// and its bare gRPC server in the queue's, beside Redis.
    pub(super) fn of_floor(results: &Results, run: &str, floor: Floor) -> Option<Self> {
        let run = results.get(run)?;
        let base = floor.pointer();
        run.pointer(&format!("{base}/cpu"))?;
        let mut figures = Self::read(run, &base, "/requests_per_second", "/errors");
        for (bare, column) in FLOOR_STANDS_FOR {
            let pointer = format!("{base}/cpu/by_process/{bare}/us_per_request");
            if let Some(us) = run.pointer(&pointer).and_then(Value::as_f64) {
                figures.cpu.insert(column, us);
            }
        }
        Some(figures)
    }

    pub(in crate::bench) fn of_holds(results: &Results, run: &str) -> Option<Self> {
        Some(Self::read(
            results.get(run)?,
            "/results",
            "/attempts_per_second",
            "/errors",
        ))
    }

    /// The sum over `path`; `None` when none of it was measured.
    pub(in crate::bench) fn total(&self, path: &[&str]) -> Option<f64> {
        let known: Vec<f64> = path
            .iter()
            .filter_map(|key| self.cpu.get(key).copied())
            .collect();
        (!known.is_empty()).then(|| known.iter().sum())
    }

    /// "62 µs (relay 22, gRPC server 20, Redis 20)".
    pub(super) fn total_with_floor_parts(&self) -> String {
        let part = |key| show(self.cpu.get(key).copied(), |us| format!("{us:.0}"));
        format!(
            "{} (relay {}, gRPC server {}, Redis {})",
            show(self.total(FLOOR_PATH), micros),
            part("gateway"),
            part("queue"),
            part("redis")
        )
    }

    /// "213 µs (gateway 74, queue 73, Redis 66)".
    pub(super) fn total_with_parts(&self, path: &[&str]) -> String {
        let parts: Vec<String> = PROCESSES
            .iter()
            .filter(|(key, _)| path.contains(key))
            .filter_map(|(key, header)| Some(format!("{header} {:.0}", self.cpu.get(key)?)))
            .collect();
        format!("{} ({})", show(self.total(path), micros), parts.join(", "))
    }
}
