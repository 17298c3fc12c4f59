-- Finish (ARGV[3] = '') or reschedule a claimed job, if the caller still
-- holds its lease. KEYS: 1 zset, 2 hash, then small values to write first
-- (what a sent message leaves behind), in the job's bucket.
-- ARGV: 1 id, 2 attempt, 3 new due_ms or '', 4 new payload or '', 5 '1' to
-- replace the payload, then per small value: value, ttl_ms ('' for none,
-- '-' to delete). The values are written even when the lease was lost:
-- the work they record was done.
-- Returns 1 when done, 0 when the lease was lost.
for i = 3, #KEYS do
  local a = 6 + (i - 3) * 2
  if ARGV[a + 1] == '-' then
    redis.call('DEL', KEYS[i])
  elseif ARGV[a + 1] == '' then
    redis.call('SET', KEYS[i], ARGV[a])
  else
    redis.call('SET', KEYS[i], ARGV[a], 'PX', ARGV[a + 1])
  end
end
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
