#!/usr/bin/env bash
# security_device.sh — the compromised-device part of the security benchmark (issue 7): a real
# canaryd (its own temporary directory, a free port, security.unsigned = reject, a master key,
# every device provisioned with `canary device add`), a simulated fleet of signed devices, and
# `canary attack device` running every attack kind on a few devices (each in a room of its own,
# so its neighbours are clean) while the rest stay clean, for one hour of SIMULATED time. Then
# bench_security_device scores what canaryd's REST API says against the ground truth and
# prints the table (docs/ATTACK.md explains it, docs/BENCHMARKS.md has the numbers).
#
# The hour is accelerated: the simulator stamps readings with a simulated clock that runs
# SPEED times faster than the wall clock and starts early enough (--speed, --clock-start
# -(3600 - 3600/SPEED)) that the last reading's ts is the wall-clock time at which it is sent,
# so no reading is ever in the future: canaryd's freshness window (ingest.max_past_s = 7 days,
# max_future_s = 300 s, the defaults) is left as it is and every reading passes it honestly.
# SPEED=1 runs the hour in real time (ts = the time of sending).
#
# usage: bench/security_device.sh [BUILD_DIR]      (default build-release)
# environment: DEVICES (336), PER_KIND (8 attacks of each kind), RATE (0.2 readings/s per
# device in simulated time), SPEED (15), SEED (1), ROUNDS (1: runs with seeds SEED, SEED+1, ...
# each scored on its own, then one table over all), KEEP=1 keeps the temporary directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build-release}
case "$build" in /*) bdir=$build ;; *) bdir=$root/$build ;; esac
devices=${DEVICES:-336}
per_kind=${PER_KIND:-8}
rate=${RATE:-0.2}
speed=${SPEED:-15}
seed=${SEED:-1}
rounds=${ROUNDS:-1}
hour_s=3600

for bin in canaryd canary bench/bench_security_device; do
    [ -x "$bdir/$bin" ] || {
        echo "security_device.sh: $bdir/$bin is missing (cmake --build $build)" >&2
        exit 1
    }
done

tmp=$(mktemp -d /tmp/canary-secdev.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "security_device.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

export CANARY_API_ADMIN_TOKEN="bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/master.key"

run_round() {
    local s=$1 dir="$tmp/round-$1"
    mkdir -p "$dir"
    "$bdir/canaryd" --listen 127.0.0.1:0 --db "$dir/canary.db" --ready-file "$dir/port" \
        --log-level warn --set security.unsigned=reject \
        --set "security.master_key_file=$tmp/master.key" 2>>"$dir/canaryd.log" &
    pid=$!
    for _ in $(seq 1 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
    [ -s "$dir/port" ] || { echo "security_device.sh: canaryd did not start:" >&2; cat "$dir/canaryd.log" >&2; exit 1; }
    local url="http://127.0.0.1:$(cat "$dir/port")"

    # every device gets its key (the attacked ones too: a compromised device holds its key)
    for i in $(seq 1 "$devices"); do
        printf -v id 'sim-%04d' "$i"
        "$bdir/canary" device add "$id" --url "$url" --keys-out "$dir/keys.txt" >/dev/null 2>>"$dir/cli.log"
    done
    "$bdir/bench/bench_security_device" plan --devices "$devices" --seed "$s" \
        --per-kind "$per_kind" --first 900 --last 2700 --length 600 >"$dir/plan.txt"

    local t0 t1 back_s
    back_s=$(awk -v h="$hour_s" -v s="$speed" 'BEGIN { printf "%.3f", h - h / s }')
    t0=$(date +%s%3N)
    "$bdir/canary" attack device --plan "$dir/plan.txt" --truth "$dir/truth.jsonl" \
        --devices "$devices" --seed "$s" --rate "$rate" --speed "$speed" \
        --clock-start "-$back_s" --run "$hour_s" --drain 600 \
        --sign "$dir/keys.txt" --url "$url" --register --quiet >"$dir/attack.out" 2>"$dir/attack.err" || true
    t1=$(date +%s%3N)
    sleep 2 # canaryd's pipeline commits asynchronously
    echo "round $s: $(cat "$dir/attack.out") wall=$(( (t1 - t0) / 1000 ))s"
    "$bdir/bench/bench_security_device" --url "$url" --truth "$dir/truth.jsonl" \
        --devices "$devices" --from "$(( t0 - hour_s * 1000 - 60000 ))" --to "$(( t1 + 600000 ))" \
        --save "$tmp/results.txt" --label "seed$s:"
    kill -TERM "$pid"; wait "$pid" || true; pid=""
}

echo "Compromised-device benchmark: $devices devices, $per_kind attacks of each of 8 kinds," \
    "$rate readings/s per device, 1 simulated hour at ${speed}x, security.unsigned = reject"
for r in $(seq 0 $((rounds - 1))); do
    run_round $((seed + r))
done
if [ "$rounds" -gt 1 ]; then
    "$bdir/bench/bench_security_device" summary "$tmp/results.txt"
fi
