-- ARGV[5..]: id ('' for a new one), type, parameters (JSON), priority (0-2),
-- max_attempts, timeout_seconds ('' for none), delay (ms), id prefix.
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
redis.call('HSET', tk(id), 'id', id, 'type', ARGV[6], 'params', ARGV[7], 'prio', ARGV[8],
  'max', ARGV[9], 'created', NOW, 'seq', seq, 'status', 'queued', 'attempt', 0)
if ARGV[10] ~= '' then redis.call('HSET', tk(id), 'timeout', ARGV[10]) end
redis.call('ZADD', B .. ':all', seq, id)
redis.call('HINCRBY', B .. ':counts', 'queued', 1)
total('enqueued')
queue_at(id, NOW + tonumber(ARGV[11]))
return {1, view(id)}
