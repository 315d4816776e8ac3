-- ARGV[5..]: what, then its argument: 'cancel', 'retry' or 'delete' and a
-- task id; 'pause' or 'resume' and a type. Returns {'ok'}, {'not_found'}
-- or {'conflict', why}.
advance(100)
local what, arg = ARGV[5], ARGV[6]
-- As queue.rs's MAX_PAUSED.
local MAX_PAUSED = 1000
if what == 'pause' then
  if redis.call('SISMEMBER', B .. ':paused', arg) == 1 then return {'ok'} end
  if redis.call('SCARD', B .. ':paused') >= MAX_PAUSED then
    return {'conflict', MAX_PAUSED .. ' types are paused already: resume one first'}
  end
  redis.call('SADD', B .. ':paused', arg)
  local ids = redis.call('ZRANGE', B .. ':ready:' .. arg, 0, -1)
  for i = 1, #ids, 1000 do
    redis.call('ZREM', B .. ':ready', unpack(ids, i, math.min(i + 999, #ids)))
  end
  return {'ok'}
elseif what == 'resume' then
  if redis.call('SREM', B .. ':paused', arg) == 0 then return {'ok'} end
  local entries = redis.call('ZRANGE', B .. ':ready:' .. arg, 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    redis.call('ZADD', B .. ':ready', entries[i + 1], entries[i])
  end
  -- One wake per task, as enqueues would send, up to a bound.
  for _ = 1, math.min(#entries / 2, 1000) do redis.call('PUBLISH', B .. ':wake', arg) end
  return {'ok'}
end
local id = arg
local status = redis.call('HGET', tk(id), 'status')
if not status then return {'not_found'} end
local function refuse(done, allowed)
  return {'conflict', 'task "' .. id .. '" is ' .. status .. ': only ' .. allowed ..
    ' tasks can be ' .. done}
end
if what == 'cancel' then
  if waiting(status) then
    unready(id)
  elseif status == 'claimed' then
    end_lease(id, 'cancelled', nil, nil)
  else
    return refuse('cancelled', 'scheduled, queued or claimed')
  end
  finish(id, 'cancelled')
elseif what == 'retry' then
  if status ~= 'failed' and status ~= 'cancelled' and status ~= 'expired' then
    return refuse('retried', 'failed, cancelled or expired')
  end
  redis.call('ZREM', B .. ':finished', id)
  redis.call('HDEL', tk(id), 'finished', 'result', 'error')
  redis.call('HSET', tk(id), 'attempt', 0)
  local exp = redis.call('HGET', tk(id), 'exp_at')
  -- What expired would expire again at once: the operator wants it run.
  if exp and tonumber(exp) <= NOW then redis.call('HDEL', tk(id), 'exp_at') end
  set_status(id, 'queued')
  queue_at(id, NOW, false)
elseif what == 'delete' then
  if status == 'claimed' then
    return {'conflict', 'task "' .. id .. '" is claimed: cancel it first'}
  end
  unready(id)
  drop(id)
end
return {'ok'}
