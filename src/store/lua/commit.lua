-- Round trip two: compare-and-set the session, record a case with its jobs,
-- schedule other jobs, write small values, cache the reply. All or nothing.
--
-- KEYS: 1 session, 2 delivery (dedupe), 3 version sequence, 4-7 queues
-- (see add_jobs), then one key per small value, then (with a case) the case,
-- the open-case set, the all-case set and one key per candidate code.
-- ARGV: 1 expected version ('0': none), 2 'save' | 'delete', 3 data,
-- 4 ttl_ms, 5 reply ("<end>\n<text>"), 6 dedupe ttl_ms, 7 number of jobs,
-- 8 number of values, 9 '1' with a case; then the jobs (4 args each), the
-- values (value, ttl_ms or '', '1' to delete: 3 args each), the case args.
-- With a dedupe scope (see begin.lua), its key is the last of KEYS.
-- Returns {1, code-or-''} | {0, cached reply of this delivery or nil} | {2}
local dkey = KEYS[2]
if ARGV[#ARGV] == 'scoped' then
  dkey = dkey .. ':' .. (redis.call('GET', KEYS[#KEYS]) or '0')
end
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then
  return {0, redis.call('GET', dkey)}
end
local njobs = tonumber(ARGV[7])
local nkv = tonumber(ARGV[8])
local a_kv = 10 + njobs * 4
local code = ''
if ARGV[9] == '1' then
  local c = create_case(8 + nkv, 4, a_kv + nkv * 3)
  if not c then
    return {2}
  end
  code = c
end
if ARGV[2] == 'save' then
  local v = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[1], 'v', v, 'd', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
add_jobs(4, 10, njobs)
for i = 0, nkv - 1 do
  local key = KEYS[8 + i]
  if ARGV[a_kv + i * 3 + 2] == '1' then
    redis.call('DEL', key)
  elseif ARGV[a_kv + i * 3 + 1] == '' then
    redis.call('SET', key, ARGV[a_kv + i * 3])
  else
    redis.call('SET', key, ARGV[a_kv + i * 3], 'PX', ARGV[a_kv + i * 3 + 1])
  end
end
redis.call('SET', dkey, code .. '\n' .. ARGV[5], 'PX', ARGV[6])
return {1, code}
