-- Record a case on its own (spool replay).
-- KEYS: 1-4 queues (see add_jobs), 5 case, 6 open-case set, 7 all-case
-- set, 8… codes.
-- ARGV: 1 a lease mark ('' for none), then the case args of create_case.
-- With a mark, the first candidate is the code the caller was shown while
-- Redis was down: when this lease still holds it, the lease ends here and
-- create_case takes it; when it is free, create_case takes it too.
-- Returns {1, code} | {2} when no code is free.
if ARGV[1] ~= '' and redis.call('EXISTS', KEYS[5]) == 0
    and redis.call('GET', KEYS[8]) == ARGV[1] then
  redis.call('DEL', KEYS[8])
end
local c = create_case(5, 1, 2)
if not c then
  return {2}
end
return {1, c}
