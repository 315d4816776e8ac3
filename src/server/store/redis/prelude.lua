-- Shared by every script of the Redis store. KEYS[1] is the queue's base
-- name, "{prefix}": every key below starts with it, so the queue lives in
-- one hash slot (Redis Cluster). ARGV[1..4] are the queue's rules; a
-- script's own arguments start at ARGV[5]. Time is Redis's own TIME, so
-- every server sharing the queue agrees on it.
local B = KEYS[1]
local LEASE_MS = tonumber(ARGV[1])
local BACKOFF_BASE = tonumber(ARGV[2])
local BACKOFF_MAX = tonumber(ARGV[3])
local RETAIN_MS = tonumber(ARGV[4])
-- A cancelled claim id and a claim id's tasks are remembered this long.
local CLAIM_MEMORY_MS = 600000
-- Ready order: priority (0 high, 1 medium, 2 low), then enqueue order.
local PRIO = 281474976710656
local t = redis.call('TIME')
local NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function tk(id) return B .. ':t:' .. id end
local function hk(id) return B .. ':h:' .. id end
local function total(name, n) redis.call('HINCRBY', B .. ':totals', name, n or 1) end
local function set_status(id, from, to)
  redis.call('HSET', tk(id), 'status', to)
  redis.call('HINCRBY', B .. ':counts', from, -1)
  redis.call('HINCRBY', B .. ':counts', to, 1)
end

local function make_ready(id)
  local f = redis.call('HMGET', tk(id), 'prio', 'seq', 'type')
  local score = tonumber(f[1]) * PRIO + tonumber(f[2])
  redis.call('ZADD', B .. ':ready', score, id)
  redis.call('ZADD', B .. ':ready:' .. f[3], score, id)
  -- Wakes one parked claim for this type on every server.
  redis.call('PUBLISH', B .. ':wake', f[3])
end

-- A queued task becomes claimable at `at`.
local function queue_at(id, at)
  redis.call('HSET', tk(id), 'ready_at', at)
  if at > NOW then
    redis.call('ZADD', B .. ':delayed', at, id)
  else
    make_ready(id)
  end
end

-- Takes the lease off a claimed task and closes its history entry.
local function end_lease(id, outcome, failure, duration)
  redis.call('ZREM', B .. ':leases', id)
  redis.call('HDEL', tk(id), 'worker', 'cid', 'claimed_at', 'expires')
  local raw = redis.call('LINDEX', hk(id), -1)
  if raw then
    local a = cjson.decode(raw)
    if a.ended_at == nil then
      a.ended_at = NOW
      a.outcome = outcome
      if failure then a.error = failure end
      if duration then a.duration_ms = duration end
      redis.call('LSET', hk(id), -1, cjson.encode(a))
    end
  end
  if failure then redis.call('HSET', tk(id), 'error', cjson.encode(failure)) end
end

local function finish(id, status)
  set_status(id, 'claimed', status)
  redis.call('HSET', tk(id), 'finished', NOW)
  redis.call('ZADD', B .. ':finished', NOW, id)
end

local function requeue(id, at)
  set_status(id, 'claimed', 'queued')
  queue_at(id, at)
end

local function expire(id)
  local f = redis.call('HMGET', tk(id), 'status', 'attempt', 'max')
  if f[1] ~= 'claimed' then
    redis.call('ZREM', B .. ':leases', id)
    return
  end
  local attempt, max = tonumber(f[2]), tonumber(f[3])
  local last = attempt >= max
  local failure = {
    error = 'lease expired on attempt ' .. attempt .. ' of ' .. max,
    error_type = 'LEASE_EXPIRED',
    retryable = not last,
  }
  end_lease(id, 'lease_expired', failure, nil)
  total('lease_expired')
  if last then
    finish(id, 'failed')
    total('failed')
  else
    requeue(id, NOW)
  end
end

-- What time has done: delayed tasks become ready, leases run out. Bounded
-- per call; the timer of every server calls it until nothing is due.
local function advance(limit)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':delayed', '-inf', NOW, 'LIMIT', 0, limit)) do
    redis.call('ZREM', B .. ':delayed', id)
    if redis.call('HGET', tk(id), 'status') == 'queued' then make_ready(id) end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':leases', '-inf', NOW, 'LIMIT', 0, limit)) do
    expire(id)
  end
end

-- nil when `worker` (or anyone, when empty) holds the lease of `id`, else the refusal.
local function check_holder(id, worker)
  local f = redis.call('HMGET', tk(id), 'status', 'worker')
  if not f[1] then return {'not_found'} end
  if f[1] ~= 'claimed' or not f[2] then
    return {'conflict', 'task "' .. id .. '" is ' .. f[1] .. ', not claimed'}
  end
  if worker ~= '' and worker ~= f[2] then
    return {'conflict', 'task "' .. id .. '" is leased to another worker'}
  end
  return nil
end

local function view(id)
  return {redis.call('HGETALL', tk(id)), redis.call('LRANGE', hk(id), 0, -1)}
end
