-- After the store took the room out of P:queues because its last admission step found it
-- empty: whether someone joined meanwhile, so the room must go back in (1) or not (0).
-- KEYS: the room's stem. ARGV: listed ms.
if redis.call('ZCARD', qkey('wait')) + redis.call('ZCARD', qkey('active')) == 0 then return 0 end
redis.call('SET', qkey('listed'), '1', 'PX', tonumber(ARGV[1]))
return 1
