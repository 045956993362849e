//! The admission ticker. Every replica runs one, but only the holder of the Redis lease
//! ticks; the rate itself is enforced by the token bucket inside `admit.lua`, so even an
//! overlap during a lease hand-over cannot admit faster than configured.
//!
//! A tick does bounded work however many rooms exist: it steps at most
//! [`Limits::rooms_per_tick`] rooms, taken in turn from a cursor (`SSCAN`) that walks the room
//! set across ticks, with [`Limits::concurrency`] scripts in flight; it starts no new script
//! once [`Limits::budget`] has passed. A room whose step fails is logged and skipped; the
//! others go on. A room whose batch came back full (a backlog of silent waiters or of expired
//! tokens) is stepped again at once, within the budget.
//!
//! With a reservation service to ask, each tick first asks it, in one call, for the seats left
//! in the concerts of the rooms it is about to step and for its hold load: the seats stop a
//! sold-out room within the tick, the load sets the pace (`outflow`) of every room.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Duration,
};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::{
    admission::Admission,
    domain::{Room, RoomSeats},
    error::QueueError,
    outflow::{Outflow, Pace, Targets},
    reservation::Reservation,
    store::QueueStore,
};

/// Most `SSCAN` pages one tick reads while gathering its rooms (a sparse set can answer with
/// empty pages).
const MAX_SCANS_PER_TICK: usize = 16;
/// At most one warning line per this long about rooms whose step failed.
const ROOM_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// How much work one tick may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most rooms stepped per tick (at least 1).
    pub rooms_per_tick: usize,
    /// Most admission scripts in flight at once (at least 1).
    pub concurrency: usize,
    /// No new script starts once this much of the tick has passed (the first room of a tick
    /// always gets its step, so a tiny budget still makes progress). Scripts already running
    /// finish, each within the store's Redis deadline.
    pub budget: Duration,
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickReport {
    /// The pace this tick applied (none when not leading).
    pub pace: Option<Pace>,
    /// Whether this admitter held the lease (nothing else happens without it).
    pub leading: bool,
    /// Rooms stepped, successfully or not.
    pub rooms: usize,
    /// Admission scripts run (a room with a full batch runs more than one).
    pub scripts: usize,
    /// Counts summed over the rooms; `waiting` and `active` sum each room's latest state.
    pub admission: Admission,
    /// Rooms whose step failed this tick.
    pub failed: Vec<Room>,
    /// Rooms this tick was due to step but left, at the front of the line, for the next one
    /// because its time budget ran out.
    pub deferred: usize,
}

/// The admission loop's state between ticks: the lease identity, the cursor through the room
/// set and the rooms read from it but not yet stepped.
pub struct Admitter {
    store: QueueStore,
    holder: String,
    lease: Duration,
    limits: Limits,
    cursor: u64,
    pending: VecDeque<Room>,
    /// The rooms in `pending`, so none is in line twice.
    in_pending: HashSet<Room>,
    leading: bool,
    /// Whether this admitter has moved the settings of the layout before hash tags
    /// (`store::upgrade`): once, before its first step as leader.
    adopted: bool,
    warnings: RoomWarnings,
    metrics: Option<crate::metrics::RoomMetrics>,
    reservation: Option<Paced>,
}

/// The reservation service to ask, the pace it sets, and when it was last asked (on the
/// store's clock, so a test's manual clock paces the admitter as it paces admission).
struct Paced {
    reservation: Reservation,
    outflow: Outflow,
    asked: Option<i64>,
    started: Instant,
    warnings: RoomWarnings,
}

impl Admitter {
    /// An admitter ticking every `tick` with a fresh lease identity.
    pub fn new(store: QueueStore, tick: Duration, limits: Limits) -> Self {
        let limits = Limits {
            rooms_per_tick: limits.rooms_per_tick.max(1),
            concurrency: limits.concurrency.max(1),
            budget: limits.budget,
        };
        // Long enough to survive a slow tick, short enough that a dead holder is replaced quickly.
        let lease = (tick * 10)
            .max(limits.budget * 4)
            .max(Duration::from_secs(2));
        Self {
            store,
            holder: uuid::Uuid::new_v4().to_string(),
            lease,
            limits,
            cursor: 0,
            pending: VecDeque::new(),
            in_pending: HashSet::new(),
            leading: false,
            adopted: false,
            warnings: RoomWarnings::default(),
            metrics: None,
            reservation: None,
        }
    }

    /// The same admitter asking `reservation` each tick for seats and hold load, slowing down
    /// past `targets`.
    pub fn with_reservation(mut self, reservation: Reservation, targets: Targets) -> Self {
        self.reservation = Some(Paced {
            reservation,
            outflow: Outflow::new(targets),
            asked: None,
            started: Instant::now(),
            warnings: RoomWarnings::default(),
        });
        self
    }

    /// The same admitter recording each room's step into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::RoomMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// One tick: renew the lease, then step the next rooms in turn. Fails only when the lease
    /// or the room set cannot be read; a failing room is reported in [`TickReport::failed`].
    pub async fn tick(&mut self) -> Result<TickReport, QueueError> {
        let deadline = Instant::now() + self.limits.budget;
        let leading = self.store.hold_lease(&self.holder, self.lease).await?;
        if leading != self.leading {
            tracing::info!(holder = %self.holder, leading, "admission lease changed");
            self.leading = leading;
        }
        if !leading {
            if let Some(metrics) = &self.metrics {
                metrics.not_leading();
            }
            return Ok(TickReport::default());
        }
        if !self.adopted {
            let adopted = self.store.adopt_earlier_settings().await?;
            if adopted > 0 {
                tracing::info!(
                    rooms = adopted,
                    "settings of the earlier key layout adopted"
                );
            }
            self.adopted = true;
        }
        self.gather().await?;

        let due = self.limits.rooms_per_tick.min(self.pending.len());
        let mut rooms: VecDeque<Room> = self.pending.drain(..due).collect();
        for room in &rooms {
            self.in_pending.remove(room);
        }
        let (pace, seats) = self.observe(&rooms).await;
        if let Some(metrics) = &self.metrics {
            metrics.paced(pace.share);
        }
        let mut report = TickReport {
            leading: true,
            pace: Some(pace.clone()),
            ..TickReport::default()
        };
        let store = &self.store;
        let pace = &pace;
        let seats = &seats;
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.limits.concurrency
                && (report.rooms == 0 || Instant::now() < deadline)
            {
                let Some(room) = rooms.pop_front() else {
                    break;
                };
                report.rooms += 1;
                let room_seats = room.concert_id().and_then(|id| seats.get(&id).copied());
                in_flight.push(step_room(store, room, deadline, pace, room_seats));
            }
            let Some(outcome) = in_flight.next().await else {
                break;
            };
            report.scripts += outcome.scripts;
            report.admission = report.admission.and(outcome.admission);
            let admission = outcome.admission;
            if let (Some(metrics), None) = (&self.metrics, &outcome.error) {
                metrics.stepped(outcome.room, &admission);
            }
            if admission.admitted + admission.expired + admission.dropped > 0 {
                tracing::debug!(room = ?outcome.room, ?admission, scripts = outcome.scripts, "admission step");
            }
            if let Some(error) = outcome.error {
                self.warnings.room_failed(outcome.room, &error);
                report.failed.push(outcome.room);
            }
        }
        report.deferred = rooms.len();
        if report.deferred > 0 {
            tracing::debug!(
                deferred = report.deferred,
                budget = ?self.limits.budget,
                "admission tick out of time; the rest go first next tick"
            );
        }
        for room in rooms.into_iter().rev() {
            if self.in_pending.insert(room) {
                self.pending.push_front(room);
            }
        }
        Ok(report)
    }

    /// Asks the reservation service about the concerts of `rooms`: the pace for this tick and
    /// the seats by concert (none known when there is no service to ask or it did not answer:
    /// the rooms keep the last known stand, and the pace drops).
    async fn observe(&mut self, rooms: &VecDeque<Room>) -> (Pace, HashMap<i64, RoomSeats>) {
        let Some(paced) = &mut self.reservation else {
            return (Pace::ceiling(), HashMap::new());
        };
        // Nothing to step, nothing to pace: an idle admitter does not call every tick.
        if rooms.is_empty() {
            return (paced.outflow.current(), HashMap::new());
        }
        let concerts: Vec<i64> = rooms.iter().filter_map(|room| room.concert_id()).collect();
        let now = self.store.clock().manual_now_ms().unwrap_or_else(|| {
            i64::try_from(paced.started.elapsed().as_millis()).unwrap_or(i64::MAX)
        });
        let elapsed = paced.asked.map_or(Duration::ZERO, |asked| {
            Duration::from_millis(u64::try_from(now - asked).unwrap_or(0))
        });
        paced.asked = Some(now);
        match paced.reservation.outlook(concerts).await {
            Ok(outlook) => (
                paced.outflow.observe(Some(&outlook.holds), elapsed),
                outlook.seats,
            ),
            Err(status) => {
                paced.warnings.reservation_failed(&status);
                (paced.outflow.observe(None, elapsed), HashMap::new())
            }
        }
    }

    /// Reads pages of the room set from the cursor until a tick's worth of rooms is pending
    /// or the pass is complete (the next gathering starts the next pass).
    async fn gather(&mut self) -> Result<(), QueueError> {
        let wanted = self.limits.rooms_per_tick;
        for _ in 0..MAX_SCANS_PER_TICK {
            if self.pending.len() >= wanted {
                break;
            }
            let (next, rooms) = self.store.scan_rooms(self.cursor, wanted).await?;
            for room in rooms {
                if self.in_pending.insert(room) {
                    self.pending.push_back(room);
                }
            }
            self.cursor = next;
            if next == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// Runs admission ticks every `tick` until the task is dropped.
pub async fn run(
    store: QueueStore,
    tick: Duration,
    limits: Limits,
    metrics: crate::metrics::RoomMetrics,
    reservation: Option<(Reservation, Targets)>,
) {
    let mut admitter = Admitter::new(store, tick, limits).with_metrics(metrics);
    if let Some((reservation, targets)) = reservation {
        admitter = admitter.with_reservation(reservation, targets);
    }
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = admitter.tick().await {
            tracing::warn!(%error, "admission tick failed; retrying next tick");
        }
    }
}

struct RoomOutcome {
    room: Room,
    scripts: usize,
    admission: Admission,
    error: Option<QueueError>,
}

/// Steps one room, again at once while its batches come back full and the budget lasts.
async fn step_room(
    store: &QueueStore,
    room: Room,
    deadline: Instant,
    pace: &Pace,
    seats: Option<RoomSeats>,
) -> RoomOutcome {
    let mut outcome = RoomOutcome {
        room,
        scripts: 0,
        admission: Admission::default(),
        error: None,
    };
    loop {
        outcome.scripts += 1;
        match store.admit_with(room, pace, seats).await {
            Ok(step) => {
                outcome.admission = outcome.admission.followed_by(step);
                if !step.batch_full() || Instant::now() >= deadline {
                    break;
                }
            }
            Err(error) => {
                outcome.error = Some(error);
                break;
            }
        }
    }
    outcome
}

/// One warning line per interval about failing rooms (with the room and the error of the first
/// failure, and how many failures went unreported since the last line); the rest at debug.
#[derive(Default)]
struct RoomWarnings {
    last: Option<Instant>,
    suppressed: u64,
}

impl RoomWarnings {
    /// Whether a warning line is due now; if so, how many were held back since the last one.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_none_or(|last| now.duration_since(last) >= ROOM_WARNING_INTERVAL)
        {
            self.last = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    fn reservation_failed(&mut self, status: &tonic::Status) {
        if let Some(suppressed) = self.due() {
            tracing::warn!(
                code = ?status.code(),
                message = status.message(),
                suppressed,
                "the reservation service did not say how it copes; admitting slower"
            );
        }
    }

    fn room_failed(&mut self, room: Room, error: &QueueError) {
        match self.due() {
            Some(suppressed) => tracing::warn!(
                room = ?room,
                %error,
                suppressed,
                "admission failed in one room; the other rooms go on"
            ),
            None => tracing::debug!(room = ?room, %error, "admission failed in one room"),
        }
    }
}
