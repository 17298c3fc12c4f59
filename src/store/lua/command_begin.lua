-- Shared by case_command.lua and lawyer_command.lua (prepended to each):
-- the start of round trip one of a lawyer's command. Was this delivery
-- handled (its mark), and her rate limit (GCRA; only a delivery's first
-- arrival spends a slot, `<mark>:seen` remembers it for `seen_ms`).
-- Returns nil to go on, or the script's answer: {1} (handled before) |
-- {2, retry_after_ms}.
local function command_begin(mark, rate, now, interval, burst, seen_ms)
  if redis.call('EXISTS', mark) == 1 then
    return {1}
  end
  if redis.call('SET', mark .. ':seen', '1', 'NX', 'PX', seen_ms) then
    local tolerance = interval * (burst - 1)
    local tat = tonumber(redis.call('GET', rate) or '0')
    if tat < now then
      tat = now
    end
    if tat - now > tolerance then
      redis.call('DEL', mark .. ':seen')
      return {2, tostring(tat - now - tolerance)}
    end
    local new_tat = tat + interval
    redis.call('SET', rate, string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))
  end
  return nil
end
