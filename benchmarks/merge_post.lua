-- wrk script: every request POSTs ~200 bytes of metadata, merged into one of
-- 10,000 keys per thread (new at first, then existing ones).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "/bench/merge/"
  padding = string.rep("x", 120)
end

request = function()
  counter = counter + 1
  local path = prefix .. id .. "-" .. (counter % 10000)
  return wrk.format("POST", path, {["Content-Type"] = "application/json"},
                    '{"metadata":{"n":' .. counter .. ',"tag":"bench","score":0.5,"labels":["a","b"],"pad":"' ..
                    padding .. '"}}')
end
