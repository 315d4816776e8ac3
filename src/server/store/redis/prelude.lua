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
-- Ready order: priority (0 high, 1 medium, 2 low), then the order in which
-- tasks became claimable ({p}:rank, kept by a task that a lease or a
-- released claim puts back).
local PRIO = 1125899906842624
-- The newest attempts kept per task, as record.rs's MAX_HISTORY.
local MAX_HISTORY = 20
-- The workers remembered, and for how long (admin_workers.rs).
local MAX_WORKERS = 10000
local SEEN_WITHIN_MS = 3600000
local t = redis.call('TIME')
local NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function tk(id) return B .. ':t:' .. id end
local function hk(id) return B .. ':h:' .. id end
local function total(name, n) redis.call('HINCRBY', B .. ':totals', name, n or 1) end

-- Adds n to a count that is forgotten at zero, so that the hash stays as
-- small as what it counts.
local function count(key, field, n)
  if redis.call('HINCRBY', key, field, n) <= 0 then redis.call('HDEL', key, field) end
end

-- Counts and lists task `id` (f: its type, priority, seq) in `status`, or stops.
local function place(id, status, add, f)
  local n = add and 1 or -1
  redis.call('HINCRBY', B .. ':counts', status, n)
  count(B .. ':pcounts', f[2] .. ':' .. status, n)
  count(B .. ':tcounts', status .. ':' .. f[1], n)
  if add then
    redis.call('ZADD', B .. ':s:' .. status, f[3], id)
    redis.call('ZADD', B .. ':s:' .. status .. ':' .. f[1], f[3], id)
  else
    redis.call('ZREM', B .. ':s:' .. status, id)
    redis.call('ZREM', B .. ':s:' .. status .. ':' .. f[1], id)
  end
end

local function set_status(id, to)
  local f = redis.call('HMGET', tk(id), 'type', 'prio', 'seq', 'status')
  redis.call('HSET', tk(id), 'status', to)
  place(id, f[4], false, f)
  place(id, to, true, f)
end

-- Notes that `worker` was seen now, adding n to its `field` when given.
local function seen(worker, field, n)
  if not worker or worker == '' then return end
  redis.call('ZADD', B .. ':workers', NOW, worker)
  if field then redis.call('HINCRBY', B .. ':w:' .. worker, field, n) end
  if redis.call('ZCARD', B .. ':workers') > MAX_WORKERS then
    local oldest = redis.call('ZPOPMIN', B .. ':workers')
    if oldest[1] then redis.call('DEL', B .. ':w:' .. oldest[1]) end
  end
end

-- A task became claimable: a new rank unless `keep` (and it has one).
local function make_ready(id, keep)
  local f = redis.call('HMGET', tk(id), 'prio', 'rank', 'type')
  local rank = f[2]
  if not keep or not rank then
    rank = redis.call('INCR', B .. ':rank')
    redis.call('HSET', tk(id), 'rank', rank)
  end
  local score = tonumber(f[1]) * PRIO + tonumber(rank)
  redis.call('ZADD', B .. ':ready:' .. f[3], score, id)
  if redis.call('SISMEMBER', B .. ':paused', f[3]) == 0 then
    redis.call('ZADD', B .. ':ready', score, id)
    -- Wakes one parked claim for this type on every server.
    redis.call('PUBLISH', B .. ':wake', f[3])
  end
end

-- A scheduled or queued task becomes claimable at `at` (now when nil, in
-- the place it had) and is watched for its expiry.
local function queue_at(id, at, keep)
  local exp = redis.call('HGET', tk(id), 'exp_at')
  if exp then redis.call('ZADD', B .. ':expiring', exp, id) end
  if at then redis.call('HSET', tk(id), 'ready_at', at) end
  if at and at > NOW then
    redis.call('ZADD', B .. ':delayed', at, id)
  else
    make_ready(id, keep)
  end
end

-- Takes a scheduled or queued task out of the claim indexes.
local function unready(id)
  local ty = redis.call('HGET', tk(id), 'type')
  redis.call('ZREM', B .. ':ready', id)
  redis.call('ZREM', B .. ':ready:' .. ty, id)
  redis.call('ZREM', B .. ':delayed', id)
  redis.call('ZREM', B .. ':expiring', id)
end

-- Takes the lease off a claimed task and closes its history entry.
local function end_lease(id, outcome, failure, duration)
  local worker = redis.call('HGET', tk(id), 'worker')
  if worker and redis.call('EXISTS', B .. ':w:' .. worker) == 1 then
    count(B .. ':w:' .. worker, 'running', -1)
  end
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
  set_status(id, status)
  redis.call('HSET', tk(id), 'finished', NOW)
  redis.call('ZADD', B .. ':finished', NOW, id)
  if status == 'completed' or status == 'failed' then
    local k = B .. ':tp:' .. math.floor(NOW / 60000)
    redis.call('HINCRBY', k, status, 1)
    redis.call('PEXPIRE', k, 2 * SEEN_WITHIN_MS)
  end
end

-- Puts a task back: claimable at `at`, or in its old place when nil.
local function requeue(id, at)
  set_status(id, 'queued')
  queue_at(id, at, at == nil)
end

-- Puts a claimed task back as if it had never been handed out (a claim
-- cancel, an answer its client never read): no attempt counted.
local function put_back(id, attempt)
  end_lease(id, 'released', nil, nil)
  redis.call('HSET', tk(id), 'attempt', math.max(tonumber(attempt) - 1, 0))
  requeue(id, nil)
end

-- A waiting task (out of the claim indexes) whose expires_at has come.
local function expire_waiting(id)
  redis.call('HSET', tk(id), 'error', cjson.encode({
    error = 'not handed out before its expires_at', error_type = 'EXPIRED', retryable = false}))
  finish(id, 'expired')
end

-- Forgets a task that no lease holds, out of the claim indexes.
local function drop(id)
  local f = redis.call('HMGET', tk(id), 'type', 'prio', 'seq', 'status')
  if f[4] then place(id, f[4], false, f) end
  redis.call('DEL', tk(id), hk(id))
  redis.call('ZREM', B .. ':finished', id)
  redis.call('ZREM', B .. ':all', id)
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
    requeue(id, nil)
  end
end

local function waiting(status) return status == 'scheduled' or status == 'queued' end

-- What time has done: scheduled and delayed tasks become claimable,
-- waiting ones expire, leases run out. Bounded per call; the timer of
-- every server calls it until nothing is due.
local function advance(limit)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':delayed', '-inf', NOW, 'LIMIT', 0, limit)) do
    redis.call('ZREM', B .. ':delayed', id)
    local status = redis.call('HGET', tk(id), 'status')
    if status == 'scheduled' then set_status(id, 'queued') end
    if waiting(status) then make_ready(id, false) end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':expiring', '-inf', NOW, 'LIMIT', 0, limit)) do
    redis.call('ZREM', B .. ':expiring', id)
    if waiting(redis.call('HGET', tk(id), 'status')) then
      unready(id)
      expire_waiting(id)
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':leases', '-inf', NOW, 'LIMIT', 0, limit)) do
    expire(id)
  end
end

-- nil when `worker` (or anyone, when empty) holds the lease of `id`, else the refusal.
local function check_holder(id, worker)
  local f = redis.call('HMGET', tk(id), 'status', 'worker')
  if not f[1] then return {'not_found'} end
  if f[1] == 'cancelled' then return {'gone'} end
  if f[1] ~= 'claimed' or not f[2] then
    return {'conflict', 'task "' .. id .. '" is ' .. f[1] .. ', not claimed'}
  end
  if worker ~= '' and worker ~= f[2] then
    return {'conflict', 'task "' .. id .. '" is leased to another worker'}
  end
  return nil
end

-- {'ok', 'completed'} or the refusal; `result` is JSON, `duration` ms or nil.
local function complete(id, worker, result, duration)
  local refused = check_holder(id, worker)
  if refused then return refused end
  seen(redis.call('HGET', tk(id), 'worker'), 'completed', 1)
  end_lease(id, 'completed', nil, duration)
  finish(id, 'completed')
  redis.call('HSET', tk(id), 'result', result)
  redis.call('HDEL', tk(id), 'error')
  total('completed')
  return {'ok', 'completed'}
end

-- Queued again when `retryable` is '1' and attempts are left: {'ok', status}
-- or the refusal.
local function fail(id, worker, failure, retryable, duration)
  local refused = check_holder(id, worker)
  if refused then return refused end
  seen(redis.call('HGET', tk(id), 'worker'), 'failed', 1)
  failure = cjson.decode(failure)
  local f = redis.call('HMGET', tk(id), 'attempt', 'max')
  local attempt = tonumber(f[1])
  if retryable == '1' and attempt < tonumber(f[2]) then
    end_lease(id, 'retry', failure, duration)
    local wait = math.min(BACKOFF_BASE * 2 ^ math.min(attempt - 1, 32), BACKOFF_MAX)
    requeue(id, NOW + wait)
    total('retried')
    return {'ok', 'queued'}
  end
  end_lease(id, 'failed', failure, duration)
  finish(id, 'failed')
  total('failed')
  return {'ok', 'failed'}
end

local function view(id)
  return {redis.call('HGETALL', tk(id)), redis.call('LRANGE', hk(id), 0, -1)}
end
