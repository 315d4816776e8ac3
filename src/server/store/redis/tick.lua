-- The timer: applies what time has done, drops finished tasks past their
-- retention and workers not seen for an hour. Returns the ms until
-- something is next due (-1: nothing).
advance(1000)
local old = redis.call('ZRANGEBYSCORE', B .. ':finished', '-inf', NOW - RETAIN_MS, 'LIMIT', 0, 1000)
for _, id in ipairs(old) do drop(id) end
for _, w in ipairs(redis.call('ZRANGEBYSCORE', B .. ':workers', '-inf', NOW - SEEN_WITHIN_MS, 'LIMIT', 0, 1000)) do
  redis.call('ZREM', B .. ':workers', w)
  redis.call('DEL', B .. ':w:' .. w)
end
local next = -1
for _, key in ipairs({':delayed', ':expiring', ':leases', ':finished'}) do
  local r = redis.call('ZRANGE', B .. key, 0, 0, 'WITHSCORES')
  if r[2] then
    local at = tonumber(r[2])
    if key == ':finished' then at = at + RETAIN_MS end
    local wait = math.max(at - NOW, 0)
    if next < 0 or wait < next then next = wait end
  end
end
return next
