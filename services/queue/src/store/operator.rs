//! The operator's side of the store: rooms' figures and history, settings and their change
//! log. A room's settings and its change-log entry are written by one script, so they never
//! disagree; each room keeps its own log (in its slot), and the change log is those logs
//! merged.

use futures::{StreamExt, stream};

use super::*;
use crate::{
    outflow::{InEffect, OutflowLimit},
    schedule::{RoomPhase, Schedule, SchedulePatch},
};

/// Rooms whose figures (or change logs) one listing reads at once, each its own round trip
/// (on a Redis Cluster, to the room's primary).
const ROOMS_IN_FLIGHT: usize = 16;

impl QueueStore {
    /// The figures and settings in effect of the default room, of `requested` and of every
    /// room that has waiters, active tokens or operator settings: the default room first, then
    /// the concerts' rooms by id. Each room's figures are one script on that room's keys.
    pub async fn list_rooms(&self, requested: &[Room]) -> Result<Vec<RoomFigures>, QueueError> {
        let mut rooms = vec![Room::Default];
        rooms.extend_from_slice(requested);
        rooms.extend(self.rooms().await?);
        rooms.extend(self.rooms_with_settings().await?);
        // `None` (the default room) sorts first.
        rooms.sort_by_key(|room| room.concert_id());
        rooms.dedup();
        stream::iter(rooms)
            .map(|room| async move { Ok(self.one_room(room).await?.0) })
            .buffered(ROOMS_IN_FLIGHT)
            .collect::<Vec<Result<RoomFigures, QueueError>>>()
            .await
            .into_iter()
            .collect()
    }

    /// Rooms that have operator settings.
    async fn rooms_with_settings(&self) -> Result<Vec<Room>, QueueError> {
        self.members(self.keys.settings_set()).await
    }

    /// One room's figures and settings in effect.
    pub async fn room_figures(&self, room: Room) -> Result<RoomFigures, QueueError> {
        Ok(self.one_room(room).await?.0)
    }

    /// One room's figures, and the version of its operator's settings (0: none yet).
    async fn one_room(&self, room: Room) -> Result<(RoomFigures, u64), QueueError> {
        type Base = (u64, u64, f64, f64, u64, u64, u64, u8, f64, u32, u64);
        type Outflow = (
            i64,
            i64,
            String,
            f64,
            u32,
            String,
            String,
            i64,
            u32,
            u32,
            u64,
        );
        let (base, outflow): (Base, Outflow) = self
            .run(
                "figures",
                self.scripts
                    .figures
                    .key(self.keys.room(room))
                    .arg(self.clock_arg())
                    .arg(self.policy.admission_rate)
                    .arg(self.policy.active_cap)
                    .arg(millis(self.policy.active_ttl))
                    .arg(OUTFLOW_TAU_MS),
            )
            .await?;
        room_figures(room, base, outflow)
    }

    /// The room's samples of the last five minutes, oldest first.
    pub async fn room_history(&self, room: Room) -> Result<Vec<RoomSample>, QueueError> {
        let mut command = redis::cmd("LRANGE");
        command
            .arg(self.keys.in_room(room, "history"))
            .arg(0)
            .arg(-1);
        let newest_first: Vec<String> = self.query(&command).await?;
        newest_first
            .iter()
            .rev()
            .map(|line| parse_sample(line))
            .collect()
    }

    /// Applies an operator's change to `room`'s settings and logs it, in one script; refused
    /// (INVALID_ROOM_SETTINGS) when the settings it leaves would break the rule. Another
    /// operator's change between the check and the write makes this one read and check again.
    /// Returns the room's figures with the new settings in effect.
    pub async fn update_settings(
        &self,
        room: Room,
        patch: &SettingsPatch,
        actor: &Actor,
    ) -> Result<RoomFigures, QueueError> {
        for _ in 0..SETTINGS_ATTEMPTS {
            let (current, version) = self.one_room(room).await?;
            patch.applied_to(current.settings)?;
            // Listed before it is written: a room listed without settings shows the
            // configured ones, while settings the listing missed would be invisible.
            self.add_to_set(self.keys.settings_set(), room).await?;
            let written: i64 = self
                .run(
                    "settings",
                    self.scripts
                        .settings
                        .key(self.keys.room(room))
                        .arg(self.clock_arg())
                        .arg(version)
                        .arg(
                            patch
                                .paused()
                                .map_or("", |paused| if paused { "1" } else { "0" }),
                        )
                        .arg(
                            patch
                                .admission_rate()
                                .map(|rate| rate.to_string())
                                .unwrap_or_default(),
                        )
                        .arg(
                            patch
                                .active_cap()
                                .map(|cap| cap.to_string())
                                .unwrap_or_default(),
                        )
                        .arg(change_entry(room, patch, actor))
                        .arg(CHANGES_KEPT)
                        .arg(instant_arg(patch.schedule().prequeue_opens_at_ms))
                        .arg(instant_arg(patch.schedule().opens_at_ms)),
                )
                .await?;
            if written == 1 {
                tracing::info!(
                    actor = actor.as_str(),
                    room = ?room,
                    paused = ?patch.paused(),
                    admission_rate = ?patch.admission_rate(),
                    active_cap = ?patch.active_cap(),
                    schedule = ?patch.schedule(),
                    "room settings changed"
                );
                return self.room_figures(room).await;
            }
        }
        Err(QueueError::SettingsContended)
    }

    /// The `limit` most recent settings changes (at most [`CHANGES_KEPT`]), newest first:
    /// the newest `limit` of each room with settings, merged.
    pub async fn setting_changes(&self, limit: usize) -> Result<Vec<SettingChange>, QueueError> {
        let limit = limit.min(CHANGES_KEPT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let logs: Vec<Result<Vec<SettingChange>, QueueError>> =
            stream::iter(self.rooms_with_settings().await?)
                .map(|room| self.room_changes(room, limit))
                .buffer_unordered(ROOMS_IN_FLIGHT)
                .collect()
                .await;
        // The log from before each room kept its own, if any (src/store/upgrade.rs).
        let mut changes = self
            .changes_at(self.keys.earlier_change_log(), limit)
            .await?;
        for log in logs {
            changes.extend(log?);
        }
        // Stable: a room's own changes at one instant stay newest first.
        changes.sort_by_key(|change| std::cmp::Reverse(change.at_unix_ms));
        changes.truncate(limit);
        Ok(changes)
    }

    /// The `limit` most recent settings changes of `room`, newest first.
    async fn room_changes(
        &self,
        room: Room,
        limit: usize,
    ) -> Result<Vec<SettingChange>, QueueError> {
        self.changes_at(self.keys.in_room(room, "changes"), limit)
            .await
    }

    /// The `limit` most recent settings changes in the log at `key`, newest first.
    async fn changes_at(
        &self,
        key: String,
        limit: usize,
    ) -> Result<Vec<SettingChange>, QueueError> {
        let mut command = redis::cmd("LRANGE");
        command.arg(key).arg(0).arg(limit - 1);
        let lines: Vec<String> = self.query(&command).await?;
        lines.iter().map(|line| parse_change(line)).collect()
    }
}

/// One row of `figures.lua` as the console's figures.
fn room_figures(
    room: Room,
    base: (u64, u64, f64, f64, u64, u64, u64, u8, f64, u32, u64),
    outflow: (
        i64,
        i64,
        String,
        f64,
        u32,
        String,
        String,
        i64,
        u32,
        u32,
        u64,
    ),
) -> Result<(RoomFigures, u64), QueueError> {
    let (waiting, active, admitted_rate, dropped_rate, back) =
        (base.0, base.1, base.2, base.3, base.4);
    let (admitted_total, dropped_total, paused, rate, cap, version) =
        (base.5, base.6, base.7, base.8, base.9, base.10);
    let (prequeue_at, opens_at, phase, rate_in_effect, cap_in_effect, limit) = (
        outflow.0, outflow.1, outflow.2, outflow.3, outflow.4, outflow.5,
    );
    let (detail, free, held, sold, idled_total) =
        (outflow.6, outflow.7, outflow.8, outflow.9, outflow.10);
    let stored_instant = |ms: i64| (ms > 0).then_some(ms);
    let phase = match phase.as_str() {
        "open" => RoomPhase::Open,
        "not-open" => RoomPhase::NotOpen,
        "prequeue" => RoomPhase::Prequeue,
        other => return Err(QueueError::Protocol(format!("room phase {other:?}"))),
    };
    let limit = OutflowLimit::from_code(&limit)
        .ok_or_else(|| QueueError::Protocol(format!("outflow limit {limit:?}")))?;
    let figures = RoomFigures {
        room,
        settings: RoomSettings {
            paused: paused == 1,
            admission_rate: rate,
            active_cap: cap,
            schedule: Schedule {
                prequeue_opens_at_ms: stored_instant(prequeue_at),
                opens_at_ms: stored_instant(opens_at),
            },
        },
        phase,
        in_effect: InEffect {
            admission_rate: rate_in_effect,
            active_cap: cap_in_effect,
            limit,
            detail,
        },
        seats: u32::try_from(free)
            .ok()
            .map(|free| RoomSeats { free, held, sold }),
        idled_total,
        overridden: version > 0,
        waiting,
        active,
        admitted_per_second: admitted_rate,
        dropped_per_second: dropped_rate,
        wait_at_back_seconds: back,
        admitted_total,
        dropped_total,
    };
    Ok((figures, version))
}

/// A scheduled instant as `settings.lua` takes it: '' unchanged, '0' cleared, else ms.
fn instant_arg(change: Option<Option<i64>>) -> String {
    match change {
        None => String::new(),
        Some(None) => "0".to_owned(),
        Some(Some(ms)) => ms.to_string(),
    }
}

/// A change log entry after its instant (`lua/common.lua`): room, the fields ('-' when left
/// alone, '0' for a cleared instant), and the actor last, so it is the only part that may hold
/// any printable character.
fn change_entry(room: Room, patch: &SettingsPatch, actor: &Actor) -> String {
    let field = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let instant = |change: Option<Option<i64>>| change.map(|ms| ms.unwrap_or(0).to_string());
    let schedule = patch.schedule();
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        room_key(room),
        field(patch.paused().map(|paused| u8::from(paused).to_string())),
        field(patch.admission_rate().map(|rate| rate.to_string())),
        field(patch.active_cap().map(|cap| cap.to_string())),
        field(instant(schedule.prequeue_opens_at_ms)),
        field(instant(schedule.opens_at_ms)),
        actor.as_str()
    )
}

/// Parses a change log entry; entries written before the schedule existed have no instants.
fn parse_change(line: &str) -> Result<SettingChange, QueueError> {
    let bad = || QueueError::Protocol(format!("change log entry {line:?}"));
    // Only the actor may hold more than plain fields, and never a tab (it is printable).
    let parts: Vec<&str> = line.split('\t').collect();
    let (at, room, paused, rate, cap, instants, actor) = match parts.as_slice() {
        [at, room, paused, rate, cap, actor] => (*at, *room, *paused, *rate, *cap, None, *actor),
        [at, room, paused, rate, cap, prequeue, opens, actor] => (
            *at,
            *room,
            *paused,
            *rate,
            *cap,
            Some((*prequeue, *opens)),
            *actor,
        ),
        _ => return Err(bad()),
    };
    let at_unix_ms = at.parse().map_err(|_| bad())?;
    let room = stored_room(room)?;
    let actor = Actor::new(actor).map_err(|_| bad())?;
    let paused = match paused {
        "-" => None,
        "0" => Some(false),
        "1" => Some(true),
        _ => return Err(bad()),
    };
    let optional = |raw: &str| (raw != "-").then_some(raw.to_owned());
    let admission_rate = optional(rate)
        .map(|raw| raw.parse::<f64>())
        .transpose()
        .map_err(|_| bad())?;
    let active_cap = optional(cap)
        .map(|raw| raw.parse::<u32>())
        .transpose()
        .map_err(|_| bad())?;
    let instant = |raw: &str| -> Result<Option<Option<i64>>, QueueError> {
        match raw {
            "-" => Ok(None),
            "0" => Ok(Some(None)),
            ms => ms.parse().map(|ms| Some(Some(ms))).map_err(|_| bad()),
        }
    };
    let schedule = match instants {
        None => SchedulePatch::default(),
        Some((prequeue, opens)) => SchedulePatch {
            prequeue_opens_at_ms: instant(prequeue)?,
            opens_at_ms: instant(opens)?,
        },
    };
    Ok(SettingChange {
        at_unix_ms,
        actor,
        room,
        patch: SettingsPatch::with_schedule(paused, admission_rate, active_cap, schedule)
            .map_err(|_| bad())?,
    })
}

/// A history sample as `admit.lua` writes it: "at waiting active admitted_total dropped_total".
fn parse_sample(line: &str) -> Result<RoomSample, QueueError> {
    let bad = || QueueError::Protocol(format!("history sample {line:?}"));
    let mut fields = line.split(' ');
    let mut next = || fields.next().ok_or_else(bad);
    Ok(RoomSample {
        at_unix_ms: next()?.parse().map_err(|_| bad())?,
        waiting: next()?.parse().map_err(|_| bad())?,
        active: next()?.parse().map_err(|_| bad())?,
        admitted_total: next()?.parse().map_err(|_| bad())?,
        dropped_total: next()?.parse().map_err(|_| bad())?,
    })
}
