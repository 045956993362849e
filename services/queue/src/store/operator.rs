//! The operator's side of the store: rooms' figures and history, settings and their change
//! log. Settings and the change-log entry are written by one script, so they never disagree.

use super::*;
use crate::{
    outflow::{InEffect, OutflowLimit},
    schedule::{RoomPhase, Schedule, SchedulePatch},
};

impl QueueStore {
    /// The figures and settings in effect of the default room, of `requested` and of every
    /// room that has waiters, active tokens or operator settings: the default room first, then
    /// the concerts' rooms by id.
    #[tracing::instrument(name = "redis figures.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn list_rooms(&self, requested: &[Room]) -> Result<Vec<RoomFigures>, QueueError> {
        let mut rooms = vec![Room::Default];
        rooms.extend_from_slice(requested);
        let mut figures: Vec<RoomFigures> = self
            .figures(&rooms, Listing::AndEveryKnownRoom)
            .await?
            .into_iter()
            .map(|(figures, _)| figures)
            .collect();
        // `None` (the default room) sorts first.
        figures.sort_by_key(|figures| figures.room.concert_id());
        Ok(figures)
    }

    /// One room's figures and settings in effect.
    #[tracing::instrument(name = "redis figures.lua", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    pub async fn room_figures(&self, room: Room) -> Result<RoomFigures, QueueError> {
        Ok(self.one_room(room).await?.0)
    }

    /// One room's figures, and the version of its operator's settings (0: none yet).
    async fn one_room(&self, room: Room) -> Result<(RoomFigures, u64), QueueError> {
        self.figures(&[room], Listing::Only)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| QueueError::Protocol("figures.lua answered no room".into()))
    }

    async fn figures(
        &self,
        rooms: &[Room],
        listing: Listing,
    ) -> Result<Vec<(RoomFigures, u64)>, QueueError> {
        type Base = (String, u64, u64, f64, f64, u64, u64, u64, u8, f64, u32, u64);
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
        let mut invocation = self.scripts.figures.arg(&*self.prefix);
        invocation
            .arg(self.clock_arg())
            .arg(self.policy.admission_rate)
            .arg(self.policy.active_cap)
            .arg(millis(self.policy.active_ttl))
            .arg(OUTFLOW_TAU_MS)
            .arg(match listing {
                Listing::Only => "only",
                Listing::AndEveryKnownRoom => "listed",
            });
        for room in rooms {
            invocation.arg(room_key(*room));
        }
        let rows: Vec<(Base, Outflow)> = self.run("figures", &mut invocation).await?;
        rows.into_iter()
            .filter_map(|(base, outflow)| {
                // Members this service did not write are skipped, as in the room set.
                let room = room_from_key(&base.0)?;
                Some(room_figures(room, base, outflow))
            })
            .collect()
    }

    /// The room's samples of the last five minutes, oldest first.
    pub async fn room_history(&self, room: Room) -> Result<Vec<RoomSample>, QueueError> {
        let mut command = redis::cmd("LRANGE");
        command
            .arg(format!("{}:q:{}:history", self.prefix, room_key(room)))
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
            let written: i64 = self
                .run(
                    "settings",
                    self.scripts
                        .settings
                        .arg(&*self.prefix)
                        .arg(room_key(room))
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

    /// The `limit` most recent settings changes, newest first.
    pub async fn setting_changes(&self, limit: usize) -> Result<Vec<SettingChange>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut command = redis::cmd("LRANGE");
        command
            .arg(format!("{}:changes", self.prefix))
            .arg(0)
            .arg(limit - 1);
        let lines: Vec<String> = self.query(&command).await?;
        lines.iter().map(|line| parse_change(line)).collect()
    }
}

/// Which rooms `figures.lua` reports.
#[derive(Clone, Copy)]
enum Listing {
    /// The given rooms only.
    Only,
    /// The given rooms and every room with waiters, active tokens or operator settings.
    AndEveryKnownRoom,
}

/// One row of `figures.lua` as the console's figures.
fn room_figures(
    room: Room,
    base: (String, u64, u64, f64, f64, u64, u64, u64, u8, f64, u32, u64),
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
    let (_, waiting, active, admitted_rate, dropped_rate, back) =
        (base.0, base.1, base.2, base.3, base.4, base.5);
    let (admitted_total, dropped_total, paused, rate, cap, version) =
        (base.6, base.7, base.8, base.9, base.10, base.11);
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
