-- One admission step for one room. KEYS: the room's stem. ARGV: now, configured rate/s (0 =
-- no rate limit), configured cap (0 = no cap), grace ms, active ttl ms, max batch, tau ms,
-- history samples kept, share of the ceiling (the admitter's pace, in (0, 1]), the pace's
-- limit code and detail, the concert's free, held and sold seats ('' when not known this step:
-- the last known stand), idle limit ms (0: none).
-- Expires active tokens and no-shows (admitted, no reservation call within the idle limit),
-- drops waiters who stopped polling, then moves waiters from the head to ACTIVE as the token
-- bucket and the active cap allow; each of these handles at most max batch tokens. Nobody is
-- admitted while the room is paused, before its scheduled opening, or with no seat free; and
-- never more at once than there are free seats that admitted users are not already choosing
-- (those who have not made a reservation call yet). The room's settings are read here at every step (an operator's rate, cap
-- or pause override the configured ones), and the bucket lives here, in Redis, so the total
-- rate is the one in effect however many admitters run and whichever holds the lease.
-- Counts the admissions and drops, and samples the room once a second for its history.
-- Returns {admitted, expired, dropped, waiting, active, idled, emptied (1: nobody waits or is
-- active, so the store takes the room out of P:queues)}.
local now = clock(ARGV[1])
local paused, rate, cap, _, prequeue_at, opens_at = settings(tonumber(ARGV[2]), tonumber(ARGV[3]))
local grace, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_batch, tau = tonumber(ARGV[6]), tonumber(ARGV[7])
local history_len = tonumber(ARGV[8])
local share, limit, detail = tonumber(ARGV[9]), ARGV[10], ARGV[11]
local idle_ms = tonumber(ARGV[15])
local wait, seen, active = qkey('wait'), qkey('seen'), qkey('active')
local idle, outlook = qkey('idle'), qkey('outlook')
local totals = qkey('totals')

local expired = redis.call('ZRANGEBYSCORE', active, '-inf', now, 'LIMIT', 0, max_batch)
for _, t in ipairs(expired) do drop(t) end

local no_shows = {}
if idle_ms > 0 then
  no_shows = redis.call('ZRANGEBYSCORE', idle, '-inf', now - idle_ms, 'LIMIT', 0, max_batch)
  for _, t in ipairs(no_shows) do drop(t) end
  if #no_shows > 0 then redis.call('HINCRBY', totals, 'idled', #no_shows) end
end

if ARGV[12] ~= '' then
  redis.call('HSET', outlook, 'free', ARGV[12], 'held', ARGV[13], 'sold', ARGV[14])
end
local free, held = seats()
local sold_out = free and free <= 0
local room_phase = phase(now, prequeue_at, opens_at)

local rate_in_effect, cap_in_effect = in_effect(rate, cap, share)
if paused then
  limit, detail = 'paused', ''
elseif room_phase ~= 'open' then
  limit, detail = 'not-open', ''
elseif sold_out then
  limit, detail = 'sold-out', string.format('no seat is free: %d held, %d sold', held or 0,
    tonumber(redis.call('HGET', outlook, 'sold')) or 0)
end
redis.call('HSET', outlook, 'share', string.format('%.17g', share), 'limit', limit, 'detail',
  detail)
local stopped = paused or room_phase ~= 'open' or sold_out

local stale = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. (now - grace), 'LIMIT', 0, max_batch)
for _, t in ipairs(stale) do drop(t) end
if #stale > 0 then
  redis.call('HINCRBY', totals, 'dropped', #stale)
  count_events(qkey('drops'), #stale, now, tau)
end

-- A full batch of stale waiters may have left more of them, at the head among others: admit
-- nobody until the sweep is complete, so a silent waiter is never admitted. (The admitter runs
-- this step again at once when a batch comes back full.) A paused room admits nobody.
local n = 0
if not stopped and #stale < max_batch then
  n = math.min(redis.call('ZCARD', wait), max_batch)
  if cap_in_effect > 0 then n = math.min(n, cap_in_effect - redis.call('ZCARD', active)) end
  if free then n = math.min(n, free - redis.call('ZCARD', idle)) end
end
if rate_in_effect > 0 then
  local bucket = qkey('bucket')
  local b = redis.call('HMGET', bucket, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or 0
  local ts = tonumber(b[2]) or now
  -- At most one second's worth accumulates while nobody waits; none while stopped, so a
  -- resume starts from an empty bucket rather than with a burst.
  tokens = math.min(math.max(1, rate_in_effect),
    tokens + math.max(0, now - ts) * rate_in_effect / 1000)
  if stopped then tokens = 0 end
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
    if user then redis.call('PEXPIRE', ukey(user), ttl) end
    redis.call('ZADD', active, active_until, t)
    redis.call('ZADD', idle, now, t)
  end
  redis.call('HINCRBY', totals, 'admitted', n)
end

local waiting = redis.call('ZCARD', wait)
local flow = qkey('flow')
if stopped then
  -- Stopped time is no admission time: the measurement stays as it stood (both its instants
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
local history = qkey('history')
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

local emptied = 0
if waiting == 0 and active_count == 0 then
  redis.call('DEL', qkey('listed'))
  emptied = 1
end
return {n, #expired, #stale, waiting, active_count, #no_shows, emptied}
