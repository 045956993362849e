-- GetStatus (also the waiter's heartbeat). ARGV: P, token, now, grace ms, waiting key ttl ms,
-- configured rate/s, configured cap, active ttl ms, tau ms, idle limit ms (0: none).
-- Returns {outcome (OK|NOT_FOUND|EXPIRED), state, position, eta seconds, active until ms, user,
-- room id, paused (1 while waiting in a paused room), opens at ms, opens in ms, seats may
-- return (0|1), choose by ms (active, no reservation call yet; else 0)}; states as in
-- issue.lua (W, A, P, S).
local token = ARGV[2]
local now = clock(ARGV[3])
local grace, waiting_ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local configured_rate, configured_cap = tonumber(ARGV[6]), tonumber(ARGV[7])
local active_ttl, tau = tonumber(ARGV[8]), tonumber(ARGV[9])
local idle_ms = tonumber(ARGV[10])

local h = redis.call('HMGET', tkey(token), 'user', 'queue', 'state', 'until')
local user, q, state = h[1], h[2], h[3]
if not user or not q then return {'NOT_FOUND', '', 0, 0, 0, '', '', 0, 0, 0, 0, 0} end

if state == 'A' then
  local active_until = tonumber(h[4]) or 0
  if active_until <= now or idled(q, token, now, idle_ms) then
    drop(q, token)
    return {'EXPIRED', '', 0, 0, 0, user, q, 0, 0, 0, 0, 0}
  end
  return {'OK', 'A', 0, 0, active_until, user, q, 0, 0, 0, 0, choose_by(q, token, idle_ms)}
end

local seen = qkey(q, 'seen')
local last = redis.call('ZSCORE', seen, token)
local rank = redis.call('ZRANK', qkey(q, 'wait'), token)
if not last or not rank or now - tonumber(last) > grace then
  -- Stopped polling for longer than the grace: the place in line is gone.
  drop(q, token)
  return {'EXPIRED', '', 0, 0, 0, user, q, 0, 0, 0, 0, 0}
end
redis.call('ZADD', seen, now, token)
touch_waiting(q, token, user, waiting_ttl)
local paused, rate, cap, _, prequeue_at, opens_at = settings(q, configured_rate, configured_cap)
if phase(now, prequeue_at, opens_at) ~= 'open' then
  -- Before the draw nobody has a place to show (a token joined before the schedule was set
  -- has one, but is admitted no sooner than the rest).
  return {'OK', 'P', 0, 0, 0, user, q, 0, opens_at, opens_at - now, 0, 0}
end
local free, held = seats(q)
if free and free <= 0 then
  return {'OK', 'S', rank + 1, 0, 0, user, q, 0, 0, 0, (held or 0) > 0 and 1 or 0, 0}
end
local fallback_rate = assumed_rate(rate, cap, active_ttl)
return {'OK', 'W', rank + 1, eta(q, rank + 1, now, fallback_rate, tau), 0, user, q,
  paused and 1 or 0, 0, 0, 0, 0}
