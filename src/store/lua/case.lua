-- Shared helpers, prepended to commit.lua and record_case.lua.
--
-- Queue keys start at index kq: outbox zset, outbox hash, timers zset,
-- timers hash. A job is four args: queue, id, due_ms, payload.
local function add_jobs(kq, a, n)
  for j = 0, n - 1 do
    local queue = ARGV[a + j * 4]
    local id = ARGV[a + j * 4 + 1]
    local zkey, hkey
    if queue == 'outbox' then
      zkey, hkey = KEYS[kq], KEYS[kq + 1]
    else
      zkey, hkey = KEYS[kq + 2], KEYS[kq + 3]
    end
    redis.call('ZADD', zkey, ARGV[a + j * 4 + 2], id)
    redis.call('HSET', hkey, id, '0|' .. ARGV[a + j * 4 + 3])
  end
end

-- Record a case unless it exists. KEYS[kc] the case, KEYS[kc + 1] the set
-- of open cases, KEYS[kc + 2] the set of all cases, KEYS[kc + 2 + i] the
-- key of candidate code i. Args from a0:
-- case_id, data, ncodes, njobs, codes..., jobs...
-- Returns the case's code, or false when every candidate code is taken
-- (and then nothing was written).
local function create_case(kc, kq, a0)
  local case_key = KEYS[kc]
  if redis.call('EXISTS', case_key) == 1 then
    return redis.call('HGET', case_key, 'code')
  end
  local case_id = ARGV[a0]
  local ncodes = tonumber(ARGV[a0 + 2])
  local njobs = tonumber(ARGV[a0 + 3])
  local code = false
  for i = 1, ncodes do
    local code_key = KEYS[kc + 2 + i]
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
  redis.call('SADD', KEYS[kc + 1], case_id)
  redis.call('SADD', KEYS[kc + 2], case_id)
  add_jobs(kq, a0 + 4 + ncodes, njobs)
  return code
end
