//! Which waiting room admits to a concert: its own, or the shared default room. Asked of the
//! catalog and kept for a minute (rooms rarely change, and issue-token is the hottest route);
//! unknown concerts are not kept, so made-up ids cannot fill the map.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use ticketing_proto::catalog::v1 as catalog;

use crate::{backends::Backends, error::ApiError};

/// How long a concert's room is believed without asking again.
const TTL: Duration = Duration::from_secs(60);
/// Concerts remembered at most; past it the map starts over.
const MAX_CONCERTS: usize = 10_000;

/// A waiting room, as the queue names it: a concert's own (`Some(concert id)`), or the
/// shared default room (`None`).
pub type Room = Option<i64>;

#[derive(Clone, Default)]
pub struct Rooms {
    known: Arc<RwLock<HashMap<i64, (Room, Instant)>>>,
}

impl Rooms {
    /// The room of `concert_id`; 404 `CONCERT_NOT_FOUND` for a concert that does not exist.
    pub async fn of_concert(&self, backends: &Backends, concert_id: i64) -> Result<Room, ApiError> {
        if let Some(room) = self.cached(concert_id) {
            return Ok(room);
        }
        let concert = backends
            .get_concert(catalog::GetConcertRequest { concert_id })
            .await?;
        let room = (!concert.shared_room).then_some(concert.id);
        let mut known = self
            .known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.len() >= MAX_CONCERTS {
            known.clear();
        }
        known.insert(concert_id, (room, Instant::now()));
        Ok(room)
    }

    fn cached(&self, concert_id: i64) -> Option<Room> {
        let known = self
            .known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        known
            .get(&concert_id)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(room, _)| *room)
    }
}
