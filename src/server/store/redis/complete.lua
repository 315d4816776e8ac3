-- ARGV[5..]: id, worker ('' for any), result (JSON), duration ms ('' for none).
advance(100)
local id, worker = ARGV[5], ARGV[6]
local refused = check_holder(id, worker)
if refused then return refused end
seen(redis.call('HGET', tk(id), 'worker'), 'completed', 1)
end_lease(id, 'completed', nil, tonumber(ARGV[8]))
finish(id, 'completed')
redis.call('HSET', tk(id), 'result', ARGV[7])
redis.call('HDEL', tk(id), 'error')
total('completed')
return {'ok', 'completed'}
