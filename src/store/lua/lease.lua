-- Hold case codes for one instance, so that it may show them while Redis
-- is down. A leased code's key holds the lease mark ('~' .. instance id)
-- with a TTL instead of a case id; case recording (create_case) skips any
-- code whose key exists, so it skips leased codes as it skips open and
-- quarantined ones.
--
-- KEYS: the code keys (one bucket): first the nkeep codes held now, then
-- the candidates.
-- ARGV: 1 lease mark, 2 ttl ms, 3 nkeep, 4 how many to hold in all.
-- Returns the indexes (into KEYS) of the codes held.
local mark, ttl = ARGV[1], ARGV[2]
local nkeep, target = tonumber(ARGV[3]), tonumber(ARGV[4])
local held = {}
for i = 1, nkeep do
  local v = redis.call('GET', KEYS[i])
  -- Ours, or free again (a lost lease nobody took): hold it again.
  if v == mark or not v then
    redis.call('SET', KEYS[i], mark, 'PX', ttl)
    held[#held + 1] = i
  end
end
for i = nkeep + 1, #KEYS do
  if #held >= target then
    break
  end
  if redis.call('SET', KEYS[i], mark, 'PX', ttl, 'NX') then
    held[#held + 1] = i
  end
end
return held
