-- Round trip one: dedupe, rate limit (GCRA), load the session.
-- KEYS: 1 delivery (dedupe), 2 rate, 3 session, 4 (optional) scope value
-- ARGV: 1 now_ms, 2 interval_ms, 3 burst, 4 seen window ms, 5 the
-- delivery's suffix when it is one of the session's own (a USSD hop,
-- `<session>:<suffix>`), else ''.
-- A session's own delivery keeps its reply and its seen mark in the
-- session hash (field r: "<suffix>\n<reply>" of the last delivery; sk: the
-- delivery whose rate slot was spent), not in keys of their own: only the
-- latest hop of a session is retried (a copy of an earlier cumulative hop
-- is answered with the latest reply). Other deliveries use KEYS[1] (and
-- KEYS[1]:seen).
-- With a scope key, the delivery key is "<delivery>:<scope value or 0>".
-- Only the first arrival of a delivery spends a rate-limit slot: copies
-- the aggregator sends while the first is still being handled (before
-- commit caches its reply) must not use up her limit.
-- Returns {1, cached_reply} | {2, retry_after_ms} | {3} | {3, version, data}
local now = tonumber(ARGV[1])
local function spend()
  local t = tonumber(ARGV[2])
  local tolerance = t * (tonumber(ARGV[3]) - 1)
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then
    tat = now
  end
  if tat - now > tolerance then
    return tat - now - tolerance
  end
  local new_tat = tat + t
  redis.call('SET', KEYS[2], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))
  return false
end
local fold = ARGV[5]
if fold ~= '' then
  local f = redis.call('HMGET', KEYS[3], 'r', 'sk', 'v', 'd')
  if f[1] then
    local sep = string.find(f[1], '\n', 1, true)
    local last = string.sub(f[1], 1, sep - 1)
    if last == fold then
      return {1, string.sub(f[1], sep + 1)}
    end
    -- A cumulative hop (`:<steps>`) older than the latest: a stale copy
    -- of an earlier hop. It changes nothing and gets her latest screen.
    local mine, latest = tonumber(string.sub(fold, 2)), tonumber(string.sub(last, 2))
    if mine and latest and mine < latest then
      return {1, string.sub(f[1], sep + 1)}
    end
  end
  if f[2] ~= fold then
    local wait = spend()
    if wait then
      return {2, tostring(wait)}
    end
    redis.call('HSET', KEYS[3], 'sk', fold)
    if redis.call('PTTL', KEYS[3]) < 0 then
      redis.call('PEXPIRE', KEYS[3], ARGV[4])
    end
  end
  if f[3] then
    return {3, f[3], f[4]}
  end
  return {3}
end
local dkey = KEYS[1]
if KEYS[4] then
  dkey = dkey .. ':' .. (redis.call('GET', KEYS[4]) or '0')
end
local cached = redis.call('GET', dkey)
if cached then
  return {1, cached}
end
local first = redis.call('SET', dkey .. ':seen', '1', 'NX', 'PX', ARGV[4])
if first then
  local wait = spend()
  if wait then
    redis.call('DEL', dkey .. ':seen')
    return {2, tostring(wait)}
  end
end
local s = redis.call('HMGET', KEYS[3], 'v', 'd')
if s[1] then
  return {3, s[1], s[2]}
end
return {3}
