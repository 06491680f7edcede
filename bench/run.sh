#!/usr/bin/env bash
# run.sh BUILD_DIR — runs every benchmark and prints the tables of docs/BENCHMARKS.md.
#
# 1. The in-process pipeline on one thread (bench_pipeline), store on tmpfs and on disk,
#    canary's parser and store against the obvious alternatives (bench_peers), and the live
#    stream's number formatting against printf (bench_numfmt).
# 2. HTTP ingest against this build's canaryd with wrk (keep-alive), single readings and
#    batches of 100, store on tmpfs and on disk: requests/s, readings/s, p50/p99 latency.
#    Each run checks that every request got 200 and that the store holds every reading.
# 3. MQTT ingest end to end beside a null subscriber on the same private Mosquitto, QoS 0
#    and 1, full speed and half rate (bench/mqtt.sh).
# 4. The Isolation Forest on the ODDS datasets against scikit-learn's, same run: ROC AUC,
#    training and scoring time, threads, one-row latency (bench/iforest.sh).
# The machine is shared and noisy: read ratios between rows of one run, not absolutes.
set -euo pipefail
build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
canaryd="$root/$build/canaryd"
readings=${BENCH_READINGS:-2000000}
duration=${BENCH_DURATION:-10}
conns=${BENCH_CONNECTIONS:-64}
work=$(mktemp -d /tmp/canary-bench-XXXXXX)      # on disk
shm=$(mktemp -d /dev/shm/canary-bench-XXXXXX)   # tmpfs
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work" "$shm"' EXIT

echo "canary benchmarks: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), build $build"

"$root/$build/bench/bench_pipeline" --db "$shm/pipeline.db" --readings "$readings" --label "tmpfs"
"$root/$build/bench/bench_pipeline" --db "$work/pipeline.db" --readings "$readings" --label "disk"

echo; echo "Peers, same run (store on tmpfs, then on disk):"
"$root/$build/bench/bench_peers" "$shm"
"$root/$build/bench/bench_peers" "$work" --store-only

echo; echo "Numbers as text for the live stream (numfmt against printf, same run):"
"$root/$build/bench/bench_numfmt"

start_canaryd() { # $1 = database directory
    rm -f "$1/port" "$1"/canary.db*
    "$canaryd" --listen 127.0.0.1:0 --db "$1/canary.db" --ready-file "$1/port" \
        --set security.unsigned=accept --log-level warn 2>>"$1/canaryd.log" &
    pid=$!
    for _ in $(seq 1 200); do [ -s "$1/port" ] && break; sleep 0.05; done
    port=$(cat "$1/port")
}

stop_canaryd() {
    kill -TERM "$pid"
    wait "$pid" || true
}

stored() { curl -s "http://127.0.0.1:$port/api/v1/stats" | grep -o '"readings_total":[0-9]*' | cut -d: -f2; }

echo
echo "HTTP ingest (wrk, ${conns} keep-alive connections, 2 threads, ${duration} s per run, median of 3 runs; a reading = 3 metric values)"
echo "| store | request | requests/s | readings/s | p50 ms | p99 ms | non-200 |"
echo "|---|---|---:|---:|---:|---:|---:|"
for storage in tmpfs disk; do
    dir=$shm; [ "$storage" = disk ] && dir=$work
    for batch in 1 100; do
        # Three runs, the median by requests/s: the machine is shared and noisy.
        results=()
        for run in 1 2 3; do
            start_canaryd "$dir"
            out=$(BATCH=$batch wrk -t2 -c"$conns" -d"${duration}s" --latency \
                -s "$here/wrk/ingest.lua" "http://127.0.0.1:$port" 2>&1)
            rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
            p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
            p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
            bad=$(echo "$out" | awk '$1 == "non200" {print $2}')
            total=$(echo "$out" | awk '/requests in/ {print $1}')
            have=$(stored)
            stop_canaryd
            want=$((total * batch))
            [ "$have" -ge "$want" ] || echo "WARNING: store holds $have readings, wrk completed $want" >&2
            results+=("$rps $p50 $p99 $bad")
        done
        read -r rps p50 p99 bad < <(printf '%s\n' "${results[@]}" | sort -n | sed -n 2p)
        to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.2f", v/1000; else if (v ~ /ms$/) printf "%.2f", v+0; else printf "%.0f", v*1000 }'; }
        printf "| %s | %s | %.0f | %.0f | %s | %s | %s |\n" "$storage" \
            "$([ "$batch" = 1 ] && echo single reading || echo "batch of $batch")" \
            "$rps" "$(awk -v r="$rps" -v b="$batch" 'BEGIN { print r * b }')" "$(to_ms "$p50")" "$(to_ms "$p99")" "$bad"
    done
done
echo; bash "$here/mqtt.sh" "$build"   # MQTT ingest beside the broker's null-subscriber rate
echo; bash "$here/iforest.sh" "$build"   # Isolation Forest beside scikit-learn (ODDS data)
