-- wrk script: GET /ocsp/<base64> for the paths in the file named by the
-- environment variable OCSP_PATHS (ocspreq's get.txt). Each thread starts
-- at its own offset; requests are formatted once, in init.
local reqs = {}
local i = 0

-- setup runs in the main state: number the threads, so that each starts
-- at its own offset.
local threads = 0
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

function request()
  i = i % #reqs + 1
  return reqs[i]
end
