-- Round trip one of a lawyer's command without a code, beside her case
-- index (the global slot): was this delivery handled (its mark), her rate
-- limit (GCRA; only a delivery's first arrival spends a slot: both
-- `command_begin`, command_begin.lua), the mark
-- written now (a command whose only effect is its reply), a flag to write
-- (ON/OFF), and her index with, on one Redis, each case in it.
-- KEYS: 1 the delivery's mark, 2 her rate key, 3 her case index, then
-- (optional) the flag's key.
-- ARGV: 1 now_ms, 2 interval_ms, 3 burst, 4 seen window ms, 5 mark ttl ms
-- ('' to leave the mark to the case change), 6 what precedes a bucket
-- number in a case key ('<prefix>:{'; '' on a Redis Cluster, where her
-- cases live in other slots and are read apart; on one Redis they are
-- read here, undeclared keys like claim.lua's case code), 7 the flag:
-- '' none, 'del', or 'set' with 8 its value.
-- Returns {1} (handled before) | {2, retry_after_ms} | {3, then per
-- member: on one Redis (its open cases only; members whose case is gone or
-- closed are removed) member, code, version, data, alias; on a cluster
-- member, ''}
local early = command_begin(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), ARGV[4])
if early then
  return early
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[5])
end
if ARGV[7] == 'set' then
  redis.call('SET', KEYS[4], ARGV[8])
elseif ARGV[7] == 'del' then
  redis.call('DEL', KEYS[4])
end
local out = {3}
local members = redis.call('SMEMBERS', KEYS[3])
table.sort(members)
for _, m in ipairs(members) do
  if ARGV[6] == '' then
    table.insert(out, m)
    table.insert(out, '')
  else
    local b, id = string.match(m, '^(%d+):(.+)$')
    local f = {false}
    if b then
      f = redis.call('HMGET', ARGV[6] .. b .. '}:c:' .. id, 'code', 'v', 'd', 'st', 'alias')
    end
    if f[1] and (f[4] or 'open') == 'open' then
      table.insert(out, m)
      table.insert(out, f[1])
      table.insert(out, f[2] or '0')
      table.insert(out, f[3] or '')
      table.insert(out, f[5] or '')
    else
      -- Gone or closed: no longer in her index.
      redis.call('SREM', KEYS[3], m)
    end
  end
end
return out
