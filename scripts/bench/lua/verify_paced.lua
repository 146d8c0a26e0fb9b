-- wrk script (paced): POST /api/v1/verify with the JSON bodies of the file named by
-- the environment variable VERIFY_BODIES (one request body a line, as
-- written by scripts/bench/verifyload prepare), the API key of
-- VERIFY_KEY. Requests are formatted once, in init; each thread starts at
-- its own offset.
local reqs = {}
local i = 0

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("VERIFY_KEY"),
  }
  for line in io.lines(os.getenv("VERIFY_BODIES")) do
    reqs[#reqs + 1] = wrk.format("POST", "/api/v1/verify", headers, line)
  end
  i = (id or 0) * 7919 % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

-- Each connection waits VERIFY_DELAY_MS milliseconds after an answer
-- before its next request: with C connections the offered rate is about
-- C / (delay + latency), a fixed load instead of as fast as possible.
local delay_ms = tonumber(os.getenv("VERIFY_DELAY_MS") or "0")
function delay()
  return delay_ms
end
