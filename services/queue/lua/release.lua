-- ReleaseToken: frees the token's slot at once. ARGV: P, token. Returns 1 if it existed.
local token = ARGV[2]
local q = redis.call('HGET', tkey(token), 'queue')
if not q then return 0 end
drop(q, token)
return 1
