-- Shared by commit.lua and record_case.lua: record a case unless it exists.
-- Keys from index k0: case, open-set, outbox zset, outbox hash, timers zset,
-- timers hash, then one key per candidate code.
-- Args from index a0: case_id, data, ncodes, njobs, codes..., then per job:
-- queue, id, due_ms, payload.
-- Returns the case's code, or false when every candidate code is taken
-- (and then nothing was written).
local function create_case(k0, a0)
  local case_key = KEYS[k0]
  if redis.call('EXISTS', case_key) == 1 then
    return redis.call('HGET', case_key, 'code')
  end
  local case_id = ARGV[a0]
  local ncodes = tonumber(ARGV[a0 + 2])
  local njobs = tonumber(ARGV[a0 + 3])
  local code = false
  for i = 1, ncodes do
    local code_key = KEYS[k0 + 5 + i]
    if redis.call('EXISTS', code_key) == 0 then
      code = ARGV[a0 + 3 + i]
      redis.call('SET', code_key, case_id)
      break
    end
  end
  if not code then
    return false
  end
  redis.call('HSET', case_key, 'code', code, 'v', 1, 'd', ARGV[a0 + 1], 'st', 'open')
  redis.call('SADD', KEYS[k0 + 1], case_id)
  local base = a0 + 3 + ncodes
  for j = 0, njobs - 1 do
    local queue = ARGV[base + j * 4 + 1]
    local id = ARGV[base + j * 4 + 2]
    local zkey, hkey
    if queue == 'outbox' then
      zkey, hkey = KEYS[k0 + 2], KEYS[k0 + 3]
    else
      zkey, hkey = KEYS[k0 + 4], KEYS[k0 + 5]
    end
    redis.call('ZADD', zkey, ARGV[base + j * 4 + 3], id)
    redis.call('HSET', hkey, id, '0|' .. ARGV[base + j * 4 + 4])
  end
  return code
end
