-- ListRooms' figures. ARGV: P, now, configured rate/s, configured cap, active ttl ms, tau ms,
-- which ('listed': the given rooms and every room that has waiters, active tokens or operator
-- settings; 'only': the given rooms), room ids...
-- Returns one array per room: {room id, waiting, active, admitted/s, dropped/s, wait at the
-- back (s), admitted total, dropped total, paused (0|1), rate/s, cap, version of the
-- operator's settings (0: none, so not overridden)}; rates as strings (a Lua number would
-- reach the caller cut to an integer).
local now = clock(ARGV[2])
local configured_rate, configured_cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local active_ttl, tau = tonumber(ARGV[5]), tonumber(ARGV[6])

local rooms, listed = {}, {}
local function add(q)
  if not listed[q] then
    listed[q] = true
    rooms[#rooms + 1] = q
  end
end
for i = 8, #ARGV do add(ARGV[i]) end
if ARGV[7] == 'listed' then
  for _, q in ipairs(redis.call('SMEMBERS', P .. ':queues')) do add(q) end
  for _, q in ipairs(redis.call('SMEMBERS', P .. ':settings')) do add(q) end
end

local function decimal(x) return string.format('%.17g', x) end

local out = {}
for _, q in ipairs(rooms) do
  local paused, rate, cap = settings(q, configured_rate, configured_cap)
  local version = tonumber(redis.call('HGET', qkey(q, 'settings'), 'v')) or 0
  local waiting = redis.call('ZCARD', qkey(q, 'wait'))
  local active = redis.call('ZCARD', qkey(q, 'active'))
  -- A paused room admits nobody, whatever its frozen measurement says.
  local admitted_rate = 0
  if not paused then admitted_rate = measured(qkey(q, 'flow'), now, tau) or 0 end
  local dropped_rate = measured(qkey(q, 'drops'), now, tau) or 0
  local back = 0
  if waiting > 0 then back = eta(q, waiting, now, assumed_rate(rate, cap, active_ttl), tau) end
  local c = redis.call('HMGET', qkey(q, 'totals'), 'admitted', 'dropped')
  out[#out + 1] = {
    q, waiting, active, decimal(admitted_rate), decimal(dropped_rate), back,
    tonumber(c[1]) or 0, tonumber(c[2]) or 0,
    paused and 1 or 0, decimal(rate), cap, version,
  }
end
return out
