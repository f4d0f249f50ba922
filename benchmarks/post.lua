-- wrk script: every request POSTs metadata to a new key (a new one in every run).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "/bench/w/"
  -- LuaJIT's generator starts from the same seed in every run: without this,
  -- a second run would POST to the first run's keys again (updates, not new keys).
  local urandom = io.open("/dev/urandom", "rb")
  local bytes = urandom:read(4)
  urandom:close()
  math.randomseed(bytes:byte(1) * 16777216 + bytes:byte(2) * 65536 + bytes:byte(3) * 256 + bytes:byte(4) + id)
end

request = function()
  counter = counter + 1
  local path = prefix .. id .. "-" .. counter .. "-" .. math.random(1, 1000000000)
  return wrk.format("POST", path, {["Content-Type"] = "application/x-www-form-urlencoded"},
                    'metadata={"n":' .. counter .. ',"tag":"bench"}')
end
