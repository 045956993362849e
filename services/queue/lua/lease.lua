-- Takes or renews the admission lease. ARGV: P, holder id, lease ms. Returns 1 when held.
local k = P .. ':admitter'
local holder, ms = ARGV[2], tonumber(ARGV[3])
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
