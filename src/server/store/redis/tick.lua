-- The timer: applies what time has done, drops finished tasks past their
-- retention. Returns the ms until something is next due (-1: nothing).
advance(1000)
local old = redis.call('ZRANGEBYSCORE', B .. ':finished', '-inf', NOW - RETAIN_MS, 'LIMIT', 0, 1000)
for _, id in ipairs(old) do
  local status = redis.call('HGET', tk(id), 'status')
  if status then redis.call('HINCRBY', B .. ':counts', status, -1) end
  redis.call('DEL', tk(id), hk(id))
  redis.call('ZREM', B .. ':finished', id)
  redis.call('ZREM', B .. ':all', id)
end
local next = -1
for _, key in ipairs({':delayed', ':leases', ':finished'}) do
  local r = redis.call('ZRANGE', B .. key, 0, 0, 'WITHSCORES')
  if r[2] then
    local at = tonumber(r[2])
    if key == ':finished' then at = at + RETAIN_MS end
    local wait = math.max(at - NOW, 0)
    if next < 0 or wait < next then next = wait end
  end
end
return next
