-- One admission step for one room. ARGV: P, room id, now, rate/s (0 = no rate limit),
-- cap (0 = no cap), grace ms, active ttl ms, max batch, tau ms.
-- Expires active tokens, drops waiters who stopped polling, then moves waiters from the head
-- to ACTIVE as the token bucket and the active cap allow; each of the three handles at most
-- max batch tokens. The bucket lives here, in Redis, so the total rate is the configured one
-- however many admitters run.
-- Returns {admitted, expired, dropped, waiting, active}.
local q = ARGV[2]
local now = clock(ARGV[3])
local rate, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local grace, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local max_batch, tau = tonumber(ARGV[8]), tonumber(ARGV[9])
local wait, seen, active = qkey(q, 'wait'), qkey(q, 'seen'), qkey(q, 'active')

local expired = redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, max_batch)
for _, t in ipairs(expired) do drop(q, t) end

local stale = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. (now - grace), 'LIMIT', 0, max_batch)
for _, t in ipairs(stale) do drop(q, t) end

-- A full batch of stale waiters may have left more of them, at the head among others: admit
-- nobody until the sweep is complete, so a silent waiter is never admitted. (The admitter runs
-- this step again at once when a batch comes back full.)
local n = 0
if #stale < max_batch then
  n = math.min(redis.call('ZCARD', wait), max_batch)
  if cap > 0 then n = math.min(n, cap - redis.call('ZCARD', active)) end
end
if rate > 0 then
  local bucket = qkey(q, 'bucket')
  local b = redis.call('HMGET', bucket, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or 0
  local ts = tonumber(b[2]) or now
  -- At most one second's worth accumulates while nobody waits.
  tokens = math.min(math.max(1, rate), tokens + math.max(0, now - ts) * rate / 1000)
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
end

local waiting = redis.call('ZCARD', wait)
local flow = qkey(q, 'flow')
if waiting == 0 and n == 0 then
  -- No demand: the next rush starts a fresh measurement.
  redis.call('DEL', flow)
else
  local f = redis.call('HMGET', flow, 's', 't', 't0')
  local s, t, t0 = tonumber(f[1]) or 0, tonumber(f[2]) or now, tonumber(f[3]) or now
  s = s * math.exp(-math.max(0, now - t) / tau) + n
  redis.call('HSET', flow, 's', s, 't', now, 't0', t0)
end

local active_count = redis.call('ZCARD', active)
if waiting == 0 and active_count == 0 then
  redis.call('SREM', P .. ':queues', q)
end
return {n, #expired, #stale, waiting, active_count}
