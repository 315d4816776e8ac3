-- ARGV[5..]: id, worker ('' for any), failure (JSON), retryable ('1' or ''),
-- duration ms ('' for none).
advance(100)
local id, worker = ARGV[5], ARGV[6]
local refused = check_holder(id, worker)
if refused then return refused end
seen(redis.call('HGET', tk(id), 'worker'), 'failed', 1)
local failure = cjson.decode(ARGV[7])
local f = redis.call('HMGET', tk(id), 'attempt', 'max')
local attempt = tonumber(f[1])
if ARGV[8] == '1' and attempt < tonumber(f[2]) then
  end_lease(id, 'retry', failure, tonumber(ARGV[9]))
  local wait = math.min(BACKOFF_BASE * 2 ^ math.min(attempt - 1, 32), BACKOFF_MAX)
  requeue(id, NOW + wait)
  total('retried')
  return {'ok', 'queued'}
end
end_lease(id, 'failed', failure, tonumber(ARGV[9]))
finish(id, 'failed')
total('failed')
return {'ok', 'failed'}
