-- The store's sentinel: a key written once and never expired, read on
-- every store watch (`Store::watch`). If it is gone, Redis lost what it
-- held (restarted without persistence, flushed, failed over to an empty
-- replica): write it again and say so.
--
-- KEYS: 1 the sentinel. ARGV: 1 the value to write when it is missing.
-- Returns {1, value} when it was there, {0, ARGV[1]} when it was written now.
local v = redis.call('GET', KEYS[1])
if v then
  return {1, v}
end
redis.call('SET', KEYS[1], ARGV[1])
return {0, ARGV[1]}
