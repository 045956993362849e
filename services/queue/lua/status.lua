-- GetStatus (also the waiter's heartbeat). ARGV: P, token, now, grace ms, waiting key ttl ms,
-- fallback rate/s, tau ms.
-- Returns {outcome (OK|NOT_FOUND|EXPIRED), state, position, eta seconds, active until ms, user, room id}.
local token = ARGV[2]
local now = clock(ARGV[3])
local grace, waiting_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local fallback_rate, tau = tonumber(ARGV[6]), tonumber(ARGV[7])

local h = redis.call('HMGET', tkey(token), 'user', 'queue', 'state', 'until')
local user, q, state = h[1], h[2], h[3]
if not user or not q then return {'NOT_FOUND', '', 0, 0, 0, '', ''} end

if state == 'A' then
  local active_until = tonumber(h[4]) or 0
  if active_until <= now then
    drop(q, token)
    return {'EXPIRED', '', 0, 0, 0, user, q}
  end
  return {'OK', 'A', 0, 0, active_until, user, q}
end

local seen = qkey(q, 'seen')
local last = redis.call('ZSCORE', seen, token)
local rank = redis.call('ZRANK', qkey(q, 'wait'), token)
if not last or not rank or now - tonumber(last) > grace then
  -- Stopped polling for longer than the grace: the place in line is gone.
  drop(q, token)
  return {'EXPIRED', '', 0, 0, 0, user, q}
end
redis.call('ZADD', seen, now, token)
touch_waiting(q, token, user, waiting_ttl)
return {'OK', 'W', rank + 1, eta(q, rank + 1, now, fallback_rate, tau), 0, user, q}
