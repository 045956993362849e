-- UpdateRoomSettings: writes an operator's settings and logs the change, together or not at
-- all. ARGV: P, room id, now, expected version (the settings hash's v as the caller read it,
-- '0' for none), paused ('' = unchanged, '0' or '1'), rate ('' = unchanged), cap ('' =
-- unchanged), the change's entry after its instant ("room<TAB>paused<TAB>rate<TAB>cap<TAB>
-- prequeue_at<TAB>opens_at<TAB>actor"), changes kept, prequeue_at and opens_at ('' =
-- unchanged, '0' = cleared, else ms).
-- The caller checked the merged settings against what it read; if they changed meanwhile
-- (another operator), nothing is written and the caller reads and checks again.
-- Returns 1 when written, 0 when the settings changed since the caller read them.
local q = ARGV[2]
local now = clock(ARGV[3])
local k = qkey(q, 'settings')
if (redis.call('HGET', k, 'v') or '0') ~= ARGV[4] then return 0 end
for i, field in ipairs({'paused', 'rate', 'cap'}) do
  local value = ARGV[4 + i]
  if value ~= '' then redis.call('HSET', k, field, value) end
end
for i, field in ipairs({'prequeue_at', 'opens_at'}) do
  local value = ARGV[9 + i]
  if value == '0' then
    redis.call('HDEL', k, field)
  elseif value ~= '' then
    redis.call('HSET', k, field, value)
  end
end
redis.call('HINCRBY', k, 'v', 1)
redis.call('SADD', P .. ':settings', q)
local changes = P .. ':changes'
redis.call('LPUSH', changes, string.format('%.0f', now) .. '\t' .. ARGV[8])
redis.call('LTRIM', changes, 0, tonumber(ARGV[9]) - 1)
return 1
