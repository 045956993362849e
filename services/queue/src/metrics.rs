//! What the queue exports on its metrics port: its gRPC calls (kit's layer: IssueToken,
//! GetStatus, ... by status), Redis round-trip latency per script or command, the pool's usage,
//! and per room what the admitter saw at its last step — `queue_room_waiting`,
//! `queue_room_active` — and counted — `queue_room_admitted_total`, `_expired_total`,
//! `_dropped_total`, `_idled_total` — and the share of the configured rate the admitter applies
//! (`queue_admission_share`, 1 at the ceiling).
//!
//! Room labels are `default` or `concert-{id}`, at most [`MAX_ROOM_LABELS`] of them; later
//! rooms count under `other` (their gauges are not exported: one gauge cannot hold many
//! rooms), so a flood of rooms cannot grow the registry. Only the replica holding the admission
//! lease steps rooms, so only it exports room gauges; one that loses the lease drops them
//! rather than leaving its last values behind.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, atomic::AtomicU64},
};

use kit::metrics::{
    GrpcMetrics, Registry, StoreLatency,
    client::metrics::{counter::Counter, family::Family, gauge::Gauge},
};

use crate::{admission::Admission, domain::Room, store::QueueStore};

/// Most rooms with their own label.
pub const MAX_ROOM_LABELS: usize = 200;

type RoomLabel = [(&'static str, String); 1];

/// The gRPC layer and the store's latency, for the server and the store.
pub struct QueueMetrics {
    pub grpc: GrpcMetrics,
    pub store: StoreLatency,
    pub rooms: RoomMetrics,
}

impl QueueMetrics {
    /// Registers everything; the pool gauges read `store`'s pool at each scrape.
    pub fn register(registry: &mut Registry, store: &QueueStore) -> Self {
        let probe = store.clone();
        kit::metrics::register_pool(registry, "redis", move || probe.pool_usage());
        Self {
            grpc: GrpcMetrics::register(registry),
            store: StoreLatency::register(registry, "redis"),
            rooms: RoomMetrics::register(registry),
        }
    }
}

/// Per-room gauges and counters fed by the admitter's steps. Clones share them.
#[derive(Clone)]
pub struct RoomMetrics {
    waiting: Family<RoomLabel, Gauge>,
    active: Family<RoomLabel, Gauge>,
    admitted: Family<RoomLabel, Counter>,
    expired: Family<RoomLabel, Counter>,
    dropped: Family<RoomLabel, Counter>,
    idled: Family<RoomLabel, Counter>,
    share: Gauge<f64, AtomicU64>,
    labelled: Arc<Mutex<HashSet<Room>>>,
}

impl RoomMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            waiting: Family::default(),
            active: Family::default(),
            admitted: Family::default(),
            expired: Family::default(),
            dropped: Family::default(),
            idled: Family::default(),
            share: Gauge::default(),
            labelled: Arc::default(),
        };
        metrics.share.set(1.0);
        registry.register(
            "queue_room_waiting",
            "Tokens waiting in the room after the admitter's last step (lease holder only)",
            metrics.waiting.clone(),
        );
        registry.register(
            "queue_room_active",
            "Tokens active (admitted, not yet expired) after the admitter's last step (lease holder only)",
            metrics.active.clone(),
        );
        registry.register(
            "queue_room_admitted",
            "Waiters admitted by the admitter",
            metrics.admitted.clone(),
        );
        registry.register(
            "queue_room_expired",
            "Active tokens expired by the admitter",
            metrics.expired.clone(),
        );
        registry.register(
            "queue_room_dropped",
            "Waiters dropped for not polling within the grace",
            metrics.dropped.clone(),
        );
        registry.register(
            "queue_room_idled",
            "Admitted users who gave their slot back by making no reservation call in time",
            metrics.idled.clone(),
        );
        registry.register(
            "queue_admission_share",
            "Share of the configured admission rate (or cap) the admitter applies, from the reservation service's hold load",
            metrics.share.clone(),
        );
        metrics
    }

    /// Records the pace of a tick.
    pub fn paced(&self, share: f64) {
        self.share.set(share);
    }

    /// Records one room's step (the admitter's hook).
    pub fn stepped(&self, room: Room, admission: &Admission) {
        let (label, own) = self.label(room);
        let labels = [("room", label)];
        self.admitted
            .get_or_create(&labels)
            .inc_by(admission.admitted);
        self.expired
            .get_or_create(&labels)
            .inc_by(admission.expired);
        self.dropped
            .get_or_create(&labels)
            .inc_by(admission.dropped);
        self.idled.get_or_create(&labels).inc_by(admission.idled);
        if own {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.waiting
                .get_or_create(&labels)
                .set(gauge(admission.waiting));
            self.active
                .get_or_create(&labels)
                .set(gauge(admission.active));
        }
    }

    /// This replica does not hold the lease: its room gauges would go stale, so they go.
    pub fn not_leading(&self) {
        self.waiting.clear();
        self.active.clear();
    }

    /// The room's label, and whether it is the room's own (not `other`).
    fn label(&self, room: Room) -> (String, bool) {
        let own = match self.labelled.lock() {
            Ok(mut labelled) => {
                labelled.contains(&room)
                    || (labelled.len() < MAX_ROOM_LABELS && labelled.insert(room))
            }
            Err(_) => false,
        };
        if !own {
            return ("other".to_owned(), false);
        }
        let label = match room {
            Room::Default => "default".to_owned(),
            Room::Concert(id) => format!("concert-{id}"),
        };
        (label, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(admitted: u64, waiting: u64) -> Admission {
        Admission {
            admitted,
            expired: 0,
            dropped: 1,
            idled: 0,
            waiting,
            active: admitted,
        }
    }

    #[test]
    fn rooms_past_the_label_cap_count_as_other_without_gauges() {
        let mut registry = Registry::default();
        let rooms = RoomMetrics::register(&mut registry);
        rooms.stepped(Room::Default, &step(2, 5));
        rooms.stepped(Room::Default, &step(1, 4));
        for id in 1..=i64::try_from(MAX_ROOM_LABELS).unwrap_or(i64::MAX) + 10 {
            rooms.stepped(Room::Concert(id), &step(1, 9));
        }
        let scraped = kit::metrics::Exposition::parse(&kit::metrics::encode(&registry));
        let room = |name: &str, room: &str| scraped.sum(name, &[("room", room)]);
        assert_eq!(room("queue_room_admitted_total", "default"), Some(3.0));
        assert_eq!(room("queue_room_dropped_total", "default"), Some(2.0));
        assert_eq!(room("queue_room_waiting", "default"), Some(4.0));
        assert_eq!(room("queue_room_waiting", "concert-1"), Some(9.0));
        // The default room took one label: 199 concerts have their own, 11 count as other.
        assert_eq!(room("queue_room_admitted_total", "other"), Some(11.0));
        assert_eq!(room("queue_room_waiting", "other"), None);
        let labels = scraped.matching("queue_room_admitted_total", &[]).count();
        assert_eq!(labels, MAX_ROOM_LABELS + 1);

        rooms.not_leading();
        let scraped = kit::metrics::Exposition::parse(&kit::metrics::encode(&registry));
        assert_eq!(scraped.sum("queue_room_waiting", &[]), None);
        assert_eq!(
            scraped.sum("queue_room_admitted_total", &[("room", "default")]),
            Some(3.0)
        );
    }
}
