//! The key layout as the store (Rust) names keys; `lua/common.lua` documents it and builds the
//! same names from a room's stem. Every key of a room starts with its stem `P:{q:<room>}`,
//! whose hash tag puts them all in one Redis Cluster slot; the global keys have no tag.

use std::sync::Arc;

use super::encoding::room_key;
use crate::domain::Room;

/// Key names under one prefix (`QUEUE_KEY_PREFIX`).
#[derive(Clone)]
pub(super) struct Keys {
    prefix: Arc<str>,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// A room's stem, `P:{q:<room>}`: a room script's KEYS[1], by which the client routes it
    /// to the room's slot.
    pub(super) fn room(&self, room: Room) -> String {
        format!("{}:{{q:{}}}", self.prefix, room_key(room))
    }

    /// One of a room's keys, `P:{q:<room>}:<name>`.
    pub(super) fn in_room(&self, room: Room, name: &str) -> String {
        format!("{}:{name}", self.room(room))
    }

    /// The set of rooms that have waiters or active tokens.
    pub(super) fn room_set(&self) -> String {
        format!("{}:queues", self.prefix)
    }

    /// The set of rooms that have operator settings.
    pub(super) fn settings_set(&self) -> String {
        format!("{}:settings", self.prefix)
    }

    /// The admission lease.
    pub(super) fn lease(&self) -> String {
        format!("{}:admitter", self.prefix)
    }

    /// A room's settings as written before keys carried the room's hash tag.
    pub(super) fn earlier_settings(&self, room: Room) -> String {
        format!("{}:q:{}:settings", self.prefix, room_key(room))
    }

    /// The change log as written before each room kept its own (still read).
    pub(super) fn earlier_change_log(&self) -> String {
        format!("{}:changes", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_keys_carry_the_room_in_their_hash_tag_and_the_global_keys_none() {
        let keys = Keys::new("queue");
        assert_eq!(keys.room(Room::Default), "queue:{q:default}");
        assert_eq!(keys.in_room(Room::Concert(42), "wait"), "queue:{q:42}:wait");
        for global in [keys.room_set(), keys.settings_set(), keys.lease()] {
            assert!(!global.contains('{'), "{global}");
        }
    }
}
