-- The store's sentinel: a key written once and never expired, read on
-- every store watch (`Store::watch`). If it is gone, Redis lost what it
-- held (restarted without persistence, flushed, failed over to an empty
-- replica): write it again and say so. Beside it, a heartbeat that only
-- ever grows (the largest wall-clock time any instance wrote): read back
-- smaller than an instance last left it, Redis went back to an older
-- copy of its data (a snapshot, a replica that lacked the last writes).
--
-- KEYS: 1 the sentinel, 2 its heartbeat. ARGV: 1 the value to write when
-- the sentinel is missing, 2 now (ms).
-- Returns {1, value, heartbeat read} when the sentinel was there,
-- {0, ARGV[1], heartbeat read} when it was written now ('0': no heartbeat).
-- Anything but a number there (written by hand) reads as 0.
local t = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if tonumber(ARGV[2]) > t then
  redis.call('SET', KEYS[2], ARGV[2])
end
t = string.format('%d', t)
local v = redis.call('GET', KEYS[1])
if v then
  return {1, v, t}
end
redis.call('SET', KEYS[1], ARGV[1])
return {0, ARGV[1], t}
