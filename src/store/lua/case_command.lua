-- Round trip one of a lawyer's command with a case code, in the code's
-- bucket: was this delivery handled (its mark), her rate limit (GCRA, in
-- this bucket; only a delivery's first arrival spends a slot: both
-- `command_begin`, command_begin.lua), and the case of the code.
-- KEYS: 1 the delivery's mark, 2 her rate key, 3 the code's key.
-- ARGV: 1 now_ms, 2 interval_ms, 3 burst, 4 seen window ms, 5 the case key
-- of the bucket without the id ('<prefix>:{b}:c:'; same hash tag).
-- Returns {1} (handled before) | {2, retry_after_ms} | {3} (no such case)
-- | {3, id, code, version, data, status}
local early = command_begin(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), ARGV[4])
if early then
  return early
end
local id = redis.call('GET', KEYS[3])
if not id or string.sub(id, 1, 1) == '~' then
  return {3}
end
local f = redis.call('HMGET', ARGV[5] .. id, 'code', 'v', 'd', 'st', 'alias')
if not f[1] then
  return {3}
end
return {3, id, f[1], f[2] or '0', f[3] or '', f[4] or 'open', f[5] or ''}
