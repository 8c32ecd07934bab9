-- Cycle through fixed JSON POSTs (the mock's control API and Graph surface).
-- Usage: wrk -s wrk_post.lua URL -- <requests file>
-- Each line of the file is "<path>\t<json body>"; every thread cycles through all lines.
-- done() prints the same BENCH_JSON line as wrk_signed.lua.

function init(args)
  requests = {}
  idx = 0
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    requests[#requests + 1] = wrk.format(
      "POST", line:sub(1, tab - 1), { ["Content-Type"] = "application/json" }, line:sub(tab + 1))
  end
end

function request()
  idx = idx % #requests + 1
  return requests[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"wraps":0}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
