-- A shared rate (GCRA) for one key: take a slot now, or say how long to wait.
-- KEYS: 1 the rate key, 2 (optional) a set to add a member to first, in
-- the same (global) slot: a lawyer's index of the cases offered to her.
-- ARGV: 1 now_ms, 2 interval_ms, 3 burst, with a set: 4 the member, 5 the
-- set's lifetime ms (renewed).
-- Returns 0 (taken) or the ms to wait before trying again.
if KEYS[2] then
  redis.call('SADD', KEYS[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local tolerance = t * (tonumber(ARGV[3]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  tat = now
end
if tat - now > tolerance then
  return tat - now - tolerance
end
local new_tat = tat + t
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now + 1))
return 0
