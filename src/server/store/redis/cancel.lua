-- ARGV[5]: claim id. Puts back what the claim handed out and is not
-- reported, without counting an attempt; answers its parked poll on every
-- server. Returns how many tasks it put back.
advance(100)
local cid = ARGV[5]
redis.call('SET', B .. ':cc:' .. cid, 1, 'PX', CLAIM_MEMORY_MS)
local released = 0
for _, id in ipairs(redis.call('LRANGE', B .. ':c:' .. cid, 0, -1)) do
  local f = redis.call('HMGET', tk(id), 'status', 'cid', 'attempt')
  if f[1] == 'claimed' and f[2] == cid then
    put_back(id, f[3])
    released = released + 1
  end
end
redis.call('DEL', B .. ':c:' .. cid)
total('released', released)
redis.call('PUBLISH', B .. ':cancel', cid)
return released
