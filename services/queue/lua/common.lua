-- Shared prelude, prepended to every script. Key layout (P = key prefix, Q = a room's id:
-- 'default' or the concert id; q in the code). The key and field names say "queue" for the
-- room: the layout predates the word. Every key of one room carries the room in a hash tag,
-- {q:Q}, so that all of them hash to one Redis Cluster slot; a room script declares the
-- room's key stem P:{q:Q} as KEYS[1] (the client routes the script by it) and touches keys
-- under that stem only. The global keys are apart, each in the slot its own name hashes to,
-- and no script touches one of them together with a room's keys: the store (Rust) updates
-- them around the room scripts.
--   P:queues              set     ids of the rooms that have waiters or active tokens
--   P:admitter            string  admission lease holder
--   P:settings            set     ids of the rooms that have operator settings
--   P:{q:Q}:tok:T         hash    user, queue (the room's id), state (W|A), until (ms, when A);
--                                 the token T names its room (domain::Token)
--   P:{q:Q}:user:U        string  the user's live token in room Q
--   P:{q:Q}:wait          zset    waiting tokens by arrival sequence (FIFO; ZRANK is O(log n))
--   P:{q:Q}:seen          zset    waiting tokens by last poll (ms): the heartbeat
--   P:{q:Q}:active        zset    active tokens by expiry (ms)
--   P:{q:Q}:idle          zset    active tokens that have made no reservation call yet, by
--                                 admission (ms): no-shows give their slot back after the idle
--                                 limit
--   P:{q:Q}:seq           counter arrival sequence (a pre-queue joiner's score is the counter
--                                 as it stood plus a random fraction: the draw, see issue.lua)
--   P:{q:Q}:listed        string  present (for a while, see listed()) when this room was last
--                                 known to be in P:queues; its absence tells the caller to add
--                                 the room there again
--   P:{q:Q}:outlook       hash    what the admitter applied at the room's last step: free,
--                                 held, sold (the concert's seats as last seen), share (of the
--                                 rate, or with a cap only of the cap, in effect), limit (what
--                                 holds the outflow below the ceiling), detail
--   P:{q:Q}:bucket        hash    admission token bucket (tokens, ts)
--   P:{q:Q}:flow          hash    decayed admission count (s, t, t0) for the measured outflow
--   P:{q:Q}:drops         hash    decayed count (s, t, t0) of waiters dropped for not polling
--   P:{q:Q}:totals        hash    admitted, dropped, idled: counts since the room's counters
--                                 began
--   P:{q:Q}:history       list    one sample a second, newest first, the last five minutes:
--                                 "at waiting active admitted_total dropped_total"
--   P:{q:Q}:settings      hash    an operator's settings: paused (0|1), rate, cap, prequeue_at,
--                                 opens_at (ms: the scheduled opening); an absent field means
--                                 the configured one (no schedule); v counts writes
--   P:{q:Q}:changes       list    the room's settings changes, newest first, the last 1,000:
--                                 "at<TAB>room<TAB>paused<TAB>rate<TAB>cap<TAB>prequeue_at<TAB>
--                                 opens_at<TAB>actor" ('-' for a field the change left alone,
--                                 '0' for an instant it cleared; entries written before the
--                                 schedule existed lack the two instants). The change log is
--                                 these lists merged, newest first.
-- User ids stay strings here: Lua numbers are doubles and would round large ids.
local R = KEYS[1]

local function qkey(s) return R .. ':' .. s end
local function tkey(t) return R .. ':tok:' .. t end
local function ukey(u) return R .. ':user:' .. u end

-- Milliseconds: the caller's clock when given (tests), else the Redis server's, so that every
-- replica shares one clock.
local function clock(arg)
  local n = tonumber(arg)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Deletes a token's hash, and the user's pointer if it still points at this token.
local function forget(t)
  local tk = tkey(t)
  local h = redis.call('HMGET', tk, 'user', 'queue')
  if h[1] and h[2] then
    local uk = ukey(h[1])
    if redis.call('GET', uk) == t then redis.call('DEL', uk) end
  end
  redis.call('DEL', tk)
end

-- Removes a token from every set of its room and forgets it.
local function drop(t)
  redis.call('ZREM', qkey('wait'), t)
  redis.call('ZREM', qkey('seen'), t)
  redis.call('ZREM', qkey('active'), t)
  redis.call('ZREM', qkey('idle'), t)
  forget(t)
end

-- The room's settings in effect: the operator's where set, else the configured ones.
-- Returns paused, rate/s, cap, whether an operator has set any of them, and the scheduled
-- instants (ms; nil when unset).
local function settings(configured_rate, configured_cap)
  local s = redis.call('HMGET', qkey('settings'), 'paused', 'rate', 'cap', 'prequeue_at',
    'opens_at')
  local rate = tonumber(s[2]) or configured_rate
  local cap = tonumber(s[3]) or configured_cap
  local overridden = (s[1] or s[2] or s[3] or s[4] or s[5]) and true or false
  return s[1] == '1', rate, cap, overridden, tonumber(s[4]), tonumber(s[5])
end

-- The room's phase at `now`: 'open' (no schedule, or past the opening), 'not-open' (before
-- the pre-queue opens: joining is refused) or 'prequeue' (joiners wait for the draw).
local function phase(now, prequeue_at, opens_at)
  if opens_at and now < opens_at then
    if prequeue_at and now < prequeue_at then return 'not-open' end
    return 'prequeue'
  end
  return 'open'
end

-- The concert's seats as the admitter last saw them: free and held (nil when never seen, as
-- for the default room). No free seat means sold out; held ones may come back.
local function seats()
  local s = redis.call('HMGET', qkey('outlook'), 'free', 'held')
  return tonumber(s[1]), tonumber(s[2])
end

-- Whether an active token has outlived the idle limit without a reservation call (a no-show).
local function idled(t, now, idle_ms)
  if idle_ms <= 0 then return false end
  local since = redis.call('ZSCORE', qkey('idle'), t)
  return since and tonumber(since) <= now - idle_ms or false
end

-- The rate (per second) an ETA assumes before any outflow has been measured: the admission
-- rate, or with the cap only, a full set of active users every active TTL (ms).
local function assumed_rate(rate, cap, ttl)
  if rate > 0 then return rate end
  return cap / math.max(1, ttl / 1000)
end

-- Events per second from an exponentially decayed count (hash s, t, t0) with time constant
-- `tau` ms, bias-corrected for a young measurement; nil until a second has been measured.
local function measured(key, now, tau)
  local f = redis.call('HMGET', key, 's', 't', 't0')
  local s, t, t0 = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
  if not (s and t and t0) or now - t0 < 1000 then return nil end
  local decayed = s * math.exp(-math.max(0, now - t) / tau)
  local norm = tau * (1 - math.exp(-(now - t0) / tau))
  return decayed / norm * 1000
end

-- Adds `n` events at `now` to the decayed count in `key` (started now if there is none).
local function count_events(key, n, now, tau)
  local f = redis.call('HMGET', key, 's', 't', 't0')
  local s, t, t0 = tonumber(f[1]) or 0, tonumber(f[2]) or now, tonumber(f[3]) or now
  s = s * math.exp(-math.max(0, now - t) / tau) + n
  redis.call('HSET', key, 's', s, 't', now, 't0', t0)
end

-- Seconds until a waiter at `position` is admitted, from the measured admission outflow;
-- the room's assumed rate stands in until a second has been measured.
-- An estimate, not a promise: a line that has all but stopped (the decayed outflow of a room
-- that admits nobody for hours) says a day at most, not centuries past what an integer holds.
local ETA_LIMIT_SECS = 86400
local function eta(position, now, fallback_rate, tau)
  local rate = fallback_rate
  local outflow = measured(qkey('flow'), now, tau)
  if outflow and outflow > 0 then rate = outflow end
  if rate <= 0 then return 0 end
  return math.min(math.ceil(position / rate), ETA_LIMIT_SECS)
end

-- Whether `now` falls in the same `period` (ms) as `last` (the token's previous poll; nil for
-- a token that has none): a write that was made on the first call of a period can be spared on
-- the others.
local function same_period(last, now, period)
  return last ~= nil and math.floor(last / period) == math.floor(now / period)
end

-- Keeps a waiting token's keys alive while it polls (TTL `ttl`, the grace plus a slack); the
-- sweeper drops it after the grace. The two writes are made on the token's first poll in each
-- half-slack period only (and always for a new token, `last` nil): a refresh follows the one
-- before within half the slack plus one grace, inside the TTL, so a waiter that polls within
-- the grace never outlives its keys.
local function touch_waiting(t, user, ttl, grace, now, last)
  if same_period(last, now, math.max(1, math.floor((ttl - grace) / 2))) then return end
  redis.call('PEXPIRE', tkey(t), ttl)
  redis.call('PEXPIRE', ukey(user), ttl)
end

-- Until when an active token that has made no reservation call may stay so (0: it has made
-- one, or there is no idle limit).
local function choose_by(t, idle_ms)
  if idle_ms <= 0 then return 0 end
  local since = redis.call('ZSCORE', qkey('idle'), t)
  if not since then return 0 end
  return tonumber(since) + idle_ms
end

-- Whether the caller must add the room to P:queues (1) or not (0): yes once per `ms` while
-- the room has someone in it, so a room the store failed to add (it adds after the script,
-- as the set is in another slot) is added on a later call. A waiter asks on its first poll in
-- each `ms` period only (`last`: its previous poll, nil for others, who always ask), so the
-- room is listed again within `ms` and one poll.
local function listed(ms, now, last)
  if same_period(last, now, ms) then return 0 end
  return redis.call('SET', qkey('listed'), '1', 'NX', 'PX', ms) and 1 or 0
end

-- The rate and cap in effect at a share of the ceiling: a share of the rate, or with a cap
-- only, of the cap (never below one active user).
local function in_effect(rate, cap, share)
  if rate > 0 then return rate * share, cap end
  if cap > 0 then return rate, math.max(1, math.floor(cap * share)) end
  return rate, cap
end
