-- IssueToken. KEYS: the room's stem. ARGV: room id, user, new token (of this room), now,
-- grace ms, waiting key ttl ms, configured rate/s, configured cap, active ttl ms, tau ms, draw
-- fraction (uniform in [0, 1)), idle limit ms (0: none), listed ms.
-- Returns {token, state, position, eta seconds, active until ms, paused (1 while waiting in a
-- paused room), opens at ms, opens in ms, seats may return (0|1), choose by ms (active, no
-- reservation call yet; else 0), list (1: add the room to P:queues)}; state is W (waiting), A
-- (active), P (pre-queue: no position until the draw), S (sold out: the place is kept) or N
-- (not open: nothing written; opens at is when the pre-queue opens).
--
-- The draw: a pre-queue joiner's score is the arrival counter as it stood (nobody advances it
-- before the opening) plus a uniformly random fraction, and later joiners take the counter's
-- next values. So at the opening the pre-queue already stands in uniformly random order, after
-- whoever waited before the schedule was set and ahead of everyone who joins later; nothing has
-- to be moved at that instant, and arriving earlier within the pre-queue gives no advantage.
-- The fraction stays in Redis: nobody learns their place before the opening, and asking again
-- returns the same token, so a place cannot be re-rolled.
local q, user, fresh = ARGV[1], ARGV[2], ARGV[3]
local now = clock(ARGV[4])
local grace, waiting_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local paused, rate, cap, _, prequeue_at, opens_at = settings(tonumber(ARGV[7]), tonumber(ARGV[8]))
local fallback_rate, tau = assumed_rate(rate, cap, tonumber(ARGV[9])), tonumber(ARGV[10])
local fraction, idle_ms = tonumber(ARGV[11]), tonumber(ARGV[12])
local listed_ms = tonumber(ARGV[13])
local paused_flag = paused and 1 or 0
local wait, seen = qkey('wait'), qkey('seen')
local room_phase = phase(now, prequeue_at, opens_at)

-- A waiting token's answer: the pre-queue's, the sold-out one, or its place and wait; `last`
-- is its previous poll (nil for a new token).
local function waiting_answer(t, rank, last)
  if room_phase == 'prequeue' then
    return {t, 'P', 0, 0, 0, 0, opens_at, opens_at - now, 0, 0, listed(listed_ms, now, last)}
  end
  local free, held = seats()
  if free and free <= 0 then
    return {t, 'S', rank + 1, 0, 0, 0, 0, 0, (held or 0) > 0 and 1 or 0, 0, listed(listed_ms, now, last)}
  end
  return {t, 'W', rank + 1, eta(rank + 1, now, fallback_rate, tau), 0, paused_flag, 0, 0, 0, 0,
    listed(listed_ms, now, last)}
end

local existing = redis.call('GET', ukey(user))
if existing then
  local h = redis.call('HMGET', tkey(existing), 'state', 'until')
  if h[1] == 'A' and tonumber(h[2]) > now and not idled(existing, now, idle_ms) then
    return {existing, 'A', 0, 0, tonumber(h[2]), 0, 0, 0, 0, choose_by(existing, idle_ms),
      listed(listed_ms, now, nil)}
  end
  if h[1] == 'W' then
    local last = tonumber(redis.call('ZSCORE', seen, existing))
    local rank = redis.call('ZRANK', wait, existing)
    if last and rank and now - last <= grace then
      -- Asking again is a poll: it keeps the place in line.
      redis.call('ZADD', seen, now, existing)
      touch_waiting(existing, user, waiting_ttl, grace, now, last)
      return waiting_answer(existing, rank, last)
    end
  end
  -- Expired, idled out or dropped: the user starts again at the back.
  drop(existing)
end

if room_phase == 'not-open' then
  return {'', 'N', 0, 0, 0, 0, prequeue_at, prequeue_at - now, 0, 0, 0}
end

local score
if room_phase == 'prequeue' then
  score = (tonumber(redis.call('GET', qkey('seq'))) or 0) + fraction
else
  score = redis.call('INCR', qkey('seq'))
end
redis.call('HSET', tkey(fresh), 'user', user, 'queue', q, 'state', 'W')
redis.call('PEXPIRE', tkey(fresh), waiting_ttl)
redis.call('ZADD', wait, score, fresh)
redis.call('ZADD', seen, now, fresh)
-- The user's pointer lives as long as the token's keys (see touch_waiting).
redis.call('SET', ukey(user), fresh, 'PX', waiting_ttl)
if room_phase == 'prequeue' then return waiting_answer(fresh, 0, nil) end
return waiting_answer(fresh, redis.call('ZRANK', wait, fresh), nil)
