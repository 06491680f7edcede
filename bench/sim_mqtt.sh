#!/usr/bin/env bash
# sim_mqtt.sh BUILD_DIR [DEVICES [CONNECTIONS [SECONDS [QOS]]]] — how far `canary simulate
# --transport mqtt` scales: DEVICES simulated devices at 1 reading/s each on CONNECTIONS MQTT
# clients (0 = one client per device) for SECONDS (default 10000 64 60, QoS 1), into a private
# Mosquitto (scripts/broker.sh) with one subscriber on canary/+/up (mosquitto_sub, QoS 1)
# that must receive every reading.
#
# Prints one row for docs/SIMULATOR.md: the rate the subscriber received and the CPU of the
# simulator, the broker and the subscriber (% of one core), all over the steady window (from
# 10 s after the start to 10 s before the end, so the clients' start-up and the drain are
# left out); the simulator's memory; how busy the whole machine was (a second load skews
# everything: rerun when it is far above the three processes' sum); then the simulator's
# summary line and its last detail line (lateness).
set -euo pipefail
build=${1:-build-release}
devices=${2:-10000}
conns=${3:-64}
seconds=${4:-60}
qos=${5:-1}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
canary="$root/$build/canary"
[ -x "$canary" ] || { echo "sim_mqtt.sh: $canary is missing (cmake --build $build)" >&2; exit 1; }
command -v mosquitto_sub >/dev/null || { echo "sim_mqtt.sh: mosquitto-clients is not installed (scripts/install-deps.sh)" >&2; exit 1; }
[ "$seconds" -ge 30 ] || { echo "sim_mqtt.sh: SECONDS must be at least 30" >&2; exit 2; }

work=$(mktemp -d /tmp/canary-sim-mqtt-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    "$root/scripts/broker.sh" stop "$work/broker" || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$("$root/scripts/broker.sh" start "$work/broker")
bpid=$(<"$work/broker/pid")
# One byte per message received: the file's size is the count.
mosquitto_sub -p "$port" -t 'canary/+/up' -q 1 -N -F '.' >"$work/sub.count" &
spid=$!
pids+=("$spid")
sleep 0.5

"$canary" simulate --transport mqtt --broker "127.0.0.1:$port" --devices "$devices" --rate 1 \
    --duration "$seconds" --qos "$qos" --mqtt-connections "$conns" \
    >"$work/sim.out" 2>"$work/sim.err" &
pid=$!
pids+=("$pid")

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy() { awk '/^cpu /{idle = $5 + $6; all = 0; for (i = 2; i <= NF; i++) all += $i; print all, idle; exit}' /proc/stat; }
received() { stat -c %s "$work/sub.count"; }
hz=$(getconf CLK_TCK)
cores=$(nproc)
t0=10
t1=$((seconds - 10))
sleep "$t0"
read -r all0 idle0 < <(busy)
s0=$(ticks "$pid"); b0=$(ticks "$bpid"); u0=$(ticks "$spid"); n0=$(received)
sleep $((t1 - t0))
read -r all1 idle1 < <(busy)
s1=$(ticks "$pid"); b1=$(ticks "$bpid"); u1=$(ticks "$spid"); n1=$(received)
rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
wait "$pid" && rc=0 || rc=$?
pids=("$spid")
sleep 1

w=$((t1 - t0))
pct() { echo $(((($2 - $1) * 100) / (hz * w))); }
echo "devices=$devices connections=$conns qos=$qos seconds=$seconds exit=$rc"
echo "  received by the subscriber: $(((n1 - n0) / w)) msg/s over ${t0}-${t1} s, $(received) in all"
echo "  cpu (% of one core): simulator $(pct "$s0" "$s1")  broker $(pct "$b0" "$b1")  subscriber $(pct "$u0" "$u1");" \
    "machine $((cores * 100 * ((all1 - all0) - (idle1 - idle0)) / (all1 - all0)))% of $((cores * 100))%"
echo "  simulator memory: $((rss / 1024)) MiB"
echo "  $(cat "$work/sim.out")"
echo "  $(grep -v ' t=' "$work/sim.err" | tail -n 1)"
