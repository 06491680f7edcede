#!/usr/bin/env bash
# demo.sh — canary's main job in one command (`make demo`): a private Mosquitto broker
# (scripts/broker.sh, in ./var/broker), canaryd on its embedded defaults plus MQTT (HTTP on
# 127.0.0.1:8080, SQLite in ./var/) and a small simulated fleet of two sites publishing
# readings over MQTT every second, each device with its last will, answering commands, and
# telling canaryd its name, location and kind (--register: the API then shows "Kitchen 1"
# in "Site A, kitchen", not just an id). After a minute a gas leak starts in a room of site A
# with a gas sensor, after three a fire in a room of site B; the alerts appear below as
# canaryd raises them.
# Critical alerts also go out by phone: canaryd sends an SMS to the operator and, when nobody
# acknowledges within 2 minutes, calls them, through Twilio's REST API — here canary-fakephone
# (tools/fakephone.c), a fake of that API on loopback that prints each SMS and call in this
# terminal (lines marked "phone │") and in var/fakephone.log. canaryd's configuration for it
# is var/demo.conf (mode 0600: it holds the made-up Twilio token, and canaryd takes secrets
# only from such files or the environment).
# Ctrl-C stops the fleet, canaryd and the phone cleanly. `rm -rf var` starts from an empty store.
#
# CANARY_DEMO_PORT changes the port (default 8080); CANARY_BUILD the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CANARY_BUILD:-build}
port=${CANARY_DEMO_PORT:-8080}
url="http://127.0.0.1:$port"
mkdir -p var

if [ ! -x "$build/canary-fakephone" ]; then
    echo "demo: $build/canary-fakephone is missing; build first (make build)" >&2
    exit 1
fi

if curl -s -o /dev/null --max-time 1 "$url/healthz"; then
    echo "demo: something already answers on $url; stop it or set CANARY_DEMO_PORT" >&2
    exit 1
fi

mqtt_port=$(bash scripts/broker.sh start var/broker) || {
    echo "demo: the MQTT broker did not start; see var/broker/mosquitto.log" >&2
    exit 1
}

pids=()
phone_pid=
display_pid=
stop() {
    trap - INT TERM EXIT
    echo
    echo "demo: stopping..."
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    # The phone last: canaryd may still deliver while it drains. Its display ends with it
    # (tail --pid), after showing its last line, the count of what it got.
    if [ -n "$phone_pid" ]; then
        kill -INT "$phone_pid" 2>/dev/null || true
        wait "$phone_pid" 2>/dev/null || true
    fi
    if [ -n "$display_pid" ]; then wait "$display_pid" 2>/dev/null || true; fi
    bash scripts/broker.sh stop var/broker || true
    echo "demo: stopped. The data stays in ./var/canary.db (rm -rf var to start over)."
}
trap stop INT TERM EXIT

# The phone network: canary-fakephone on a free loopback port, with a made-up account and a
# fresh random token, which it reads from the environment and canaryd from var/demo.conf
# (never from a command line, where other users could read it).
demo_sid=ACd3m0000000000000000000000000000d
demo_token=demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
operator=+15550100
rm -f var/fakephone.port
touch var/fakephone.log
phone_log_start=$(($(stat -c %s var/fakephone.log) + 1))
FAKEPHONE_AUTH_TOKEN="$demo_token" setsid "$build/canary-fakephone" --port 0 \
    --port-file var/fakephone.port --account-sid "$demo_sid" --contact "$operator=operator" \
    --quiet-log >>var/fakephone.log 2>&1 &
phone_pid=$!
for _ in $(seq 1 50); do
    [ -s var/fakephone.port ] && break
    sleep 0.1
done
phone_port=$(cat var/fakephone.port 2>/dev/null) || {
    echo "demo: canary-fakephone did not start; see var/fakephone.log" >&2
    exit 1
}

# canaryd's delivery settings: the operator gets an SMS when an alert turns critical and a
# call after 2 more minutes without an acknowledgement (docs/ALERTING.md).
(
    umask 077
    cat >var/demo.conf.tmp <<CONF
# Written by scripts/demo.sh on every start; edits are lost. Mode 0600: it holds a secret.
[notify]
twilio_base_url = http://127.0.0.1:$phone_port
twilio_account_sid = $demo_sid
twilio_auth_token = $demo_token
twilio_from = +15005550006
escalate_after_min = 2

[recipient.operator]
sms = $operator
voice = $operator

[route.critical]
severities = critical
steps = sms:operator, voice:operator
CONF
    chmod 600 var/demo.conf.tmp
    mv -f var/demo.conf.tmp var/demo.conf
)

# Its own session: a terminal's Ctrl-C reaches only this script, whose trap then sends canaryd
# exactly one SIGINT (a second one would make canaryd exit at once instead of draining).
# The simulated fleet sends unsigned readings: the demo accepts them (canaryd's default,
# security.unsigned = reject, would refuse them; docs/SECURITY.md).
setsid "$build/canaryd" --config var/demo.conf --listen "127.0.0.1:$port" --log-level warn \
    --set mqtt.enabled=true --set mqtt.port="$mqtt_port" --set security.unsigned=accept \
    2>>var/canaryd.log &
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

  Dashboard: $url/   (open it in a browser: live values, the critical banner, history,
  alerts with their notifications)
  When the gas leak turns critical, canaryd closes that room's gas valve and sounds its
  buzzer by MQTT command; the alert's record shows the commands and their acks.

  Critical alerts reach the operator's phone ($operator): an SMS as soon as an alert turns
  critical, a voice call if nobody acknowledges it within 2 minutes. The phone is
  canary-fakephone, a fake of Twilio's API on 127.0.0.1:$phone_port; what it receives shows
  below, lines marked "phone │", and in var/fakephone.log. canaryd's settings: var/demo.conf.

  Look around (the REST API, docs/API.md):
    curl -s $url/api/v1/devices          devices, their status and locations
    curl -s $url/api/v1/latest           the newest value of every sensor
    curl -s $url/api/v1/alerts           alerts (a gas leak starts in ~1 min, a fire in ~3)
    curl -s $url/api/v1/stats            ingest rate, readings, anomalies, MQTT counters
    curl -s -X POST $url/api/v1/devices/site-a-0001/commands -H 'Content-Type: application/json' \\
         -d '{"command":"buzzer","state":"on"}'      a command to a device
    mosquitto_sub -p $mqtt_port -t 'canary/#' -v      the MQTT traffic
    curl -s "$url/api/v1/devices/site-a-0001/readings?metric=gas_ppm&points=60"
    curl -s $url/api/v1/notifications    the outbox: each SMS and call, its state, Twilio's sid
    curl -s -X POST $url/api/v1/alerts/<id>/ack -H 'Content-Type: application/json' \\
         -d '{"by":"you","comment":"on my way"}'     acknowledge: no call follows
  (No Authorization header needed: the demo sets no api.admin_token.)

  Logs: var/canaryd.log, var/simulate.log, var/fakephone.log. Ground truth of the
  scenarios: var/demo-truth-*.csv
  Press Ctrl-C to stop. Alerts as canaryd raises them:

MSG
# The phone's screen, from where this run's log starts; ends with the phone (--pid).
tail -c "+$phone_log_start" -f --pid="$phone_pid" var/fakephone.log |
    sed -u 's/^/  phone │ /; s/ $//' &
display_pid=$!
"$build/canary" alerts --url "$url" --follow --limit 50 &
pids+=($!)
wait -n "${pids[@]}" || true
