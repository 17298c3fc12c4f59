-- Change a case if its version is unchanged.
-- KEYS: 1 case, 2 open-case set, 3 the case's code key, 4-7 queues, 8
-- (optional) the mark of what asked for the change (a lawyer's delivery).
-- ARGV: 1 case id, 2 expected version, 3 new data, 4 code quarantine ms
-- ('' to keep the case open), 5 number of jobs, then the jobs (4 args
-- each), then with a mark its value and ttl ms ('' for none).
-- Returns 1 when changed (or when the mark exists: this delivery's change
-- was made before, nothing is written), 0 when the version moved on (or
-- no such case).
if KEYS[8] and redis.call('EXISTS', KEYS[8]) == 1 then
  return 1
end
local v = redis.call('HGET', KEYS[1], 'v')
if not v or v ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', tonumber(v) + 1, 'd', ARGV[3])
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'st') == 'open' then
  redis.call('HSET', KEYS[1], 'st', 'closed')
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
local nj = tonumber(ARGV[5])
add_jobs(4, 6, nj)
if KEYS[8] then
  local am = 6 + nj * 4
  if ARGV[am + 1] == '' then
    redis.call('SET', KEYS[8], ARGV[am])
  else
    redis.call('SET', KEYS[8], ARGV[am], 'PX', ARGV[am + 1])
  end
end
return 1
