-- ARGV[5..]: worker, claim id ('' for none), max tasks, types... (none: any).
-- Returns {'cancelled'} or {'tasks', {view...}}.
advance(100)
local worker, cid, max = ARGV[5], ARGV[6], tonumber(ARGV[7])
if cid ~= '' then
  if redis.call('EXISTS', B .. ':cc:' .. cid) == 1 then
    total('claims_empty')
    return {'cancelled'}
  end
  local again = {}
  for _, id in ipairs(redis.call('LRANGE', B .. ':c:' .. cid, 0, -1)) do
    local f = redis.call('HMGET', tk(id), 'status', 'cid')
    if f[1] == 'claimed' and f[2] == cid then again[#again + 1] = view(id) end
  end
  if #again > 0 then return {'tasks', again} end
end
-- Paused types are not in {p}:ready; a claim naming types skips them.
local types = {}
for i = 8, #ARGV do
  if redis.call('SISMEMBER', B .. ':paused', ARGV[i]) == 0 then types[#types + 1] = ARGV[i] end
end
local any = #ARGV < 8
local out = {}
while #out < max do
  local best, best_score
  if any then
    best = redis.call('ZRANGE', B .. ':ready', 0, 0)[1]
  else
    for _, ty in ipairs(types) do
      local r = redis.call('ZRANGE', B .. ':ready:' .. ty, 0, 0, 'WITHSCORES')
      if r[1] and (best_score == nil or tonumber(r[2]) < best_score) then
        best, best_score = r[1], tonumber(r[2])
      end
    end
  end
  if not best then break end
  local f = redis.call('HMGET', tk(best), 'type', 'attempt', 'exp_at')
  unready(best)
  if f[3] and tonumber(f[3]) <= NOW then
    expire_waiting(best)
  else
    local attempt = tonumber(f[2]) + 1
    local expires = NOW + LEASE_MS
    redis.call('HSET', tk(best), 'attempt', attempt, 'worker', worker, 'claimed_at', NOW,
      'expires', expires)
    if cid ~= '' then
      redis.call('HSET', tk(best), 'cid', cid)
      redis.call('RPUSH', B .. ':c:' .. cid, best)
    end
    redis.call('RPUSH', hk(best), cjson.encode({attempt = attempt, worker_id = worker, claimed_at = NOW}))
    redis.call('LTRIM', hk(best), -MAX_HISTORY, -1)
    redis.call('ZADD', B .. ':leases', expires, best)
    set_status(best, 'claimed')
    total('delivered')
    out[#out + 1] = view(best)
  end
end
seen(worker, 'running', #out)
if #out > 0 then
  total('claims_served')
  if cid ~= '' then redis.call('PEXPIRE', B .. ':c:' .. cid, CLAIM_MEMORY_MS) end
else
  total('claims_empty')
end
return {'tasks', out}
