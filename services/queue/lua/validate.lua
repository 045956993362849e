-- ValidateToken. ARGV: P, token, user, now.
-- Returns {verdict (VALID|NOT_FOUND|EXPIRED|NOT_ADMITTED|WRONG_USER), active until ms, room id}.
local token, user = ARGV[2], ARGV[3]
local now = clock(ARGV[4])

local h = redis.call('HMGET', tkey(token), 'user', 'queue', 'state', 'until')
if not h[1] or not h[2] then return {'NOT_FOUND', 0, ''} end
if h[1] ~= user then return {'WRONG_USER', 0, h[2]} end
if h[3] ~= 'A' then return {'NOT_ADMITTED', 0, h[2]} end
local active_until = tonumber(h[4]) or 0
if active_until <= now then
  drop(h[2], token)
  return {'EXPIRED', 0, h[2]}
end
return {'VALID', active_until, h[2]}
