//! What outlives the upgrade to hash-tagged keys (every key of a room in its slot). Operator
//! settings are kept: the admitter that leads first after the upgrade moves each room's
//! settings from the earlier key `P:q:<room>:settings` to the room's own slot, before its
//! first admission step. The earlier change log `P:changes` stays readable as it is (the
//! change log merges it in). Waiting lines and tokens are not carried over: an earlier token
//! is a version-4 UUID with no room in it, so its next call is TOKEN_NOT_FOUND and its holder
//! joins again (docs/deploy.md).

use super::*;

impl QueueStore {
    /// Moves the earlier settings of every room listed with settings to the room's slot (where
    /// the room has none written since), and deletes the earlier key. Returns how many rooms'
    /// settings moved; nothing to do is a few reads.
    pub async fn adopt_earlier_settings(&self) -> Result<usize, QueueError> {
        let mut adopted = 0;
        for room in self.members(self.keys.settings_set()).await? {
            let earlier = self.keys.earlier_settings(room);
            let mut command = redis::cmd("HGETALL");
            command.arg(&earlier);
            let fields: Vec<(String, String)> = self.query(&command).await?;
            if fields.is_empty() {
                continue;
            }
            let mut invocation = self.scripts.adopt.key(self.keys.room(room));
            for (field, value) in &fields {
                invocation.arg(field).arg(value);
            }
            let written: i64 = self.run("adopt", &mut invocation).await?;
            let mut command = redis::cmd("DEL");
            command.arg(&earlier);
            self.query::<i64>(&command).await?;
            if written == 1 {
                tracing::info!(?room, "room settings moved to the room's own slot");
                adopted += 1;
            }
        }
        Ok(adopted)
    }
}
