//! The room sets: which rooms have waiters or active tokens (what the admitter steps), and
//! which have settings; a room is listed when its scripts say so and unlisted once emptied.

use super::{LISTED_FOR, QueueStore, millis};
use crate::{
    domain::Room,
    error::QueueError,
    store::encoding::{room_from_key, room_key},
};

impl QueueStore {
    /// Rooms that have waiters or active tokens, all at once (the admitter pages through them
    /// with [`QueueStore::scan_rooms`] instead).
    pub async fn rooms(&self) -> Result<Vec<Room>, QueueError> {
        self.members(self.keys.room_set()).await
    }

    /// The rooms in the set at `key` (members this service did not write are skipped).
    pub(super) async fn members(&self, key: String) -> Result<Vec<Room>, QueueError> {
        let mut command = redis::cmd("SMEMBERS");
        command.arg(key);
        let members: Vec<String> = self.query(&command).await?;
        Ok(members.iter().filter_map(|m| room_from_key(m)).collect())
    }

    /// Adds `room` to the room set when a room script said so (`list` = 1). A failure is only
    /// logged: the script says so again once [`LISTED_FOR`] has passed.
    pub(super) async fn listed(&self, room: Room, list: u8) {
        if list != 1 {
            return;
        }
        if let Err(error) = self.add_to_set(self.keys.room_set(), room).await {
            tracing::warn!(%error, ?room, "could not add the room to the room set; a later call will");
        }
    }

    /// `SADD`s `room` to the set at `key`.
    pub(super) async fn add_to_set(&self, key: String, room: Room) -> Result<(), QueueError> {
        let mut command = redis::cmd("SADD");
        command.arg(key).arg(room_key(room));
        self.query::<i64>(&command).await.map(drop)
    }

    /// Takes an emptied room out of the room set, then puts it back if someone joined between
    /// the admission step that found it empty and the removal (their join saw the room still
    /// listed, so it did not add it).
    pub(super) async fn unlist(&self, room: Room) -> Result<(), QueueError> {
        let mut command = redis::cmd("SREM");
        command.arg(self.keys.room_set()).arg(room_key(room));
        self.query::<i64>(&command).await?;
        let rejoined: i64 = self
            .run(
                "relist",
                self.scripts
                    .relist
                    .key(self.keys.room(room))
                    .arg(millis(LISTED_FOR)),
            )
            .await?;
        if rejoined == 1 {
            self.add_to_set(self.keys.room_set(), room).await?;
        }
        Ok(())
    }

    /// One page of the room set: `SSCAN` from `cursor` with `count` as the size hint. Returns
    /// the next cursor (0 when the pass is complete) and the rooms of this page; members this
    /// service did not write are skipped. A room present for a whole pass is returned at least
    /// once in it (possibly twice, if the set is rehashed meanwhile).
    pub async fn scan_rooms(
        &self,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Room>), QueueError> {
        let mut command = redis::cmd("SSCAN");
        command
            .arg(self.keys.room_set())
            .arg(cursor)
            .arg("COUNT")
            .arg(count.max(1));
        let (next, members): (u64, Vec<String>) = self.query(&command).await?;
        Ok((
            next,
            members.iter().filter_map(|m| room_from_key(m)).collect(),
        ))
    }
}
