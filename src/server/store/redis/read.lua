-- ARGV[5..]: what ('get', 'page', 'counts', 'types', 'workers' or
-- 'stats'), then its arguments: get: id; page: status ('' for any), type
-- ('' for any), priority (0-2, '' for any), limit, before (a seq, '' for
-- the newest).
advance(100)
local what = ARGV[5]
-- As admin.rs's MAX_SCAN.
local MAX_SCAN = 10000
local STATUSES = {'scheduled', 'queued', 'claimed', 'completed', 'failed', 'cancelled', 'expired'}
if what == 'get' then
  if redis.call('EXISTS', tk(ARGV[6])) == 0 then return {} end
  return view(ARGV[6])
elseif what == 'page' then
  -- As queue.rs's page: the index that fits, newest first; a page ends at
  -- `limit` tasks or MAX_SCAN looked at, with the cursor where it stopped.
  local status, ty, prio, limit = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
  local top = '+inf'
  if ARGV[10] ~= '' then top = '(' .. ARGV[10] end
  local out, scanned, last, next = {}, 0, nil, ''
  -- Looks at one candidate; false once the page is full.
  local function consider(id, seq)
    if #out >= limit or scanned >= MAX_SCAN then
      next = last
      return false
    end
    scanned = scanned + 1
    last = seq
    if prio == '' or redis.call('HGET', tk(id), 'prio') == prio then out[#out + 1] = view(id) end
    return true
  end
  local batch = limit + 1
  if prio ~= '' then batch = 500 end
  if status ~= '' or ty == '' then
    local key = B .. ':all'
    if status ~= '' then key = B .. ':s:' .. status end
    if status ~= '' and ty ~= '' then key = key .. ':' .. ty end
    -- In batches, so that a filter without an index reads no more than it needs.
    while true do
      local r = redis.call('ZREVRANGEBYSCORE', key, top, '-inf', 'WITHSCORES', 'LIMIT', 0, batch)
      local full = true
      for i = 1, #r, 2 do
        if not consider(r[i], tonumber(r[i + 1])) then
          full = false
          break
        end
      end
      if not full or #r < batch * 2 then break end
      top = '(' .. r[#r]
    end
  else
    -- A type in any status: the newest of each status, merged.
    local cands = {}
    local scan = limit + 1
    if prio ~= '' then scan = MAX_SCAN + 1 end
    for _, s in ipairs(STATUSES) do
      local key = B .. ':s:' .. s .. ':' .. ty
      local r = redis.call('ZREVRANGEBYSCORE', key, top, '-inf', 'WITHSCORES', 'LIMIT', 0, scan)
      for i = 1, #r, 2 do cands[#cands + 1] = {r[i], tonumber(r[i + 1])} end
    end
    table.sort(cands, function(x, y) return x[2] > y[2] end)
    for _, c in ipairs(cands) do
      if not consider(c[1], c[2]) then break end
    end
  end
  return {tostring(next), out}
elseif what == 'types' then
  return {redis.call('HGETALL', B .. ':tcounts'), redis.call('SMEMBERS', B .. ':paused')}
elseif what == 'workers' then
  local out = {}
  local ws = redis.call('ZREVRANGEBYSCORE', B .. ':workers', '+inf', NOW - SEEN_WITHIN_MS, 'WITHSCORES')
  for i = 1, #ws, 2 do
    local f = redis.call('HMGET', B .. ':w:' .. ws[i], 'running', 'completed', 'failed')
    out[#out + 1] = {ws[i], ws[i + 1], f[1] or 0, f[2] or 0, f[3] or 0}
  end
  return out
elseif what == 'stats' then
  -- The oldest claimable task: the first of each priority, in {p}:ready
  -- and in the claimable tasks of each paused type.
  local oldest = -1
  local function first_of(key)
    for p = 0, 2 do
      local r = redis.call('ZRANGEBYSCORE', key, p * PRIO, '(' .. ((p + 1) * PRIO), 'LIMIT', 0, 1)
      if r[1] then
        local at = tonumber(redis.call('HGET', tk(r[1]), 'ready_at'))
        if at and (oldest < 0 or at < oldest) then oldest = at end
      end
    end
  end
  first_of(B .. ':ready')
  for _, ty in ipairs(redis.call('SMEMBERS', B .. ':paused')) do first_of(B .. ':ready:' .. ty) end
  local minute = math.floor(NOW / 60000)
  local tp = {}
  for m = minute - 59, minute do
    local f = redis.call('HMGET', B .. ':tp:' .. m, 'completed', 'failed')
    tp[#tp + 1] = {m * 60000, f[1] or 0, f[2] or 0}
  end
  return {redis.call('HGETALL', B .. ':counts'), redis.call('HGETALL', B .. ':pcounts'),
    oldest, NOW, tp}
end
return {redis.call('HGETALL', B .. ':counts'), redis.call('HGETALL', B .. ':totals')}
