-- The case a code names, in one round trip. KEYS: 1 the code's key.
-- ARGV: 1 the case key of the code's bucket without the id
-- ('<prefix>:{b}:c:'); the case key is in the code's slot (same hash tag).
-- Returns false (no case: free, or leased as '~instance') or
-- {id, code, version, data, status, alias ('' for none)}.
local id = redis.call('GET', KEYS[1])
if not id or string.sub(id, 1, 1) == '~' then
  return false
end
local f = redis.call('HMGET', ARGV[1] .. id, 'code', 'v', 'd', 'st', 'alias')
if not f[1] then
  return false
end
return {id, f[1], f[2] or '0', f[3] or '', f[4] or 'open', f[5] or ''}
