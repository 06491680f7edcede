#!/usr/bin/env bash
# mqtt.sh BUILD_DIR — MQTT ingest end to end, beside the broker's own delivery rate.
#
# Prints the MQTT tables of docs/BENCHMARKS.md. For QoS 0 and QoS 1, each row on a fresh
# private Mosquitto on a free loopback port (scripts/broker.sh when it is there and works,
# else a configuration written here; BENCH_MQTT_BROKER=inline forces the latter):
#   null-sub (before), (after)  bench_mqtt null-sub (subscribes canary/+/up and only counts,
#                  like mosquitto_sub >/dev/null) while bench_mqtt publish sends at full
#                  speed: what the broker delivers. Run before and after the canaryd rows;
#                  the mean of the two is the reference (the machine drifts within a run).
#   canaryd, tmpfs / disk  this build's canaryd (database and MQTT journal in /dev/shm, then
#                  in /tmp) while the same publisher sends at full speed: readings committed
#   half rate      the null subscriber, then canaryd on disk, with the publisher paced at half
#                  the reference: publish-to-delivery and publish-to-commit latency
#                  (canaryd's GET /api/v1/stats ingest_lag_ms, ~19 % bucket resolution)
# A rate is the readings delivered or stored over the time from the publisher's start to the
# last delivery or commit, so a backlog drained after the publisher stopped counts against
# it. canaryd's counts come from GET /api/v1/stats once they stopped moving. At QoS 1 every
# reading the broker acknowledged must be stored exactly once (else a WARNING); at QoS 0
# losses are reported. Below the table: CPU per process in % of one core over each row, and
# canaryd's five busiest threads. Targets (issue): canaryd stores >= 90 % of the null-sub
# rate, and its p99 latency stays < 50 ms at half of it.
#
# BENCH_MQTT_DURATION (s of publishing per row, default 10), BENCH_MQTT_DEVICES (1000),
# BENCH_MQTT_CONNECTIONS (publisher connections, 4). About 3 minutes with the defaults.
# BENCH_MQTT_PACED="0:45000 1:22000" (with BENCH_MQTT_REPEAT=N) skips the full-speed rows
# and measures latency only, at the given QoS:rate pairs: run it for two builds to compare.
# The machine is shared and noisy: read ratios between rows of one run.
set -euo pipefail
build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bench="$root/$build/bench/bench_mqtt"
canaryd="$root/$build/canaryd"
duration=${BENCH_MQTT_DURATION:-10}
devices=${BENCH_MQTT_DEVICES:-1000}
conns=${BENCH_MQTT_CONNECTIONS:-4}
hz=$(getconf CLK_TCK)

for f in "$bench" "$canaryd"; do
    [ -x "$f" ] || { echo "mqtt.sh: $f is missing (build with: cmake --build $build)" >&2; exit 1; }
done
command -v mosquitto >/dev/null || { echo "mqtt.sh: mosquitto is not installed (scripts/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/canary-mqtt-XXXXXX)     # canaryd on disk, logs
shm=$(mktemp -d /dev/shm/canary-mqtt-XXXXXX)  # canaryd on tmpfs
brokerdir=""                                  # the running broker's directory
cpid=""                                       # the running canaryd
cleanup() {
    [ -n "$cpid" ] && kill -TERM "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
    [ -n "$brokerdir" ] && broker_stop
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    rm -rf "$work" "$shm"
}
trap cleanup EXIT

# ---- the broker -------------------------------------------------------------------------

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts a fresh broker in a new directory; sets brokerdir and port.
broker_start() {
    brokerdir=$(mktemp -d /tmp/canary-mqtt-broker-XXXXXX)
    if [ "${BENCH_MQTT_BROKER:-}" != inline ] && [ -x "$root/scripts/broker.sh" ] &&
        port=$("$root/scripts/broker.sh" start "$brokerdir" 2>>"$work/broker.err"); then
        broker_kind=broker.sh
        return 0
    fi
    broker_kind=inline
    # As root mosquitto would drop to the user "mosquitto", who cannot write here.
    local user_line=""
    [ "$(id -u)" -eq 0 ] && user_line="user root"
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 20000))
        accepts "$port" && continue
        cat >"$brokerdir/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
$user_line
persistence false
max_queued_messages 1000000
max_inflight_messages 0
set_tcp_nodelay true
log_dest file $brokerdir/mosquitto.log
log_type error
log_type warning
connection_messages false
EOF
        mosquitto -c "$brokerdir/mosquitto.conf" >"$brokerdir/mosquitto.out" 2>&1 </dev/null &
        echo $! >"$brokerdir/pid"
        for _ in $(seq 1 100); do
            accepts "$port" && return 0
            kill -0 "$(cat "$brokerdir/pid")" 2>/dev/null || break
            sleep 0.05
        done
        kill "$(cat "$brokerdir/pid")" 2>/dev/null || true
    done
    echo "mqtt.sh: could not start mosquitto; see $brokerdir/mosquitto.log" >&2
    exit 1
}

broker_stop() {
    if [ "$broker_kind" = broker.sh ]; then
        "$root/scripts/broker.sh" stop "$brokerdir" || true
    else
        local pid
        pid=$(cat "$brokerdir/pid")
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$brokerdir"
    brokerdir=""
}

broker_pid() { cat "$brokerdir/pid"; }

# ---- measuring --------------------------------------------------------------------------

# kv KEY LINE: the value of KEY=... in a bench_mqtt output line.
kv() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# jnum KEY JSON: the first number after "KEY": in JSON.
jnum() { echo "$2" | grep -o "\"$1\":[0-9.e+-]*" | head -1 | cut -d: -f2; }

# CPU ticks (user + system) of a process, or of each of its threads ("tid ticks" lines).
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
thread_ticks() {
    for t in /proc/"$1"/task/*; do
        echo "${t##*/} $(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null || echo 0)"
    done
}

pct() { awk -v t="$1" -v hz="$hz" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? t / hz * 100000 / ms : 0) }'; }

publish() { # QOS RATE|max: runs the publisher, sets pub (its output line)
    pub=$("$bench" publish --port "$port" --qos "$1" --devices "$devices" --connections "$conns" \
        --rate "$2" --duration "$duration" 2>>"$work/publish.err") ||
        echo "WARNING: publisher failed: $(tail -n 2 "$work/publish.err")" >&2
}

rows=()        # "QoS;label;published/s;rate;lost;lag p50;lag p99;reference" per row
cpu_rows=()    # CPU table rows
declare -A ref # the null-sub rate each row is compared with: ref[QoS-full], ref[QoS-half]

# null_run QOS RATE|max LABEL REFERENCE: the null subscriber beside the publisher; sets
# null_rate.
null_run() {
    local q=$1 rate=$2 label=$3 refname=$4 ready="$work/null-ready-$RANDOM" out b0 sub
    broker_start
    b0=$(ticks "$(broker_pid)")
    "$bench" null-sub --port "$port" --qos "$q" --ready-file "$ready" --idle 1 \
        --timeout $((duration + 60)) >"$work/null.out" 2>>"$work/null.err" &
    sub=$!
    for _ in $(seq 1 200); do [ -e "$ready" ] && break; sleep 0.05; done
    [ -e "$ready" ] || { echo "mqtt.sh: the null subscriber did not subscribe; see $work/null.err" >&2; exit 1; }
    publish "$q" "$rate"
    wait "$sub" || echo "WARNING: null-sub failed: $(tail -n 2 "$work/null.err")" >&2
    out=$(cat "$work/null.out")
    local start end sent got span
    start=$(kv start_ms "$pub")
    end=$(kv last_ms "$out")
    sent=$(kv acked "$pub")
    got=$(kv received "$out")
    span=$((end - start))
    null_rate=$(awk -v n="$got" -v ms="$span" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
    rows+=("$q;$label;$(kv acked_rate "$pub");$null_rate;$((sent - got));$(kv lag_p50_ms "$out");$(kv lag_p99_ms "$out");$refname")
    cpu_rows+=("| $q | $label | $(pct $(($(ticks "$(broker_pid)") - b0)) "$span") | $(awk -v c="$(kv cpu_s "$out")" -v ms="$span" 'BEGIN { printf "%.0f", c * 100000 / ms }') | $(awk -v c="$(kv cpu_s "$pub")" -v ms="$span" 'BEGIN { printf "%.0f", c * 100000 / ms }') |")
    broker_stop
}

# canaryd_run QOS RATE|max DIR LABEL REFERENCE: canaryd beside the publisher.
canaryd_run() {
    local q=$1 rate=$2 dir=$3 label=$4 refname=$5 stats="" state=""
    broker_start
    rm -f "$dir"/canary.db* "$dir/ready"
    "$canaryd" --listen 127.0.0.1:0 --ready-file "$dir/ready" --db "$dir/canary.db" \
        --set mqtt.enabled=true --set mqtt.port="$port" --set mqtt.qos="$q" \
        --set mqtt.client_id="bench-$$-$q-$RANDOM" --set security.unsigned=accept \
        --log-level warn 2>>"$work/canaryd.log" &
    cpid=$!
    for _ in $(seq 1 200); do [ -s "$dir/ready" ] && break; sleep 0.05; done
    [ -s "$dir/ready" ] || { echo "mqtt.sh: canaryd did not start; see $work/canaryd.log" >&2; exit 1; }
    local http
    http=$(cat "$dir/ready")
    stats() { curl -s "http://127.0.0.1:$http/api/v1/stats"; }
    for _ in $(seq 1 100); do
        state=$(stats | grep -o '"state":"[a-z]*"' | cut -d'"' -f4)
        [ "$state" = connected ] && break
        sleep 0.05
    done
    [ "$state" = connected ] || { echo "mqtt.sh: canaryd did not connect to the broker; see $work/canaryd.log" >&2; exit 1; }
    sleep 0.5 # connected means CONNACK; the SUBACK follows within a round trip
    local b0 t0 threads0
    b0=$(ticks "$(broker_pid)")
    t0=$(ticks "$cpid")
    threads0=$(thread_ticks "$cpid")
    publish "$q" "$rate"
    # Wait until everything received is committed and nothing moves for 1 s.
    local last="" same=0 accepted queued unreleased
    for _ in $(seq 1 900); do
        stats=$(stats)
        accepted=$(jnum readings_accepted "$stats")
        queued=$(jnum queued "$stats")
        unreleased=$(jnum journal_unreleased "$stats")
        if [ "$accepted" = "$last" ] && [ "$queued" = 0 ] && [ "$unreleased" = 0 ]; then
            same=$((same + 1))
            [ "$same" -ge 10 ] && break
        else
            same=0
            last=$accepted
        fi
        sleep 0.1
    done
    local b1 t1 threads1
    b1=$(ticks "$(broker_pid)")
    t1=$(ticks "$cpid")
    threads1=$(thread_ticks "$cpid")
    kill -TERM "$cpid"
    wait "$cpid" || echo "WARNING: canaryd exited with an error; see $work/canaryd.log" >&2
    cpid=""
    broker_stop
    local start end sent span stored lost extra lag
    start=$(kv start_ms "$pub")
    end=$(jnum last_commit_ms "$stats")
    sent=$(kv acked "$pub")
    span=$((end - start))
    stored=$(awk -v n="$accepted" -v ms="$span" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
    lost=$((sent - accepted))
    extra=""
    for k in readings_invalid readings_duplicate rejected topic_mismatches; do
        [ "$(jnum "$k" "$stats")" = 0 ] || extra="$extra $k=$(jnum "$k" "$stats")"
    done
    [ -z "$extra" ] || echo "WARNING: QoS $q $label:$extra" >&2
    [ "$q" = 0 ] || [ "$lost" = 0 ] ||
        echo "WARNING: QoS 1 $label: the broker acknowledged $sent readings, canaryd stored $accepted" >&2
    lag=$(echo "$stats" | grep -o '"ingest_lag_ms":{[^}]*}')
    rows+=("$q;$label;$(kv acked_rate "$pub");$stored;$lost;$(jnum p50 "$lag");$(jnum p99 "$lag");$refname")
    # canaryd's busiest threads, by CPU over the run (threads are unnamed: tid order is
    # creation order).
    local busiest
    busiest=$(join <(echo "$threads0" | sort) <(echo "$threads1" | sort) |
        awk -v hz="$hz" -v ms="$span" '{ printf "%s %.0f\n", $1, ($3 - $2) / hz * 100000 / ms }' |
        sort -k2,2nr | head -5 | awk '{ printf "%s%s", (NR > 1 ? " / " : ""), $2 }')
    cpu_rows+=("| $q | $label | $(pct $((b1 - b0)) "$span") | $(pct $((t1 - t0)) "$span") ($busiest) | $(awk -v c="$(kv cpu_s "$pub")" -v ms="$span" 'BEGIN { printf "%.0f", c * 100000 / ms }') |")
}

echo "MQTT ingest: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, build $build; publisher: $conns connections, $devices devices, ${duration} s per row; broker: mosquitto $(mosquitto -h 2>/dev/null | awk 'NR == 1 { print $3 }')"
# Full speed: the null subscriber before and after canaryd, their mean the reference (the
# machine drifts within a run); then half of that, paced.
if [ -n "${BENCH_MQTT_PACED:-}" ]; then
    # Latency only: for each QOS:RATE, the null subscriber and canaryd (disk) paced at RATE,
    # BENCH_MQTT_REPEAT times (default 1). Run it for two builds, alternating, to compare.
    for entry in $BENCH_MQTT_PACED; do
        q=${entry%%:*}
        rate=${entry#*:}
        ref[$q-half]=$rate
        for _ in $(seq 1 "${BENCH_MQTT_REPEAT:-1}"); do
            null_run "$q" "$rate" "null-sub, paced" half
            canaryd_run "$q" "$rate" "$work" "canaryd, disk, paced" half
        done
    done
    qs=$(for entry in $BENCH_MQTT_PACED; do echo "${entry%%:*}"; done | sort -u)
else
qs="0 1"
for q in 0 1; do
    null_run "$q" max "null-sub (before)" full
    first=$null_rate
    canaryd_run "$q" max "$shm" "canaryd, tmpfs" full
    canaryd_run "$q" max "$work" "canaryd, disk" full
    null_run "$q" max "null-sub (after)" full
    ref[$q-full]=$(((first + null_rate) / 2))
    half=$((ref[$q-full] / 2))
    null_run "$q" "$half" "null-sub, half rate" half
    ref[$q-half]=$half
    canaryd_run "$q" "$half" "$work" "canaryd, disk, half rate" half
done
fi
echo "(broker: $broker_kind; vs null-sub: full-speed rows against the mean of the two null-sub runs, half-rate rows against the paced rate)"
echo
echo "| QoS | subscriber | published/s | delivered or stored/s | vs null-sub | lost | lag p50 ms | lag p99 ms |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for r in "${rows[@]}"; do
    IFS=';' read -r q label published rate lost p50 p99 refname <<<"$r"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$q" "$label" "$published" "$rate" \
        "$(awk -v a="$rate" -v b="${ref[$q-$refname]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
        "$lost" "$p50" "$p99"
done
for q in $qs; do
    if [ -n "${BENCH_MQTT_PACED:-}" ]; then
        echo "QoS $q: paced at ${ref[$q-half]}/s"
    else
        echo "QoS $q: null-sub $((ref[$q-full])) readings/s (mean of two), half rate ${ref[$q-half]}/s"
    fi
done
echo
echo "CPU, % of one core over each row (canaryd's five busiest threads in brackets):"
echo "| QoS | subscriber | broker | subscriber | publisher |"
echo "|---|---|---:|---:|---:|"
printf '%s\n' "${cpu_rows[@]}"
