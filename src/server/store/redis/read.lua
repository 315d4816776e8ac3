-- ARGV[5..]: what ('get', 'list' or 'counts'), then its arguments:
-- get: id; list: status ('' for any), type ('' for any), limit.
advance(100)
local what = ARGV[5]
if what == 'get' then
  if redis.call('EXISTS', tk(ARGV[6])) == 0 then return {} end
  return view(ARGV[6])
elseif what == 'list' then
  local status, ty, limit = ARGV[6], ARGV[7], tonumber(ARGV[8])
  local out = {}
  local from = 0
  while #out < limit do
    local ids = redis.call('ZREVRANGE', B .. ':all', from, from + 199)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      local f = redis.call('HMGET', tk(id), 'status', 'type')
      if f[1] and (status == '' or f[1] == status) and (ty == '' or f[2] == ty) then
        out[#out + 1] = view(id)
        if #out >= limit then break end
      end
    end
    from = from + 200
  end
  return out
end
return {redis.call('HGETALL', B .. ':counts'), redis.call('HGETALL', B .. ':totals')}
