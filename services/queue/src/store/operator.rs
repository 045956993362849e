//! The operator's side of the store: rooms' figures and history, settings and their change
//! log. Settings and the change-log entry are written by one script, so they never disagree.

use super::*;

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
        type Row = (String, u64, u64, f64, f64, u64, u64, u64, u8, f64, u32, u64);
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
        let rows: Vec<Row> = self.run("figures", &mut invocation).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let (key, waiting, active, admitted_rate, dropped_rate, back) =
                    (row.0, row.1, row.2, row.3, row.4, row.5);
                let (admitted_total, dropped_total, paused, rate, cap, version) =
                    (row.6, row.7, row.8, row.9, row.10, row.11);
                // Members this service did not write are skipped, as in the room set.
                let room = room_from_key(&key)?;
                let figures = RoomFigures {
                    room,
                    settings: RoomSettings {
                        paused: paused == 1,
                        admission_rate: rate,
                        active_cap: cap,
                    },
                    overridden: version > 0,
                    waiting,
                    active,
                    admitted_per_second: admitted_rate,
                    dropped_per_second: dropped_rate,
                    wait_at_back_seconds: back,
                    admitted_total,
                    dropped_total,
                };
                Some((figures, version))
            })
            .collect())
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
                        .arg(CHANGES_KEPT),
                )
                .await?;
            if written == 1 {
                tracing::info!(
                    actor = actor.as_str(),
                    room = ?room,
                    paused = ?patch.paused(),
                    admission_rate = ?patch.admission_rate(),
                    active_cap = ?patch.active_cap(),
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

/// A change log entry after its instant (`lua/common.lua`): room, the fields ('-' when left
/// alone), and the actor last, so it is the only part that may hold any printable character.
fn change_entry(room: Room, patch: &SettingsPatch, actor: &Actor) -> String {
    let field = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    format!(
        "{}\t{}\t{}\t{}\t{}",
        room_key(room),
        field(patch.paused().map(|paused| u8::from(paused).to_string())),
        field(patch.admission_rate().map(|rate| rate.to_string())),
        field(patch.active_cap().map(|cap| cap.to_string())),
        actor.as_str()
    )
}

fn parse_change(line: &str) -> Result<SettingChange, QueueError> {
    let bad = || QueueError::Protocol(format!("change log entry {line:?}"));
    let mut parts = line.splitn(6, '\t');
    let mut next = || parts.next().ok_or_else(bad);
    let at_unix_ms = next()?.parse().map_err(|_| bad())?;
    let room = stored_room(next()?)?;
    let (paused, rate, cap) = (next()?, next()?, next()?);
    let actor = Actor::new(next()?).map_err(|_| bad())?;
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
    Ok(SettingChange {
        at_unix_ms,
        actor,
        room,
        patch: SettingsPatch::new(paused, admission_rate, active_cap).map_err(|_| bad())?,
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
