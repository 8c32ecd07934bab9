-- Cycle through pre-signed webhook bodies (wrk's LuaJIT cannot compute HMAC).
-- Usage: wrk -s wrk_signed.lua URL -- <bodies file> <threads>
-- Each line of the file is "<X-Hub-Signature-256 value>\t<body>"; thread k takes lines
-- k, k+n, k+2n... so no mid is sent twice unless a thread runs out and wraps (counted).
-- done() prints one JSON line that bench/wrk.py reads.

local created = 0
local threads = {}

function setup(thread)
  thread:set("tid", created)
  created = created + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  requests = {}
  wraps = 0
  idx = 0
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then
      local tab = line:find("\t", 1, true)
      local headers = {
        ["Content-Type"] = "application/json",
        ["User-Agent"] = "facebookexternalua",
        ["X-Hub-Signature-256"] = line:sub(1, tab - 1),
      }
      requests[#requests + 1] = wrk.format("POST", nil, headers, line:sub(tab + 1))
    end
    i = i + 1
  end
end

function request()
  idx = idx + 1
  if idx > #requests then
    idx = 1
    wraps = wraps + 1
  end
  return requests[idx]
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, t in ipairs(threads) do
    wrapped = wrapped + (t:get("wraps") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"wraps":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, wrapped))
end
