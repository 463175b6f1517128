-- wrk script: sends temBoard 9.x requests signed beforehand by
-- scripts/presign.py, each once (a replay would be refused with a 409).
-- Every wrk thread takes every Nth line of the file.
--   wrk ... -s scripts/signed_wrk.lua https://localhost:PORT/PATH -- FILE THREADS PORT METHOD PATH
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local reqs = {}
local i = 0

function init(args)
  local file, threads, port, method, path = args[1], tonumber(args[2]), args[3], args[4], args[5]
  local k = 0
  for line in io.lines(file) do
    if k % threads == tid then
      local date, id, sig = line:match("^(%S+) (%S+) (%S+)$")
      reqs[#reqs + 1] = wrk.format(method, path, {
        ["Host"] = "localhost:" .. port,
        ["X-TemBoard-Date"] = date,
        ["X-TemBoard-Request-Id"] = id,
        ["X-TemBoard-User"] = "bench",
        ["X-TemBoard-Signature"] = sig,
      })
    end
    k = k + 1
  end
end

function request()
  i = i + 1
  if i > #reqs then
    i = 1 -- out of signed requests: the replays show as non-2xx answers
  end
  return reqs[i]
end
