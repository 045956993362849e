-- Adopts a room's operator settings written before keys carried the room's hash tag (the
-- store read them from P:q:Q:settings): writes them to the room's settings hash unless
-- that already holds settings written since. KEYS: the room's stem. ARGV: field, value, ...
-- Returns 1 when written, 0 when the room already had settings.
local k = qkey('settings')
if redis.call('EXISTS', k) == 1 or #ARGV < 2 then return 0 end
redis.call('HSET', k, unpack(ARGV))
return 1
