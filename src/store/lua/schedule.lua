-- Add or replace jobs. KEYS: 1 zset, 2 hash. ARGV: (id, due_ms, payload)*
for i = 1, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], '0|' .. ARGV[i + 2])
end
return #ARGV / 3
