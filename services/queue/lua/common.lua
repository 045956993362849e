-- Shared prelude, prepended to every script. Key layout (P = key prefix, Q = a room's id:
-- 'default' or the concert id; q in the code). The key and field names say "queue" for the
-- room: the layout predates the word and stays as it is, so stored data stays valid.
--   P:queues              set     ids of the rooms that have waiters or active tokens
--   P:admitter            string  admission lease holder
--   P:tok:T               hash    user, queue (the room's id), state (W|A), until (ms, when A)
--   P:q:Q:user:U          string  the user's live token in room Q
--   P:q:Q:wait            zset    waiting tokens by arrival sequence (FIFO; ZRANK is O(log n))
--   P:q:Q:seen            zset    waiting tokens by last poll (ms): the heartbeat
--   P:q:Q:active          zset    active tokens by expiry (ms)
--   P:q:Q:seq             counter arrival sequence
--   P:q:Q:bucket          hash    admission token bucket (tokens, ts)
--   P:q:Q:flow            hash    decayed admission count (s, t, t0) for the measured outflow
-- User ids stay strings here: Lua numbers are doubles and would round large ids.
local P = ARGV[1]

local function tkey(t) return P .. ':tok:' .. t end
local function qkey(q, s) return P .. ':q:' .. q .. ':' .. s end
local function ukey(q, u) return P .. ':q:' .. q .. ':user:' .. u end

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
    local uk = ukey(h[2], h[1])
    if redis.call('GET', uk) == t then redis.call('DEL', uk) end
  end
  redis.call('DEL', tk)
end

-- Removes a token from every set of its room and forgets it.
local function drop(q, t)
  redis.call('ZREM', qkey(q, 'wait'), t)
  redis.call('ZREM', qkey(q, 'seen'), t)
  redis.call('ZREM', qkey(q, 'active'), t)
  forget(t)
end

-- Seconds until a waiter at `position` is admitted, from the measured admission outflow
-- (an exponentially decayed count with time constant `tau` ms, bias-corrected for a young
-- measurement); the configured rate stands in until a second has been measured.
local function eta(q, position, now, fallback_rate, tau)
  local f = redis.call('HMGET', qkey(q, 'flow'), 's', 't', 't0')
  local rate = fallback_rate
  local s, t, t0 = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
  if s and t and t0 and now - t0 >= 1000 then
    local decayed = s * math.exp(-(now - t) / tau)
    local norm = tau * (1 - math.exp(-(now - t0) / tau))
    local measured = decayed / norm * 1000
    if measured > 0 then rate = measured end
  end
  if rate <= 0 then return 0 end
  return math.ceil(position / rate)
end

-- Keeps a waiting token's keys alive while it polls; the sweeper drops it after the grace.
local function touch_waiting(q, t, user, ttl)
  redis.call('PEXPIRE', tkey(t), ttl)
  redis.call('PEXPIRE', ukey(q, user), ttl)
end
