-- Record a case on its own (spool replay). KEYS/ARGV as create_case with
-- k0 = 1, a0 = 1. Returns {1, code} | {2} when no code is free.
local c = create_case(1, 1)
if not c then
  return {2}
end
return {1, c}
