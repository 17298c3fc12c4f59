-- Change a case if its version is unchanged.
-- KEYS: 1 case, 2 open-case set, 3 the case's code key, 4-7 queues, then
-- (when the case has one) its alias's code key, then (optional) the mark of
-- what asked for the change (a lawyer's delivery).
-- ARGV: 1 case id, 2 expected version, 3 new data, 4 code quarantine ms
-- ('' to keep the case open), 5 number of jobs, then the jobs (4 args
-- each), then '1' with an alias key ('0' without), then with a mark its
-- value and ttl ms ('' for none).
-- Returns 1 when changed, 2 when the mark exists (this delivery's change
-- was made before, by another copy of it: nothing is written), 0 when the
-- version moved on (or no such case).
local nj = tonumber(ARGV[5])
local a = 6 + nj * 4
local alias_key = nil
local mark_key = nil
if ARGV[a] == '1' then
  alias_key = KEYS[8]
  mark_key = KEYS[9]
else
  mark_key = KEYS[8]
end
if mark_key and redis.call('EXISTS', mark_key) == 1 then
  return 2
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
  if alias_key then
    redis.call('PEXPIRE', alias_key, ARGV[4])
  end
end
add_jobs(4, 6, nj)
if mark_key then
  if ARGV[a + 2] == '' then
    redis.call('SET', mark_key, ARGV[a + 1])
  else
    redis.call('SET', mark_key, ARGV[a + 1], 'PX', ARGV[a + 2])
  end
end
return 1
