-- UpdateRoomSettings: writes an operator's settings and logs the change in the room's change
-- log, together or not at all (the store has added the room to P:settings before). KEYS: the
-- room's stem. ARGV: now, expected version (the settings hash's v as the caller read it, '0'
-- for none), paused ('' = unchanged, '0' or '1'), rate ('' = unchanged), cap ('' =
-- unchanged), the change's entry after its instant ("room<TAB>paused<TAB>rate<TAB>cap<TAB>
-- prequeue_at<TAB>opens_at<TAB>actor"), changes kept, prequeue_at and opens_at ('' =
-- unchanged, '0' = cleared, else ms).
-- The caller checked the merged settings against what it read; if they changed meanwhile
-- (another operator), nothing is written and the caller reads and checks again.
-- Returns 1 when written, 0 when the settings changed since the caller read them.
local now = clock(ARGV[1])
local k = qkey('settings')
if (redis.call('HGET', k, 'v') or '0') ~= ARGV[2] then return 0 end
for i, field in ipairs({'paused', 'rate', 'cap'}) do
  local value = ARGV[2 + i]
  if value ~= '' then redis.call('HSET', k, field, value) end
end
for i, field in ipairs({'prequeue_at', 'opens_at'}) do
  local value = ARGV[7 + i]
  if value == '0' then
    redis.call('HDEL', k, field)
  elseif value ~= '' then
    redis.call('HSET', k, field, value)
  end
end
redis.call('HINCRBY', k, 'v', 1)
local changes = qkey('changes')
redis.call('LPUSH', changes, string.format('%.0f', now) .. '\t' .. ARGV[6])
redis.call('LTRIM', changes, 0, tonumber(ARGV[7]) - 1)
return 1
