-- Round trip two: compare-and-set the session, record a case with its jobs,
-- cache the reply for retries. All or nothing.
-- KEYS: 1 session, 2 dedupe, 3 version sequence, then (with a case) the
-- case keys of create_case from index 4.
-- ARGV: 1 expected version ('0': none), 2 'save' | 'delete', 3 data,
-- 4 ttl_ms, 5 reply ("<end>\n<text>"), 6 dedupe ttl_ms, 7 '1' with a case,
-- then the case args of create_case from index 8.
-- Returns {1, code-or-''} | {0, cached reply of this delivery or nil} | {2}
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then
  return {0, redis.call('GET', KEYS[2])}
end
local code = ''
if ARGV[7] == '1' then
  local c = create_case(4, 8)
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
redis.call('SET', KEYS[2], code .. '\n' .. ARGV[5], 'PX', ARGV[6])
return {1, code}
