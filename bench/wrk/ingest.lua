-- ingest.lua — wrk script for POST /api/v1/ingest with unique, realistic readings.
--
-- Every wrk thread has its own 1,000 devices ("w<thread>-<n>"); readings cycle over them,
-- so each device's seq rises by one every 1,000 readings and no reading is a duplicate.
-- A reading is one message from one device with three metric values. BATCH (environment,
-- default 1) readings go in one request: 1 sends a JSON object, more a JSON array.
-- done() prints the count of non-200 answers so the benchmark can refuse a run with errors.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  batch = tonumber(os.getenv("BATCH") or "1")
  n = 0
  bad = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

-- Values look like sensors: a per-device level, a slow drift and small noise (a sawtooth
-- would make the detectors open and close anomaly alerts all run long, which is not ingest).
local function reading(idx)
  local dev = idx % 1000
  local seq = math.floor(idx / 1000) + 1
  local wobble = (seq * 7 + dev) % 5
  return string.format(
    '{"device":"w%d-%d","seq":%d,"values":{"gas_ppm":%d,"temperature_c":%.1f,"humidity_pct":%.1f}}',
    tid, dev, seq, 400 + dev % 50 + wobble, 21.5 + (seq % 40) * 0.02 + wobble * 0.05,
    45 + (seq % 30) * 0.05 + wobble * 0.1)
end

function request()
  local body
  if batch == 1 then
    body = reading(n)
    n = n + 1
  else
    local parts = {}
    for i = 1, batch do
      parts[i] = reading(n)
      n = n + 1
    end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format(nil, "/api/v1/ingest", nil, body)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + (t:get("bad") or 0)
  end
  io.write(string.format("non200 %d\n", total_bad))
end
