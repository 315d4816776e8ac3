-- ARGV[5]: worker id; ARGV[6..]: task id, attempt, in pairs. Puts back
-- the tasks a claim handed out whose answer never reached its client (the
-- connection closed first), as a claim cancel does, without counting an
-- attempt; only those the worker still holds as that attempt. Returns how
-- many it put back.
advance(100)
local worker = ARGV[5]
local released = 0
for i = 6, #ARGV - 1, 2 do
  local id, attempt = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', tk(id), 'status', 'worker', 'attempt')
  if f[1] == 'claimed' and f[2] == worker and f[3] == attempt then
    put_back(id, f[3])
    released = released + 1
  end
end
total('released', released)
return released
