-- ValidateToken: the gate of every reservation call. KEYS: the stem of the token's room.
-- ARGV: token, user, now, idle limit ms (0: none).
-- Returns {verdict (VALID|NOT_FOUND|EXPIRED|NOT_ADMITTED|WRONG_USER), active until ms, room id}.
-- A valid call is the user's first sign of life after admission: from then on the idle limit
-- no longer applies (a no-show is someone who never came, not someone between hold and pay).
local token, user = ARGV[1], ARGV[2]
local now = clock(ARGV[3])
local idle_ms = tonumber(ARGV[4])

local h = redis.call('HMGET', tkey(token), 'user', 'queue', 'state', 'until')
if not h[1] or not h[2] then return {'NOT_FOUND', 0, ''} end
if h[1] ~= user then return {'WRONG_USER', 0, h[2]} end
if h[3] ~= 'A' then return {'NOT_ADMITTED', 0, h[2]} end
local active_until = tonumber(h[4]) or 0
if active_until <= now or idled(token, now, idle_ms) then
  drop(token)
  return {'EXPIRED', 0, h[2]}
end
redis.call('ZREM', qkey('idle'), token)
return {'VALID', active_until, h[2]}
