//! How rooms and users are written in Redis keys and values. The room layout predates the word
//! "room" and stays, so stored data stays valid.

use crate::{
    domain::{Room, UserId},
    error::QueueError,
};

pub(super) fn stored_user(raw: &str) -> Result<UserId, QueueError> {
    raw.parse()
        .ok()
        .and_then(|id| UserId::new(id).ok())
        .ok_or_else(|| QueueError::Protocol(format!("stored user {raw:?}")))
}

/// A room as its id appears in Redis keys and in a token's `queue` field: `default`, or the
/// concert id. This layout predates the word "room" and stays, so stored data stays valid.
pub(super) fn room_key(room: Room) -> String {
    match room {
        Room::Default => "default".to_owned(),
        Room::Concert(id) => id.to_string(),
    }
}

/// Parses the key form back; `None` for anything this service did not write.
pub(super) fn room_from_key(key: &str) -> Option<Room> {
    match key {
        "default" => Some(Room::Default),
        other => other.parse().ok().filter(|id| *id > 0).map(Room::Concert),
    }
}

pub(super) fn stored_room(raw: &str) -> Result<Room, QueueError> {
    room_from_key(raw).ok_or_else(|| QueueError::Protocol(format!("stored room {raw:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_keys_keep_the_stored_layout_and_round_trip() {
        // Existing data in Redis uses exactly these forms.
        assert_eq!(room_key(Room::Default), "default");
        assert_eq!(room_key(Room::Concert(42)), "42");
        for room in [Room::Default, Room::Concert(42)] {
            assert_eq!(room_from_key(&room_key(room)), Some(room));
        }
        for foreign in ["-1", "0", "", "Default", "concert:42"] {
            assert_eq!(room_from_key(foreign), None, "{foreign:?}");
        }
    }
}
