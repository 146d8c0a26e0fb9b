-- wrk script: POST /ocsp with the DER requests of the file named by the
-- environment variable OCSP_HEX (ocspreq's post.hex or nonce.hex, one hex
-- request a line), as application/ocsp-request. Requests are formatted
-- once, in init.
local reqs = {}
local i = 0
local headers = { ["Content-Type"] = "application/ocsp-request" }

local function unhex(h)
  return (h:gsub("..", function(c) return string.char(tonumber(c, 16)) end))
end

-- setup runs in the main state: number the threads, so that each starts
-- at its own offset.
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(os.getenv("OCSP_HEX")) do
    reqs[#reqs + 1] = wrk.format("POST", "/ocsp", headers, unhex(line))
  end
  i = (id or 0) * 7919 % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
