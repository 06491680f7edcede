#!/usr/bin/env bash
# dashboard.sh BUILD_DIR — the dashboard's performance figures of docs/BENCHMARKS.md.
#
# Part 1, the browser (bench/dashboard_perf.js in Debian's headless Chromium, software
# rendering, canaryd of BUILD_DIR on loopback): the issue's targets beside a small peer
# measured in the same run, so that the ratio means something on this shared, noisy machine:
#   overview first render     1,000 devices   vs 10 devices
#   live frames/s and frame   1,000 readings/s arriving, 1,000 devices  vs the same page idle
#   uPlot chart draw          100,000 points  vs 1,000 points
# Each configuration runs BENCH_DASH_RUNS times (3), alternating, with BENCH_DASH_LIVE_S (5)
# seconds of live updates; the table shows the median (min–max).
# Part 2, the cost of a connected stream client to ingest: wrk with bench/wrk/ingest.lua
# (batches of 100 readings, 16 connections, BENCH_DASH_INGEST_S seconds, store on tmpfs),
# a fresh canaryd per run, alternating without and with one `curl -N /api/v1/stream`
# client reading everything, BENCH_DASH_PAIRS pairs (5); medians and their ratio.
# Needs node and playwright-core from BUILD_DIR/tests/browser/npm (built with the tests).
set -euo pipefail
build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
case "$build" in /*) bdir=$build ;; *) bdir=$root/$build ;; esac
canaryd="$bdir/canaryd"
modules="$bdir/tests/browser/npm/node_modules"
runs=${BENCH_DASH_RUNS:-3}
pairs=${BENCH_DASH_PAIRS:-5}
ingest_s=${BENCH_DASH_INGEST_S:-5}
live_s=${BENCH_DASH_LIVE_S:-5}
[ -x "$canaryd" ] || { echo "dashboard.sh: $canaryd is missing (cmake --build $build)" >&2; exit 1; }
[ -d "$modules/playwright-core" ] || { echo "dashboard.sh: no playwright-core in $modules (cmake --build $build --target browser_test_deps)" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "dashboard.sh: /usr/bin/chromium is missing (scripts/install-deps.sh)" >&2; exit 1; }
shm=$(mktemp -d /dev/shm/canary-dash-XXXXXX)
pid=""; curl_pid=""
trap '[ -n "$curl_pid" ] && kill "$curl_pid" 2>/dev/null; [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$shm"' EXIT

echo "canary dashboard benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), Chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), build $build"

perf() { # DEVICES RATE POINTS -> one key=value line
    NODE_PATH="$modules" CANARYD="$canaryd" LIVE_SECONDS=$live_s DEVICES=$1 RATE=$2 POINTS=$3 node "$here/dashboard_perf.js"
}
results="$shm/perf.txt"
for run in $(seq 1 "$runs"); do
    echo "run $run/$runs ..." >&2
    echo "big $(perf 1000 1000 100000)" >>"$results"
    echo "small $(perf 10 0 1000)" >>"$results"
done

# median (min–max) of key in the lines of config
stat() {
    awk -v cfg="$1" -v key="$2" '$1 == cfg { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' "$results" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "–"; exit } m = v[int((NR + 1) / 2)]; if (NR == 1) print m; else printf "%s (%s–%s)\n", m, v[1], v[NR] }'
}
med() {
    awk -v cfg="$1" -v key="$2" '$1 == cfg { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' "$results" |
        sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else print "–" }'; }

echo
echo "Dashboard in headless Chromium, median (min–max) of $runs runs, the two columns alternating in the same run"
echo "| measure | target | issue's figure | peer | peer's figure | ratio |"
echo "|---|---:|---:|---|---:|---:|"
printf "| overview first render, ms | < 1000 | %s | 10 devices | %s | %s |\n" \
    "$(stat big first_render_ms)" "$(stat small first_render_ms)" "$(ratio "$(med big first_render_ms)" "$(med small first_render_ms)")"
printf "| frames/s, 1,000 devices, 1,000 readings/s arriving (%s/s sent) | ~60 | %s | same page idle (10 devices) | %s | %s |\n" \
    "$(med big live_rate)" "$(stat big live_fps)" "$(stat small live_fps)" "$(ratio "$(med big live_fps)" "$(med small live_fps)")"
printf "| longest frame, ms (gap between two frames) | | %s | same page idle (10 devices) | %s | %s |\n" \
    "$(stat big live_longest_frame_ms)" "$(stat small live_longest_frame_ms)" "$(ratio "$(med big live_longest_frame_ms)" "$(med small live_longest_frame_ms)")"
printf "| frames longer than 50 ms, in %s s | | %s | same page idle (10 devices) | %s | |\n" \
    "$live_s" "$(stat big live_frames_over_50ms)" "$(stat small live_frames_over_50ms)"
printf "| longest main-thread task, ms | | %s | same page idle (10 devices) | %s | |\n" \
    "$(stat big live_longest_task_ms)" "$(stat small live_longest_task_ms)"
printf "| uPlot chart draw, ms | < 200 | %s (100,000 points) | 1,000 points | %s | %s |\n" \
    "$(stat big chart_ms)" "$(stat small chart_ms)" "$(ratio "$(med big chart_ms)" "$(med small chart_ms)")"

# Part 2: ingest with and without a stream client.
start_canaryd() {
    rm -f "$shm/port" "$shm"/canary.db*
    "$canaryd" --listen 127.0.0.1:0 --db "$shm/canary.db" --ready-file "$shm/port" \
        --set security.unsigned=accept --log-level warn 2>>"$shm/canaryd.log" &
    pid=$!
    for _ in $(seq 1 200); do [ -s "$shm/port" ] && break; sleep 0.05; done
    port=$(cat "$shm/port")
}
stop_canaryd() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }
ingest_run() { # $1 = with|without -> readings/s
    start_canaryd
    if [ "$1" = with ]; then
        curl -sN "http://127.0.0.1:$port/api/v1/stream" >"$shm/stream.txt" &
        curl_pid=$!
        sleep 0.2
    fi
    out=$(BATCH=100 wrk -t2 -c16 -d"${ingest_s}s" -s "$here/wrk/ingest.lua" "http://127.0.0.1:$port" 2>&1)
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    bad=$(echo "$out" | awk '$1 == "non200" {print $2}')
    [ "${bad:-0}" = 0 ] || echo "WARNING: $bad non-200 answers" >&2
    if [ -n "$curl_pid" ]; then
        kill "$curl_pid" 2>/dev/null || true
        wait "$curl_pid" 2>/dev/null || true
        curl_pid=""
        events=$(grep -c '^event: readings' "$shm/stream.txt" || true)
        [ "$events" -gt 0 ] || echo "WARNING: the stream client got no readings event" >&2
    fi
    stop_canaryd
    awk -v r="$rps" 'BEGIN { printf "%.0f\n", r * 100 }'
}
without=(); with=()
for p in $(seq 1 "$pairs"); do
    echo "ingest pair $p/$pairs ..." >&2
    without+=("$(ingest_run without)")
    with+=("$(ingest_run with)")
done
m() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mn() { printf '%s\n' "$@" | sort -n | head -1; }
mx() { printf '%s\n' "$@" | sort -n | tail -1; }
mw=$(m "${without[@]}"); mwi=$(m "${with[@]}")
echo
echo "HTTP ingest with a stream client (wrk, batches of 100, 16 connections, ${ingest_s} s, store on tmpfs, $pairs alternating pairs)"
echo "| | readings/s, median (min–max) |"
echo "|---|---:|"
printf "| no stream client | %s (%s–%s) |\n" "$mw" "$(mn "${without[@]}")" "$(mx "${without[@]}")"
printf "| one \`curl -N /api/v1/stream\` client | %s (%s–%s) |\n" "$mwi" "$(mn "${with[@]}")" "$(mx "${with[@]}")"
printf "| with / without | %s |\n" "$(awk -v a="$mwi" -v b="$mw" 'BEGIN { printf "%.2f", a / b }')"
per_pair=()
for i in "${!without[@]}"; do per_pair+=("$(awk -v a="${with[$i]}" -v b="${without[$i]}" 'BEGIN { printf "%.2f", a / b }')"); done
echo "per pair (with / without): ${per_pair[*]}"
