-- wrk script: every request PUTs a raw body of args[2] bytes (default 1 MiB) to a new key under args[1].
local counter = 0

function setup(thread)
  thread:set("id", tostring(thread))
end

function init(args)
  prefix = args[1] or "/bench/u/"
  local size = tonumber(args[2] or 1048576)
  local block = {}
  for i = 1, 1024 do block[i] = string.char(math.random(0, 255)) end
  block = table.concat(block)
  body = string.rep(block, math.floor(size / 1024)) .. string.sub(block, 1, size % 1024)
end

request = function()
  counter = counter + 1
  local path = prefix .. id:gsub("[^%w]", "") .. "-" .. counter .. "-" .. math.random(1, 1000000000)
  return wrk.format("PUT", path, {["Content-Type"] = "application/octet-stream"}, body)
end
