-- Change a case if its version is unchanged.
-- KEYS: 1 case, 2 open-case set, 3 the case's code key, 4-7 queues,
-- 8 (when the case has one) its alias's code key.
-- ARGV: 1 case id, 2 expected version, 3 new data, 4 code quarantine ms
-- ('' to keep the case open), 5 number of jobs, then the jobs (4 args each).
-- Returns 1 when changed, 0 when the version moved on (or no such case).
local v = redis.call('HGET', KEYS[1], 'v')
if not v or v ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', tonumber(v) + 1, 'd', ARGV[3])
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'st') == 'open' then
  redis.call('HSET', KEYS[1], 'st', 'closed')
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
  if KEYS[8] then
    redis.call('PEXPIRE', KEYS[8], ARGV[4])
  end
end
add_jobs(4, 6, tonumber(ARGV[5]))
return 1
