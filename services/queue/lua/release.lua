-- ReleaseToken: frees the token's slot at once. KEYS: the stem of the token's room. ARGV:
-- token. Returns 1 if it existed.
local token = ARGV[1]
if not redis.call('HGET', tkey(token), 'queue') then return 0 end
drop(token)
return 1
