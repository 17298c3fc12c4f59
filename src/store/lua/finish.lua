-- Finish (ARGV[3] = '') or reschedule a claimed job, if the caller still
-- holds its lease. KEYS: 1 zset, 2 hash.
-- ARGV: 1 id, 2 attempt, 3 new due_ms or '', 4 new payload or '', 5 '1' to
-- replace the payload. Returns 1 when done, 0 when the lease was lost.
local v = redis.call('HGET', KEYS[2], ARGV[1])
if not v then
  return 0
end
local sep = string.find(v, '|', 1, true)
if string.sub(v, 1, sep - 1) ~= ARGV[2] then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
local payload = string.sub(v, sep + 1)
if ARGV[5] == '1' then
  payload = ARGV[4]
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. payload)
return 1
