#!/usr/bin/env bash
# broker.sh — a throwaway Mosquitto broker for the demo and the benchmarks.
#
#   scripts/broker.sh start DIR   write DIR/mosquitto.conf, start mosquitto on 127.0.0.1 and a
#                                 free port, wait until it accepts connections (5 s at most),
#                                 print the port; DIR/port and DIR/pid say the same
#   scripts/broker.sh stop DIR    stop it (SIGTERM, then wait; SIGKILL after 10 s)
#   scripts/broker.sh status DIR  exit 0 and print the port when it runs, 1 otherwise
#
# The configuration suits a load test, not production: anonymous access on loopback only;
# persistence in DIR/ so a persistent session keeps its queue across a restart; up to
# 1,000,000 queued messages per client (the default 1000 would silently drop readings for a
# slow subscriber) and no cap on the messages in flight to a client (the default 20 throttles
# a subscriber to 20 round trips' worth). The log goes to DIR/mosquitto.log: a file, because
# mosquitto only flushes stdout when it exits.
#
# Starting a broker that already runs in DIR prints its port and succeeds; stopping one that
# does not run succeeds too. The broker's open-file limit is raised to the hard limit so that
# it can hold one connection per simulated device.
set -euo pipefail

die() {
    echo "broker.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: scripts/broker.sh start|stop|status DIR" >&2
    exit 2
}

# A random port below the kernel's ephemeral range that nobody listens on. Another process may
# still take it first: start() then tries again with another.
free_port() {
    local lo hi port
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
    for _ in $(seq 1 50); do
        port=$((10000 + RANDOM % (lo > 10100 ? lo - 10000 : 20000)))
        accepts "$port" || {
            echo "$port"
            return 0
        }
    done
    die "found no free port"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
accepts() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The pid in DIR/pid when that process still runs.
running_pid() {
    local dir=$1 pid
    [[ -f $dir/pid ]] || return 1
    pid=$(<"$dir/pid")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

start() {
    local dir=$1 port pid
    command -v mosquitto >/dev/null || die "mosquitto is not installed (scripts/install-deps.sh)"
    if pid=$(running_pid "$dir"); then
        port=$(<"$dir/port")
        accepts "$port" || die "mosquitto (pid $pid) runs in $dir but does not accept on port $port"
        echo "$port"
        return 0
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # Started as root, mosquitto drops to its own user: let that user write the log and the
    # persistence file.
    if [[ $EUID -eq 0 ]] && id mosquitto >/dev/null 2>&1; then
        chown mosquitto "$dir"
    fi
    # One connection per simulated device: as many open files as this shell may have.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    for _ in 1 2 3 4 5; do
        launch "$dir" && return 0
        grep -q "Address already in use" "$dir/mosquitto.log" "$dir/mosquitto.out" 2>/dev/null ||
            die "mosquitto exited at start; see $dir/mosquitto.out and $dir/mosquitto.log: $(tail -n 3 "$dir/mosquitto.out" "$dir/mosquitto.log" 2>/dev/null | tr '\n' ' ')"
    done
    die "mosquitto found no free port after 5 tries; see $dir/mosquitto.log"
}

# Writes the configuration for a fresh port and starts mosquitto. Prints the port and returns
# 0 once it accepts connections; returns 1 when mosquitto exited at start.
launch() {
    local dir=$1 port pid
    port=$(free_port)
    cat >"$dir/mosquitto.conf" <<EOF
# Written by scripts/broker.sh: a loopback broker for the demo and benchmarks.
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $dir/
autosave_interval 60
max_queued_messages 1000000
max_inflight_messages 0
set_tcp_nodelay true
log_dest file $dir/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
connection_messages false
EOF
    rm -f "$dir/port" "$dir/pid" "$dir/mosquitto.log"
    nohup mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.out" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/pid"
    for _ in $(seq 1 100); do
        if accepts "$port"; then
            echo "$port" >"$dir/port"
            echo "$port"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$dir/pid"
            return 1
        fi
        sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
    die "mosquitto did not accept connections on 127.0.0.1:$port within 5 s; see $dir/mosquitto.log"
}

stop() {
    local dir=$1 pid
    if ! pid=$(running_pid "$dir"); then
        rm -f "$dir/pid" "$dir/port"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "broker.sh: mosquitto (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid" "$dir/port"
}

status() {
    local dir=$1
    running_pid "$dir" >/dev/null || return 1
    cat "$dir/port"
}

[[ $# -eq 2 && -n $2 ]] || usage
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
status) status "$2" ;;
*) usage ;;
esac
