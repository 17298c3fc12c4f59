-- Claim due jobs under a lease. KEYS: 1 zset, 2 hash.
-- ARGV: 1 now_ms, 2 lease_ms, 3 max, 4 (optional) the case key of the
-- bucket without the id ('<prefix>:{b}:c:'; same hash tag).
-- Each claimed job becomes due again at now + lease (re-claimed if the
-- worker dies) and its attempt count, also the lease token, goes up.
-- A message id made for a case of this bucket ends in '.c_<hex>'
-- (store::job_case): its case's code and alias are read here and returned
-- with it, so that sending it needs no read of its own (false: no such
-- case, or no alias).
-- Returns {{{id, attempt, due_ms, payload, code, alias}, ...}, next}: next is the
-- due time of the earliest job this call did not claim (false: none), so
-- the worker sleeps until then instead of polling.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
local mine = {}
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(ids) do
  local v = redis.call('HGET', KEYS[2], id)
  if v then
    local sep = string.find(v, '|', 1, true)
    local attempt = tonumber(string.sub(v, 1, sep - 1)) + 1
    local payload = string.sub(v, sep + 1)
    local due = redis.call('ZSCORE', KEYS[1], id)
    redis.call('HSET', KEYS[2], id, attempt .. '|' .. payload)
    redis.call('ZADD', KEYS[1], string.format('%d', until_ms), id)
    local code, alias = false, false
    local case = ARGV[4] and string.match(id, '^[^.]*%.[^.]*%.(c_%w+)$')
    if case then
      local f = redis.call('HMGET', ARGV[4] .. case, 'code', 'alias')
      code, alias = f[1], f[2]
    end
    out[#out + 1] = {id, attempt, due, payload, code, alias}
    mine[id] = true
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
local next_due = false
local head = redis.call('ZRANGE', KEYS[1], 0, #out, 'WITHSCORES')
for i = 1, #head, 2 do
  if not mine[head[i]] then
    next_due = head[i + 1]
    break
  end
end
return {out, next_due}
