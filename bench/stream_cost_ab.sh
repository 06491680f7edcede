#!/usr/bin/env bash
# stream_cost_ab.sh BUILD_A BUILD_B — what one live-stream client costs HTTP ingest, for two
# canaryd builds side by side (e.g. before and after a change to the stream), in the same
# minutes: the procedure of bench/dashboard.sh's part 2 (wrk with bench/wrk/ingest.lua, batches
# of 100, 16 connections, STREAM_AB_S seconds (5), store on tmpfs, a fresh canaryd per run,
# without and then with one `curl -N /api/v1/stream` client reading everything), STREAM_AB_ROUNDS
# rounds (5) alternating A and B. Prints per run readings/s without and with the client, the
# stream events the client received and the clients canaryd dropped for reading too slowly (a
# dropped client would make "with" look free: such runs are shown and left out), then each
# build's median ratio with / without.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${STREAM_AB_ROUNDS:-5}
secs=${STREAM_AB_S:-5}
[ $# -eq 2 ] || { echo "usage: bench/stream_cost_ab.sh BUILD_A BUILD_B" >&2; exit 2; }
for b in "$1" "$2"; do
    [ -x "$b/canaryd" ] || { echo "stream_cost_ab.sh: $b/canaryd is missing" >&2; exit 1; }
done
for c in wrk curl jq; do
    command -v "$c" >/dev/null || { echo "stream_cost_ab.sh: $c is not installed" >&2; exit 1; }
done
shm=$(mktemp -d /dev/shm/canary-stream-ab-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$shm"' EXIT

run() { # $1 = canaryd, $2 = with|without -> "readings/s events dropped"
    rm -f "$shm/port" "$shm"/c.db* "$shm/stream.txt"
    "$1" --listen 127.0.0.1:0 --db "$shm/c.db" --ready-file "$shm/port" \
        --set security.unsigned=accept --log-level warn 2>>"$shm/canaryd.log" &
    local pid=$! cpid=""
    for _ in $(seq 1 200); do [ -s "$shm/port" ] && break; sleep 0.05; done
    local port
    port=$(cat "$shm/port")
    if [ "$2" = with ]; then
        curl -sN "http://127.0.0.1:$port/api/v1/stream" >"$shm/stream.txt" &
        cpid=$!
        sleep 0.2
    fi
    local out dropped events=0
    out=$(BATCH=100 timeout $((secs + 30)) wrk -t2 -c16 -d"${secs}s" -s "$here/wrk/ingest.lua" "http://127.0.0.1:$port" 2>&1)
    dropped=$(curl -s --max-time 10 "http://127.0.0.1:$port/api/v1/stats" | jq '.stream.clients_dropped')
    if [ -n "$cpid" ]; then
        kill "$cpid" 2>/dev/null || true
        wait "$cpid" 2>/dev/null || true
        events=$(grep -c '^event: readings' "$shm/stream.txt" || true)
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$out" | awk -v e="$events" -v d="$dropped" '/^Requests\/sec/ { printf "%.0f %s %s\n", $2 * 100, e, d }'
}

declare -A ratios
echo "| build | round | readings/s without | with one stream client | events received | clients dropped | with / without |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$rounds"); do
    for b in "$1" "$2"; do
        read -r wo _ _ <<<"$(run "$b/canaryd" without)"
        read -r wi ev dr <<<"$(run "$b/canaryd" with)"
        q=$(awk -v a="$wi" -v b="$wo" 'BEGIN { printf "%.2f", a / b }')
        if [ "$dr" = 0 ]; then
            ratios[$b]+="$q "
        else
            q="$q (client dropped: not counted)"
        fi
        echo "| $b | $r | $wo | $wi | $ev | $dr | $q |"
    done
done
echo
for b in "$1" "$2"; do
    printf '%s\n' ${ratios[$b]} | sort -n | awk -v b="$b" '{ v[NR] = $1 } END { printf "%s: with / without, median %s (%s–%s)\n", b, v[int((NR + 1) / 2)], v[1], v[NR] }'
done
