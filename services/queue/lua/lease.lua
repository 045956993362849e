-- Takes or renews the admission lease (a global key; no room's). KEYS: the lease. ARGV:
-- holder id, lease ms. Returns 1 when held.
local k = KEYS[1]
local holder, ms = ARGV[1], tonumber(ARGV[2])
local current = redis.call('GET', k)
if current == holder then
  redis.call('PEXPIRE', k, ms)
  return 1
end
if not current then
  redis.call('SET', k, holder, 'PX', ms)
  return 1
end
return 0
