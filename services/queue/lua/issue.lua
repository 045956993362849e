-- IssueToken. ARGV: P, room id, user, new token, now, grace ms, waiting key ttl ms,
-- configured rate/s, configured cap, active ttl ms, tau ms.
-- Returns {token, state, position, eta seconds, active until ms, paused (1 while waiting in a
-- paused room)}.
local q, user, fresh = ARGV[2], ARGV[3], ARGV[4]
local now = clock(ARGV[5])
local grace, waiting_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local paused, rate, cap = settings(q, tonumber(ARGV[8]), tonumber(ARGV[9]))
local fallback_rate, tau = assumed_rate(rate, cap, tonumber(ARGV[10])), tonumber(ARGV[11])
local paused_flag = paused and 1 or 0
local wait, seen = qkey(q, 'wait'), qkey(q, 'seen')

local existing = redis.call('GET', ukey(q, user))
if existing then
  local h = redis.call('HMGET', tkey(existing), 'state', 'until')
  if h[1] == 'A' and tonumber(h[2]) > now then
    return {existing, 'A', 0, 0, tonumber(h[2]), 0}
  end
  if h[1] == 'W' then
    local last = redis.call('ZSCORE', seen, existing)
    local rank = redis.call('ZRANK', wait, existing)
    if last and rank and now - tonumber(last) <= grace then
      -- Asking again is a poll: it keeps the place in line.
      redis.call('ZADD', seen, now, existing)
      touch_waiting(q, existing, user, waiting_ttl)
      return {existing, 'W', rank + 1, eta(q, rank + 1, now, fallback_rate, tau), 0, paused_flag}
    end
  end
  -- Expired or dropped: the user starts again at the back.
  drop(q, existing)
end

local seq = redis.call('INCR', qkey(q, 'seq'))
redis.call('HSET', tkey(fresh), 'user', user, 'queue', q, 'state', 'W')
redis.call('ZADD', wait, seq, fresh)
redis.call('ZADD', seen, now, fresh)
redis.call('SET', ukey(q, user), fresh)
touch_waiting(q, fresh, user, waiting_ttl)
redis.call('SADD', P .. ':queues', q)
local position = redis.call('ZRANK', wait, fresh) + 1
return {fresh, 'W', position, eta(q, position, now, fallback_rate, tau), 0, paused_flag}
