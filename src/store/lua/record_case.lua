-- Record a case on its own (spool replay).
-- KEYS: 1-4 queues (see add_jobs), 5 case, 6 open-case set, 7 all-case
-- set, 8… codes.
-- ARGV: 1 a lease mark ('' for none), then the case args of create_case,
-- then (last) the code quarantine in ms.
-- With a mark, the first candidate is the code the caller was shown while
-- Redis was down: when this lease still holds it, the lease ends here and
-- create_case takes it; when it is free, create_case takes it too. When
-- the case exists already under another code (the request that timed out
-- reached Redis after all, as a frozen Redis thawed) and the lease still
-- holds the shown code, the shown code becomes the case's alias: both
-- codes name the case, the one she was shown and the one a retry of her
-- request (answered from the reply cache) or an offer may have carried.
-- With the mark '!' (a case Redis had acknowledged and lost, recorded
-- again: Store::restore_case), the first candidate is the code its caller
-- was given; a lease that an instance took on it since (it looked free in
-- the store that lost the case) gives way: a code she was shown outranks
-- a code held in reserve. The lessee's next renewal drops it (lease.lua
-- keeps only codes that hold its mark).
-- Returns {1, code} | {3, shown} when the shown code became the case's
-- alias here | {2} when no code is free.
local mark = ARGV[1]
if mark == '!' then
  local v = redis.call('GET', KEYS[8])
  if v and string.sub(v, 1, 1) == '~' and redis.call('EXISTS', KEYS[5]) == 0 then
    redis.call('DEL', KEYS[8])
  end
elseif mark ~= '' then
  local shown = ARGV[6]
  local holder = redis.call('GET', KEYS[8])
  if redis.call('EXISTS', KEYS[5]) == 0 then
    if holder == mark then
      redis.call('DEL', KEYS[8])
    end
  elseif holder == ARGV[2] then
    -- The shown code names this case already (a replay run twice).
    return {1, shown}
  elseif holder == mark then
    if redis.call('HGET', KEYS[5], 'st') == 'open' then
      redis.call('SET', KEYS[8], ARGV[2])
    else
      redis.call('SET', KEYS[8], ARGV[2], 'PX', ARGV[#ARGV])
    end
    redis.call('HSET', KEYS[5], 'alias', shown)
    return {3, shown}
  end
end
local c = create_case(5, 1, 2)
if not c then
  return {2}
end
return {1, c}
