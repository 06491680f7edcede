#!/usr/bin/env bash
# demo.sh — canary's main job in one command (`make demo`): a private Mosquitto broker
# (scripts/broker.sh, in ./var/broker), canaryd on its embedded defaults plus MQTT (HTTP on
# 127.0.0.1:8080, SQLite in ./var/) and a small simulated fleet of two sites publishing
# readings over MQTT every second, each device with its last will, answering commands, and
# telling canaryd its name, location and kind (--register: the API then shows "Kitchen 1"
# in "Site 1, kitchen", not just an id). After a minute a gas leak starts in one kitchen,
# after three a fire in one workshop; the alerts appear below as canaryd raises them.
# Ctrl-C stops the fleet and canaryd cleanly. Run `rm -rf var` to start from an empty store.
#
# CANARY_DEMO_PORT changes the port (default 8080); CANARY_BUILD the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CANARY_BUILD:-build}
port=${CANARY_DEMO_PORT:-8080}
url="http://127.0.0.1:$port"
mkdir -p var

if curl -s -o /dev/null --max-time 1 "$url/healthz"; then
    echo "demo: something already answers on $url; stop it or set CANARY_DEMO_PORT" >&2
    exit 1
fi

mqtt_port=$(bash scripts/broker.sh start var/broker) || {
    echo "demo: the MQTT broker did not start; see var/broker/mosquitto.log" >&2
    exit 1
}

pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "demo: stopping..."
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    bash scripts/broker.sh stop var/broker || true
    echo "demo: stopped. The data stays in ./var/canary.db (rm -rf var to start over)."
}
trap stop INT TERM EXIT

# Its own session: a terminal's Ctrl-C reaches only this script, whose trap then sends canaryd
# exactly one SIGINT (a second one would make canaryd exit at once instead of draining).
setsid "$build/canaryd" --listen "127.0.0.1:$port" --log-level warn --set mqtt.enabled=true \
    --set mqtt.port="$mqtt_port" 2>>var/canaryd.log &
pids+=($!)
for _ in $(seq 1 100); do
    curl -s --max-time 1 "$url/healthz" 2>/dev/null | grep -q '"state":"connected"' && break
    sleep 0.1
done
curl -s -o /dev/null --max-time 1 "$url/healthz" || {
    echo "demo: canaryd did not start; see var/canaryd.log" >&2
    exit 1
}

"$build/canary" simulate --transport mqtt --broker "127.0.0.1:$mqtt_port" \
    --devices 8 --rate 1 --duration 0 --seed 1 --prefix site-a --scenario gas-leak --scenario-at 60 --scenario-length 120 \
    --truth var/demo-truth-site-a.csv --register --url "$url" --quiet >>var/simulate.log 2>&1 &
pids+=($!)
"$build/canary" simulate --transport mqtt --broker "127.0.0.1:$mqtt_port" \
    --devices 6 --rate 1 --duration 0 --seed 7 --prefix site-b --scenario fire --scenario-at 180 --scenario-length 90 \
    --truth var/demo-truth-site-b.csv --register --url "$url" --quiet >>var/simulate.log 2>&1 &
pids+=($!)

cat <<MSG

  canary is running: canaryd on $url, 14 simulated devices on two sites publishing
  over MQTT to a private Mosquitto on 127.0.0.1:$mqtt_port (var/broker).
  When the gas leak turns critical, canaryd closes that kitchen's valve and sounds its
  buzzer by MQTT command; the alert's record shows the commands and their acks.

  Look around (the REST API, docs/API.md):
    curl -s $url/api/v1/devices          devices, their status and locations
    curl -s $url/api/v1/latest           the newest value of every sensor
    curl -s $url/api/v1/alerts           alerts (a gas leak starts in ~1 min, a fire in ~3)
    curl -s $url/api/v1/stats            ingest rate, readings, anomalies, MQTT counters
    curl -s -X POST $url/api/v1/devices/site-a-0001/commands -H 'Content-Type: application/json' \\
         -d '{"command":"buzzer","state":"on"}'      a command to a device
    mosquitto_sub -p $mqtt_port -t 'canary/#' -v      the MQTT traffic
    curl -s "$url/api/v1/devices/site-a-0001/readings?metric=gas_ppm&points=60"
    curl -s -X POST $url/api/v1/alerts/<id>/ack -H 'Content-Type: application/json' \\
         -d '{"by":"you","comment":"on my way"}'

  Logs: var/canaryd.log, var/simulate.log. Ground truth of the scenarios: var/demo-truth-*.csv
  Press Ctrl-C to stop. Alerts as canaryd raises them:

MSG
"$build/canary" alerts --url "$url" --follow --limit 50 &
pids+=($!)
wait -n "${pids[@]}" || true
