-- One admission step for one room. ARGV: P, room id, now, configured rate/s (0 = no rate
-- limit), configured cap (0 = no cap), grace ms, active ttl ms, max batch, tau ms, history
-- samples kept.
-- Expires active tokens, drops waiters who stopped polling, then moves waiters from the head
-- to ACTIVE as the token bucket and the active cap allow; each of the three handles at most
-- max batch tokens. The room's settings are read here at every step (an operator's rate, cap
-- or pause override the configured ones), and the bucket lives here, in Redis, so the total
-- rate is the one in effect however many admitters run and whichever holds the lease.
-- Counts the admissions and drops, and samples the room once a second for its history.
-- Returns {admitted, expired, dropped, waiting, active}.
local q = ARGV[2]
local now = clock(ARGV[3])
local paused, rate, cap = settings(q, tonumber(ARGV[4]), tonumber(ARGV[5]))
local grace, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local max_batch, tau = tonumber(ARGV[8]), tonumber(ARGV[9])
local history_len = tonumber(ARGV[10])
local wait, seen, active = qkey(q, 'wait'), qkey(q, 'seen'), qkey(q, 'active')
local totals = qkey(q, 'totals')

local expired = redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, max_batch)
for _, t in ipairs(expired) do drop(q, t) end

local stale = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. (now - grace), 'LIMIT', 0, max_batch)
for _, t in ipairs(stale) do drop(q, t) end
if #stale > 0 then
  redis.call('HINCRBY', totals, 'dropped', #stale)
  count_events(qkey(q, 'drops'), #stale, now, tau)
end

-- A full batch of stale waiters may have left more of them, at the head among others: admit
-- nobody until the sweep is complete, so a silent waiter is never admitted. (The admitter runs
-- this step again at once when a batch comes back full.) A paused room admits nobody.
local n = 0
if not paused and #stale < max_batch then
  n = math.min(redis.call('ZCARD', wait), max_batch)
  if cap > 0 then n = math.min(n, cap - redis.call('ZCARD', active)) end
end
if rate > 0 then
  local bucket = qkey(q, 'bucket')
  local b = redis.call('HMGET', bucket, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or 0
  local ts = tonumber(b[2]) or now
  -- At most one second's worth accumulates while nobody waits; none while paused, so a
  -- resume starts from an empty bucket rather than with a burst.
  tokens = math.min(math.max(1, rate), tokens + math.max(0, now - ts) * rate / 1000)
  if paused then tokens = 0 end
  n = math.min(n, math.floor(tokens))
  if n < 0 then n = 0 end
  redis.call('HSET', bucket, 'tokens', tokens - n, 'ts', now)
end
if n < 0 then n = 0 end

if n > 0 then
  local head = redis.call('ZPOPMIN', wait, n)
  local active_until = now + ttl
  for i = 1, #head, 2 do
    local t = head[i]
    redis.call('ZREM', seen, t)
    local tk = tkey(t)
    redis.call('HSET', tk, 'state', 'A', 'until', active_until)
    redis.call('PEXPIRE', tk, ttl)
    local user = redis.call('HGET', tk, 'user')
    if user then redis.call('PEXPIRE', ukey(q, user), ttl) end
    redis.call('ZADD', active, active_until, t)
  end
  redis.call('HINCRBY', totals, 'admitted', n)
end

local waiting = redis.call('ZCARD', wait)
local flow = qkey(q, 'flow')
if paused then
  -- Paused time is no admission time: the measurement stays as it stood (both its instants
  -- move on), so ETAs assume the room resumes at the pace it had.
  local f = redis.call('HMGET', flow, 't', 't0')
  local t, t0 = tonumber(f[1]), tonumber(f[2])
  if t and t0 then
    redis.call('HSET', flow, 't', now, 't0', t0 + math.max(0, now - t))
  end
elseif waiting == 0 and n == 0 then
  -- No demand: the next rush starts a fresh measurement.
  redis.call('DEL', flow)
else
  count_events(flow, n, now, tau)
end

local active_count = redis.call('ZCARD', active)

-- One sample per second of the clock; the first step in a new second takes it.
local history = qkey(q, 'history')
local last = redis.call('LINDEX', history, 0)
local last_at = last and tonumber(string.match(last, '^%d+'))
if not last_at or math.floor(now / 1000) > math.floor(last_at / 1000) then
  local c = redis.call('HMGET', totals, 'admitted', 'dropped')
  redis.call('LPUSH', history, string.format('%.0f %.0f %.0f %.0f %.0f', now, waiting,
    active_count, tonumber(c[1]) or 0, tonumber(c[2]) or 0))
  redis.call('LTRIM', history, 0, history_len - 1)
  -- A room that has gone quiet loses its history after twice the window (real time).
  redis.call('PEXPIRE', history, history_len * 2000)
end

if waiting == 0 and active_count == 0 then
  redis.call('SREM', P .. ':queues', q)
end
return {n, #expired, #stale, waiting, active_count}
