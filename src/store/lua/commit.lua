-- Round trip two: compare-and-set the session, record a case with its jobs,
-- schedule other jobs, write small values, cache the reply. All or nothing.
--
-- KEYS: 1 session, 2 delivery (dedupe), 3 version sequence, 4-7 queues
-- (see add_jobs), then one key per small value, then (with a case) the case,
-- the open-case set, the all-case set and one key per candidate code.
-- ARGV: 1 expected version ('0': none), 2 'save' | 'delete', 3 data,
-- 4 ttl_ms, 5 reply ("<end>\n<text>"), 6 dedupe ttl_ms, 7 number of jobs,
-- 8 number of values, 9 '1' with a case, 10 the delivery's suffix when it
-- is one of the session's own (see begin.lua; its reply then goes in the
-- session hash, not in KEYS[2]), else ''; then the jobs (4 args each), the
-- values (value, ttl_ms or '', '1' to delete: 3 args each), the case args.
-- An ended session keeps only its last reply (field r) for the dedupe TTL.
-- With a dedupe scope (see begin.lua), its key is the last of KEYS.
-- Returns {1, code-or-''} | {0, cached reply of this delivery or nil} | {2}
local dkey = KEYS[2]
if ARGV[#ARGV] == 'scoped' then
  dkey = dkey .. ':' .. (redis.call('GET', KEYS[#KEYS]) or '0')
end
local fold = ARGV[10]
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then
  if fold ~= '' then
    local r = redis.call('HGET', KEYS[1], 'r')
    local mine = fold .. '\n'
    if r and string.sub(r, 1, #mine) == mine then
      return {0, string.sub(r, #mine + 1)}
    end
    return {0, false}
  end
  return {0, redis.call('GET', dkey)}
end
local njobs = tonumber(ARGV[7])
local nkv = tonumber(ARGV[8])
local a_kv = 11 + njobs * 4
local code = ''
if ARGV[9] == '1' then
  local c = create_case(8 + nkv, 4, a_kv + nkv * 3)
  if not c then
    return {2}
  end
  code = c
end
local reply = code .. '\n' .. ARGV[5]
if ARGV[2] == 'save' then
  local v = redis.call('INCR', KEYS[3])
  if fold ~= '' then
    redis.call('HSET', KEYS[1], 'v', v, 'd', ARGV[3], 'r', fold .. '\n' .. reply)
    redis.call('HDEL', KEYS[1], 'sk')
  else
    redis.call('HSET', KEYS[1], 'v', v, 'd', ARGV[3])
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('DEL', KEYS[1])
  if fold ~= '' then
    redis.call('HSET', KEYS[1], 'r', fold .. '\n' .. reply)
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
  end
end
add_jobs(4, 11, njobs)
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
if fold == '' then
  redis.call('SET', dkey, reply, 'PX', ARGV[6])
end
return {1, code}
