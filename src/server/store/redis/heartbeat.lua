-- ARGV[5..]: id, worker. Returns {'ok', new end of the lease}.
advance(100)
local id, worker = ARGV[5], ARGV[6]
local refused = check_holder(id, worker)
if refused then return refused end
seen(worker)
local expires = NOW + LEASE_MS
redis.call('HSET', tk(id), 'expires', expires)
redis.call('ZADD', B .. ':leases', expires, id)
total('heartbeats')
return {'ok', expires}
