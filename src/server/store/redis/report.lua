-- ARGV[5..]: outcomes of six: 'complete' or 'fail', id, worker ('' for any),
-- result or failure (JSON), retryable ('1' or ''), duration ms ('' for none).
advance(100)
local answers = {}
for i = 5, #ARGV, 6 do
  local id, worker, payload, duration = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 5])
  if ARGV[i] == 'complete' then
    answers[#answers + 1] = complete(id, worker, payload, duration)
  else
    answers[#answers + 1] = fail(id, worker, payload, ARGV[i + 4], duration)
  end
end
return answers
