-- GetStatus (also the waiter's heartbeat). KEYS: the stem of the token's room. ARGV: token,
-- now, grace ms, waiting key ttl ms, configured rate/s, configured cap, active ttl ms, tau ms,
-- idle limit ms (0: none), listed ms.
-- Returns {outcome (OK|NOT_FOUND|EXPIRED), state, position, eta seconds, active until ms,
-- paused (1 while waiting in a paused room), opens at ms, opens in ms, seats may return
-- (0|1), choose by ms (active, no reservation call yet; else 0), list (1: add the room to
-- P:queues), user}: issue.lua's answer with the user after it; states as in issue.lua (W, A,
-- P, S). The room is the token's own.
local token = ARGV[1]
local now = clock(ARGV[2])
local grace, waiting_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local configured_rate, configured_cap = tonumber(ARGV[5]), tonumber(ARGV[6])
local active_ttl, tau = tonumber(ARGV[7]), tonumber(ARGV[8])
local idle_ms, listed_ms = tonumber(ARGV[9]), tonumber(ARGV[10])

local h = redis.call('HMGET', tkey(token), 'user', 'queue', 'state', 'until')
local user, q, state = h[1], h[2], h[3]
if not user or not q then return {'NOT_FOUND', '', 0, 0, 0, 0, 0, 0, 0, 0, 0, ''} end

if state == 'A' then
  local active_until = tonumber(h[4]) or 0
  if active_until <= now or idled(token, now, idle_ms) then
    drop(token)
    return {'EXPIRED', '', 0, 0, 0, 0, 0, 0, 0, 0, 0, user}
  end
  return {'OK', 'A', 0, 0, active_until, 0, 0, 0, 0, choose_by(token, idle_ms),
    listed(listed_ms, now, nil), user}
end

local seen = qkey('seen')
local last = tonumber(redis.call('ZSCORE', seen, token))
local rank = redis.call('ZRANK', qkey('wait'), token)
if not last or not rank or now - last > grace then
  -- Stopped polling for longer than the grace: the place in line is gone.
  drop(token)
  return {'EXPIRED', '', 0, 0, 0, 0, 0, 0, 0, 0, 0, user}
end
redis.call('ZADD', seen, now, token)
touch_waiting(token, user, waiting_ttl, grace, now, last)
local paused, rate, cap, _, prequeue_at, opens_at = settings(configured_rate, configured_cap)
if phase(now, prequeue_at, opens_at) ~= 'open' then
  -- Before the draw nobody has a place to show (a token joined before the schedule was set
  -- has one, but is admitted no sooner than the rest).
  return {'OK', 'P', 0, 0, 0, 0, opens_at, opens_at - now, 0, 0, listed(listed_ms, now, last), user}
end
local free, held = seats()
if free and free <= 0 then
  return {'OK', 'S', rank + 1, 0, 0, 0, 0, 0, (held or 0) > 0 and 1 or 0, 0,
    listed(listed_ms, now, last), user}
end
local fallback_rate = assumed_rate(rate, cap, active_ttl)
return {'OK', 'W', rank + 1, eta(rank + 1, now, fallback_rate, tau), 0,
  paused and 1 or 0, 0, 0, 0, 0, listed(listed_ms, now, last), user}
