-- One room's figures (ListRooms runs it for each room it lists). KEYS: the room's stem. ARGV:
-- now, configured rate/s, configured cap, active ttl ms, tau ms.
-- Returns a pair of arrays: {waiting, active, admitted/s, dropped/s, wait at the back (s),
-- admitted total, dropped total, paused (0|1), rate/s, cap, version of the operator's settings
-- (0: none, so not overridden)} and {prequeue at ms (0: none), opens at ms (0: none), phase,
-- rate in effect/s, cap in effect, limit, detail, free seats (-1: not known), held, sold,
-- idled total}; rates as strings (a Lua number would reach the caller cut to an integer).
local now = clock(ARGV[1])
local configured_rate, configured_cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local active_ttl, tau = tonumber(ARGV[4]), tonumber(ARGV[5])

local function decimal(x) return string.format('%.17g', x) end

local paused, rate, cap, _, prequeue_at, opens_at = settings(configured_rate, configured_cap)
local room_phase = phase(now, prequeue_at, opens_at)
local o = redis.call('HMGET', qkey('outlook'), 'share', 'limit', 'detail', 'free', 'held',
  'sold')
-- The last step's pace, applied to the settings as they are now; paused and the schedule
-- are read as they are now too, so a change shows at once, before the next step.
local share = tonumber(o[1]) or 1
local limit, detail = o[2] or 'none', o[3] or ''
local rate_in_effect, cap_in_effect = in_effect(rate, cap, share)
if paused then
  limit, detail = 'paused', ''
elseif room_phase ~= 'open' then
  limit, detail = 'not-open', ''
elseif limit == 'paused' or limit == 'not-open' then
  limit, detail = 'none', ''
end
if limit == 'paused' or limit == 'not-open' or limit == 'sold-out' then rate_in_effect = 0 end
local version = tonumber(redis.call('HGET', qkey('settings'), 'v')) or 0
local waiting = redis.call('ZCARD', qkey('wait'))
local active = redis.call('ZCARD', qkey('active'))
-- A paused room admits nobody, whatever its frozen measurement says.
local admitted_rate = 0
if not paused then admitted_rate = measured(qkey('flow'), now, tau) or 0 end
local dropped_rate = measured(qkey('drops'), now, tau) or 0
local back = 0
if waiting > 0 then back = eta(waiting, now, assumed_rate(rate, cap, active_ttl), tau) end
local c = redis.call('HMGET', qkey('totals'), 'admitted', 'dropped')
return {{
  waiting, active, decimal(admitted_rate), decimal(dropped_rate), back,
  tonumber(c[1]) or 0, tonumber(c[2]) or 0,
  paused and 1 or 0, decimal(rate), cap, version,
}, {
  prequeue_at or 0, opens_at or 0, room_phase, decimal(rate_in_effect), cap_in_effect, limit,
  detail, tonumber(o[4]) or -1, tonumber(o[5]) or 0, tonumber(o[6]) or 0,
  tonumber(redis.call('HGET', qkey('totals'), 'idled')) or 0,
}}
