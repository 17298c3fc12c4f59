-- wrk script: Africa's Talking USSD sessions against /webhooks/africastalking/ussd.
-- Each connection walks whole sessions of the legal-help flow (six hops, the
-- last one opens a case), each session with its own id and caller number, so
-- the per-number rate limit and dedupe see realistic traffic.
local path = "/webhooks/africastalking/ussd"
local steps = { "", "1", "1*1", "1*1*1", "1*1*1*Station 5", "1*1*1*Station 5*0" }
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  session = 0
  step = 1
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

local function encode(s)
  return (s:gsub("[^%w%-_%.]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  if step == 1 then
    session = session + 1
  end
  local sid = string.format("LT%d-%d-%d", tid, session, math.random(1000000))
  if step == 1 then current_sid = sid end
  local number = string.format("+99655%03d%04d", tid, session % 10000)
  local body = "sessionId=" .. encode(current_sid) .. "&serviceCode=%2A384%23&phoneNumber=" .. encode(number)
    .. "&networkCode=43701&text=" .. encode(steps[step])
  step = step % #steps + 1
  return wrk.format(nil, path, nil, body)
end

function response(status, headers, body)
  if status ~= 200 then
    errors_seen = (errors_seen or 0) + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("requests: %d, non-2xx/errors: %d\n", summary.requests, summary.errors.status))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("latency p%g: %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("throughput: %.0f hops/s\n", summary.requests / (summary.duration / 1e6)))
end
