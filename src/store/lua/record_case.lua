-- Record a case on its own (spool replay).
-- KEYS: 1-4 queues (see add_jobs), 5 case, 6 open-case set, 7 all-case
-- set, 8… codes.
-- ARGV: the case args of create_case.
-- Returns {1, code} | {2} when no code is free.
local c = create_case(5, 1, 1)
if not c then
  return {2}
end
return {1, c}
