-- ARGV[5..]: id ('' for a new one), type, parameters (JSON), priority (0-2),
-- max_attempts, timeout_seconds ('' for none), delay (ms), id prefix,
-- run_at (ms, '' for none), expires_at (ms, '' for none).
-- Returns {created (0/1), view}.
advance(100)
local id = ARGV[5]
if id ~= '' and redis.call('EXISTS', tk(id)) == 1 then return {0, view(id)} end
local seq = redis.call('INCR', B .. ':seq')
if id == '' then
  id = ARGV[12] .. seq
  while redis.call('EXISTS', tk(id)) == 1 do
    seq = redis.call('INCR', B .. ':seq')
    id = ARGV[12] .. seq
  end
end
local at = NOW + tonumber(ARGV[11])
if ARGV[13] ~= '' then at = math.max(tonumber(ARGV[13]), NOW) end
local status = 'queued'
if at > NOW then status = 'scheduled' end
redis.call('HSET', tk(id), 'id', id, 'type', ARGV[6], 'params', ARGV[7], 'prio', ARGV[8],
  'max', ARGV[9], 'created', NOW, 'seq', seq, 'status', status, 'attempt', 0)
if ARGV[10] ~= '' then redis.call('HSET', tk(id), 'timeout', ARGV[10]) end
if ARGV[14] ~= '' then redis.call('HSET', tk(id), 'exp_at', ARGV[14]) end
redis.call('ZADD', B .. ':all', seq, id)
place(id, status, true, {ARGV[6], ARGV[8], seq})
total('enqueued')
if ARGV[14] ~= '' and tonumber(ARGV[14]) <= NOW then
  redis.call('HSET', tk(id), 'ready_at', at)
  expire_waiting(id)
else
  queue_at(id, at, false)
end
return {1, view(id)}
