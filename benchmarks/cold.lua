-- cold.lua (wrk): every request asks for a URL not asked before in this run:
--   COLD_PREFIX .. n .. COLD_SUFFIX, thread k of COLD_THREADS taking n = COLD_START + k, + COLD_THREADS, ...
-- Thread i connects to the i-th port of SPLIT_PORTS (round-robin), as ../shared/bench/split.lua does.
local ports, threads = {}, 0
for p in string.gmatch(os.getenv("SPLIT_PORTS") or "", "%d+") do ports[#ports + 1] = p end

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
  if #ports > 0 then
    thread.addr = wrk.lookup("127.0.0.1", ports[(threads - 1) % #ports + 1])[1]
  end
end

function init(args)
  prefix = os.getenv("COLD_PREFIX")
  suffix = os.getenv("COLD_SUFFIX") or ""
  step = tonumber(os.getenv("COLD_THREADS") or "2")
  counter = tonumber(os.getenv("COLD_START") or "0") + id
end

function request()
  local path = prefix .. counter .. suffix
  counter = counter + step
  return wrk.format("GET", path)
end
