-- wrk script: every request POSTs metadata to a new key.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "/bench/w/"
end

request = function()
  counter = counter + 1
  local path = prefix .. id .. "-" .. counter .. "-" .. math.random(1, 1000000000)
  return wrk.format("POST", path, {["Content-Type"] = "application/x-www-form-urlencoded"},
                    'metadata={"n":' .. counter .. ',"tag":"bench"}')
end
