#!/usr/bin/env bash
# security.sh — the security benchmark (issue 7): what canaryd does with each attack a network
# attacker can make, over MQTT and over HTTP, scored from the attacker's own ground truth and
# canaryd's REST API. Then, when bench/security_device.sh is there, the compromised-device
# part (helper attackdev's), with its own table.
#
# One real canaryd (a temporary directory, a free port, security.unsigned = reject, a master
# key and an admin token), one real Mosquitto (scripts/broker.sh) that canaryd reads, and for
# each transport and attack kind a fresh fleet of signed devices (`canary device add
# --keys-out`, `canary simulate --sign`) sending through `canary attack mitm-mqtt` or
# `mitm-http` with that one attack at RATE. The token attacks (HTTP) use devices with bearer
# tokens, sent with curl through the proxy; so does "alter@token", the alteration of a token
# device's plain body (a gap canaryd cannot close without HTTPS: expect it stored). Per run:
#   attacked       messages the proxy attacked (its --truth)
#   refused        forged, altered, stripped, token: attacked seqs NOT stored (the attacked
#                  message never got in; an alteration's original was never delivered, so its
#                  seq must be absent); replay: canaryd's duplicate counter + stale events
#                  against the replays sent. Target 100 %.
#   value stored   attacked values found in the store (target 0)
#   canaryd saw    security events of the run by kind (event counts), or for drop/delay/
#                  reorder what the store shows: seq gaps, late arrivals (recv - ts), held
#                  readings received no earlier than the device's next seq
#   clean stored   readings stored / readings that should have been (all not attacked, plus
#                  delayed and reordered ones): target 100 %
#
# usage: bench/security.sh [BUILD_DIR]     (default build-release; needs canaryd and canary)
# environment: DEVICES (4 per run), SIM_RATE (5 readings/s per device), SECONDS_PER_RUN (10),
# ATTACK_RATE (0.25 of the eligible messages), DELAY_MS (2000), KINDS (all), TRANSPORTS
# ("mqtt http"), NO_DEVICE_PART=1 skips security_device.sh, KEEP=1 keeps the directory.
# About 5 minutes for the network part.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build-release}
case "$build" in /*) bdir=$build ;; *) bdir=$root/$build ;; esac
canaryd=$bdir/canaryd
canary=$bdir/canary
devices=${DEVICES:-4}
sim_rate=${SIM_RATE:-5}
run_s=${SECONDS_PER_RUN:-10}
attack_rate=${ATTACK_RATE:-0.25}
delay_ms=${DELAY_MS:-2000}
transports=${TRANSPORTS:-mqtt http}
kinds=${KINDS:-alter strip forge forge-unsigned replay drop delay reorder token-strip token-swap alter@token}

for f in "$canaryd" "$canary"; do
    [ -x "$f" ] || { echo "security.sh: $f is missing (cmake --build $build)" >&2; exit 1; }
done
for c in mosquitto jq curl; do
    command -v "$c" >/dev/null || { echo "security.sh: $c is not installed (scripts/install-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/canary-security-XXXXXX)
cpid=""
ppid_=""
cleanup() {
    [ -n "$ppid_" ] && kill -TERM "$ppid_" 2>/dev/null && wait "$ppid_" 2>/dev/null
    [ -n "$cpid" ] && kill -TERM "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
    "$root/scripts/broker.sh" stop "$work/broker" >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then echo "security.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- canaryd and the broker -------------------------------------------------------------
bport=$("$root/scripts/broker.sh" start "$work/broker")
export CANARY_MASTER_KEY
CANARY_MASTER_KEY=$(openssl rand -hex 32)
export CANARY_API_ADMIN_TOKEN
CANARY_API_ADMIN_TOKEN=$(openssl rand -hex 24)
"$canaryd" --listen 127.0.0.1:0 --db "$work/canary.db" --ready-file "$work/port" \
    --set mqtt.enabled=true --set mqtt.port="$bport" --set mqtt.client_id=canaryd-bench \
    --set security.unsigned=reject --log-level warn 2>>"$work/canaryd.log" &
cpid=$!
for _ in $(seq 1 200); do [ -s "$work/port" ] && break; sleep 0.05; done
[ -s "$work/port" ] || { echo "security.sh: canaryd did not start (log: $work/canaryd.log)" >&2; exit 1; }
base="http://127.0.0.1:$(cat "$work/port")"
for _ in $(seq 1 100); do
    [ "$(curl -s "$base/healthz" | jq -r '.mqtt.state // empty' 2>/dev/null)" = connected ] && break
    sleep 0.1
done

api() { curl -s -H "Authorization: Bearer $CANARY_API_ADMIN_TOKEN" "$base$1"; }
stat() { api /api/v1/stats | jq -r "$1 // 0"; }

# ---- one run ------------------------------------------------------------------------------
# run TRANSPORT KIND: a fresh fleet through a fresh proxy with one attack; prints one row.
run() {
    local tp=$1 kind=$2 prefix="b${1:0:1}-${2}" dir="$work/$1-$2"
    local token_kind=0 attack=${kind%@token}
    case "$kind" in token-* | *@token) token_kind=1 ;; esac
    prefix=${prefix/@/-}
    dir=${dir/@/-}
    mkdir -p "$dir"
    [ "$tp" = mqtt ] && [ $token_kind = 1 ] && return 0
    # devices and their credentials
    local ids=()
    for i in $(seq 1 "$devices"); do ids+=("$(printf '%s-%04d' "$prefix" "$i")"); done
    : >"$dir/keys"
    : >"$dir/tokens"
    for id in "${ids[@]}"; do
        if [ $token_kind = 1 ]; then
            "$canary" device add "$id" --token --url "$base" >"$dir/add.out" 2>&1
            awk '/^token:/ {print $2}' "$dir/add.out" | sed "s/^/$id /" >>"$dir/tokens"
        else
            "$canary" device add "$id" --keys-out "$dir/keys" --url "$base" >/dev/null 2>&1
        fi
    done
    local t0 dup0 acc0
    t0=$(($(date +%s%3N) - 1000))
    dup0=$(stat .counters.readings_duplicate)
    acc0=$(stat .counters.readings_accepted)
    local upstream="127.0.0.1:$bport"
    [ "$tp" = http ] && upstream=$base
    "$canary" attack "mitm-$tp" --listen 127.0.0.1:0 --upstream "$upstream" \
        --attack "$attack:$attack_rate" --delay-ms "$delay_ms" --seed 11 --truth "$dir/truth.jsonl" \
        --port-file "$dir/pport" --quiet >"$dir/proxy.out" 2>"$dir/proxy.err" &
    ppid_=$!
    for _ in $(seq 1 200); do [ -s "$dir/pport" ] && break; sleep 0.05; done
    local pport
    pport=$(cat "$dir/pport")
    if [ $token_kind = 1 ]; then
        # bearer-token devices: one request per device every 1/SIM_RATE s, through the proxy
        local n=$((run_s * sim_rate)) seq0
        seq0=$(date +%s%3N)
        for k in $(seq 0 $((n - 1))); do
            local pids=()
            while read -r id tok; do
                curl -s -o /dev/null -X POST "http://127.0.0.1:$pport/api/v1/ingest" \
                    -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
                    -d "{\"device\":\"$id\",\"seq\":$((seq0 + k)),\"ts\":$(date +%s%3N),\"values\":{\"gas_ppm\":$((400 + k % 7))}}" &
                pids+=($!)
            done <"$dir/tokens"
            wait "${pids[@]}" || true
            sleep "$(awk -v r="$sim_rate" 'BEGIN{print 1/r}')"
        done
    elif [ "$tp" = mqtt ]; then
        "$canary" simulate --transport mqtt --broker "127.0.0.1:$pport" --prefix "$prefix" \
            --devices "$devices" --rate "$sim_rate" --duration "$run_s" --drain 5 \
            --sign "$dir/keys" --quiet >"$dir/sim.out" 2>&1 || true
    else
        "$canary" simulate --url "http://127.0.0.1:$pport" --prefix "$prefix" \
            --devices "$devices" --rate "$sim_rate" --duration "$run_s" --drain 5 \
            --sign "$dir/keys" --quiet >"$dir/sim.out" 2>&1 || true
    fi
    kill -TERM "$ppid_"
    wait "$ppid_" || true
    ppid_=""
    # let canaryd commit what is in flight: counters still for a second
    local last=-1 now
    for _ in $(seq 1 60); do
        now=$(api /api/v1/stats | jq '.counters.readings_accepted + .counters.readings_duplicate + .security.rejected')
        [ "$now" = "$last" ] && break
        last=$now
        sleep 1
    done
    # what canaryd stored and recorded
    : >"$dir/stored.jsonl"
    for id in "${ids[@]}"; do
        api "/api/v1/devices/$id/readings?from=$t0&limit=10000&order=asc" |
            jq -c --arg d "$id" '.readings[]? | {device: $d, seq, ts_ms, recv_ms, gas: (.values.gas_ppm.value // null)}' \
                >>"$dir/stored.jsonl"
    done
    api "/api/v1/events?category=security&from=$t0&limit=1000" |
        jq -c --arg p "$prefix-" '.events[]? | select((.device // "") | startswith($p))' >"$dir/events.jsonl"
    local dup=$(($(stat .counters.readings_duplicate) - dup0))
    local acc=$(($(stat .counters.readings_accepted) - acc0))
    score "$tp" "$kind" "$dir" "$dup" "$acc"
}

# score TRANSPORT KIND DIR DUPLICATES ACCEPTED: one table row from the files of a run.
score() {
    local tp=$1 kind=${2%@token} dir=$3 dup=$4 acc=$5 label=$2
    local truth=$dir/truth.jsonl stored=$dir/stored.jsonl
    local attacks sent
    # reorder: one line when held (MQTT), two over HTTP (held, delivered); count the held ones
    attacks=$(jq -s --arg k "$kind" '[.[] | select(.kind == $k and (.phase // "held") == "held")] | length' "$truth")
    if [ "$tp" = mqtt ]; then
        sent=$(jq -s '[.[] | select(.summary)][0].counters.readings_up // 0' "$truth")
    else
        sent=$(jq -s '[.[] | select(.summary)][0].counters.ingest // 0' "$truth")
    fi
    local events
    events=$(jq -s -r 'group_by(.kind) | map("\(.[0].kind) \(map(.count // 1) | add)") | join(", ")' "$dir/events.jsonl")
    [ -n "$events" ] || events="no security event"
    # attacked seqs that are in the store, and attacked values in the store
    local in_store value_stored
    in_store=$(jq -s --arg k "$kind" --slurpfile s "$stored" '
        [.[] | select(.kind == $k and .seq != null and (.phase // "held") == "held") | . as $a
         | select(any($s[]; .device == $a.device and .seq == $a.seq))] | length' "$truth")
    value_stored=$(jq -s --arg k "$kind" --slurpfile s "$stored" '
        [.[] | select(.kind == $k and .seq != null and .to != null) | . as $a
         | select(any($s[]; .device == $a.device and .seq == $a.seq and .gas == $a.to))] | length' "$truth")
    local n_stored lost refused saw expected
    n_stored=$(wc -l <"$stored")
    case "$kind" in
    alter | strip | token-strip | token-swap) lost=$((attacks - in_store)) ;; # the original never arrived
    drop) lost=$attacks ;;
    *) lost=0 ;;
    esac
    expected=$((sent - lost))
    case "$kind" in
    alter | strip | forge | forge-unsigned | token-strip | token-swap)
        refused=$(pct $((attacks - in_store)) "$attacks")
        saw=$events
        ;;
    replay)
        local stale
        stale=$(jq -s '[.[] | select(.kind == "stale") | (.count // 1)] | add // 0' "$dir/events.jsonl")
        local r=$((dup + stale))
        [ "$r" -gt "$attacks" ] && r=$attacks
        refused=$(pct "$r" "$attacks")
        saw="$dup duplicates; $events"
        value_stored=0
        ;;
    drop)
        refused="n/a"
        local gaps
        gaps=$(jq -s 'group_by(.device) | map(sort_by(.seq) | (.[-1].seq - .[0].seq + 1) - length) | add // 0' "$stored")
        saw="$gaps seqs missing between stored ones; $events"
        value_stored=0
        ;;
    delay)
        refused="n/a"
        local late
        late=$(jq -s --arg k "$kind" --slurpfile s "$stored" --argjson d "$delay_ms" '
            [.[] | select(.kind == $k) | . as $a
             | $s[] | select(.device == $a.device and .seq == $a.seq and (.recv_ms - .ts_ms) >= $d / 2)] | length' "$truth")
        saw="$late of $attacks stored late (recv - ts >= $((delay_ms / 2)) ms); $events"
        value_stored=0
        ;;
    reorder)
        refused="n/a"
        # canaryd sees order only by when it receives: a held reading that it received no
        # earlier than the device's next one (same-millisecond commits cannot be told apart)
        local after
        after=$(jq -s --arg k "$kind" --slurpfile s "$stored" '
            [.[] | select(.kind == $k and .seq != null and (.phase // "held") == "held") | . as $a
             | ([$s[] | select(.device == $a.device and .seq == $a.seq)][0]) as $h
             | ([$s[] | select(.device == $a.device and .seq == $a.seq + 1)][0]) as $n
             | select($h != null and $n != null and $h.recv_ms >= $n.recv_ms)] | length' "$truth")
        saw="$in_store of $attacks stored, $after received no earlier than the next seq; $events"
        value_stored=0
        ;;
    esac
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$tp" "${label/@token/ (token devices)}" "$attacks" "$refused" \
        "$value_stored" "$saw" "$(pct "$n_stored" "$expected") ($n_stored of $expected)"
}

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.1f %%\n", 100 * a / b }'; }

echo "## Network attacker (bench/security.sh, $(date -u +%Y-%m-%d))"
echo
echo "$devices signed devices per run at $sim_rate readings/s for $run_s s, one attack kind per run at rate $attack_rate,"
echo "canaryd with security.unsigned = reject; token rows: $devices bearer-token devices (curl)."
echo
echo "| transport | attack | attacked | refused | attacked value stored | canaryd saw | clean stored |"
echo "|---|---|---:|---:|---:|---|---:|"
for tp in $transports; do
    for kind in $kinds; do
        run "$tp" "$kind"
    done
done

if [ "${NO_DEVICE_PART:-0}" != 1 ] && [ -f "$here/security_device.sh" ]; then
    echo
    echo "## Compromised device (bench/security_device.sh)"
    echo
    bash "$here/security_device.sh" "$build"
fi
