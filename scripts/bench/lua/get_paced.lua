-- wrk script: like get.lua, but each connection waits OCSP_DELAY_MS
-- milliseconds (an integer: wrk's timer unit) between its answer and its
-- next request, so that c connections offer about c*1000/(delay+latency)
-- requests a second. wrk stays in C and costs far less CPU than a Go
-- generator at 20,000/s; the pacing is per connection, so a stalled answer
-- delays that connection's next request (its latency is still counted).
local reqs = {}
local i = 0
local threads = 0
local wait = tonumber(os.getenv("OCSP_DELAY_MS") or "3")

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(os.getenv("OCSP_PATHS")) do
    reqs[#reqs + 1] = wrk.format("GET", line)
  end
  i = (id or 0) * 7919 % #reqs
end

function delay()
  return wait
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
