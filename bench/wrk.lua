-- wrk script: sends a pre-signed request corpus, each request once, and counts every
-- response that is not a 200. Thread i reads its own file "<prefix>.<i>" (requests
-- separated by NUL bytes), so no two connections ever send the same request.
-- Usage: wrk -t N -c C -d D -s bench/wrk.lua http://host:port -- <prefix>
-- With no prefix it sends wrk's default request (GET of the URL), for load-generator checks.
-- done() prints one JSON line starting with "BENCH_RESULT ".

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  exhausted = 0
  first_error = ""
  reqs = nil
  n = 0
  idx = 0
  local prefix = args[1]
  if prefix == nil or prefix == "" then
    return
  end
  local f = assert(io.open(prefix .. "." .. tid, "rb"))
  local data = f:read("*a")
  f:close()
  reqs = {}
  local pos = 1
  while true do
    local s = string.find(data, "\0", pos, true)
    if not s then break end
    n = n + 1
    reqs[n] = string.sub(data, pos, s - 1)
    pos = s + 1
  end
end

function request()
  if reqs == nil then
    return wrk.format(nil, nil)
  end
  idx = idx + 1
  if idx > n then
    -- Out of fresh requests: sending one again is a replay the service refuses, which
    -- the report shows as errors plus an "exhausted" count, never as silent success.
    exhausted = exhausted + 1
    idx = 1
  end
  return reqs[idx]
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_error == "" then
      first_error = tostring(status) .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local total_non200, total_exhausted, sample, loaded = 0, 0, "", 0
  for _, thread in ipairs(threads) do
    total_non200 = total_non200 + (thread:get("non200") or 0)
    total_exhausted = total_exhausted + (thread:get("exhausted") or 0)
    loaded = loaded + (thread:get("n") or 0)
    local e = thread:get("first_error") or ""
    if sample == "" and e ~= "" then sample = e end
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"non200": %d, "exhausted": %d, "corpus": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "mean": %.1f}, ' ..
    '"first_error": %s}\n',
    summary.requests, summary.duration, summary.bytes,
    total_non200, total_exhausted, loaded,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    json_string(sample)))
end
