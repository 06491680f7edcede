#!/usr/bin/env bash
# access.sh BUILD_DIR — what access control costs a request (docs/ACCESS.md, "What it costs";
# docs/BENCHMARKS.md, "Access control").
#
# Two canaryd of BUILD_DIR on loopback, their stores on tmpfs, alive side by side: OPEN has no
# user (access control off: the peer, as canaryd was before issue 7), LOCKED has a user, an
# API token and a dashboard session. wrk sends GET /api/v1/session — the cheapest call that
# resolves the caller, so what is measured is the credential, not a handler's work — with
# each credential in turn, the peer right before each, ACCESS_ROUNDS rounds (9) of ACCESS_S
# seconds (1) each, 4 connections on one thread: many short pairs, because this machine's load
# swings by 3x within a minute and only a ratio taken within a pair survives it. The table
# gives requests/s and median latency (median of the rounds, min–max) and, per pair, the
# credential's requests/s and p50 latency against the peer's; the median of those ratios. Then ACCESS_LOGINS logins (5) end to end with curl (one scrypt hash each, on a
# fresh name so no lockout intervenes), and as many refused ones (a wrong password: the
# same hash, then the 401).
set -euo pipefail
build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
case "$build" in /*) bdir=$build ;; *) bdir=$root/$build ;; esac
canaryd="$bdir/canaryd"
rounds=${ACCESS_ROUNDS:-9}
seconds=${ACCESS_S:-1}
logins=${ACCESS_LOGINS:-5}
[ -x "$canaryd" ] || { echo "access.sh: $canaryd is missing (cmake --build $build)" >&2; exit 1; }
for c in wrk curl jq openssl; do
    command -v "$c" >/dev/null || { echo "access.sh: $c is not installed (scripts/install-deps.sh --bench)" >&2; exit 1; }
done

shm=$(mktemp -d /dev/shm/canary-access-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$shm"
}
trap cleanup EXIT

admin=$(openssl rand -hex 24)
start() { # $1 = name; prints the port
    mkdir -p "$shm/$1"
    CANARY_API_ADMIN_TOKEN=$admin "$canaryd" --listen 127.0.0.1:0 --db "$shm/$1/canary.db" \
        --ready-file "$shm/$1/port" --log-level warn 2>>"$shm/$1/canaryd.log" &
    pids+=($!)
    for _ in $(seq 1 200); do [ -s "$shm/$1/port" ] && break; sleep 0.05; done
    [ -s "$shm/$1/port" ] || { echo "access.sh: canaryd ($1) did not start" >&2; cat "$shm/$1/canaryd.log" >&2; exit 1; }
}
start open
start locked
open="http://127.0.0.1:$(cat "$shm/open/port")"
locked="http://127.0.0.1:$(cat "$shm/locked/port")"

# LOCKED: a user, an API token, a session.
password=$(openssl rand -hex 12)
post() { curl -sf -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d "$2" "$locked$1"; }
post /api/v1/users "{\"name\":\"olga\",\"role\":\"operator\",\"password\":\"$password\"}" >/dev/null
token=$(post /api/v1/tokens '{"name":"bench","role":"viewer"}' | jq -r .token)
cookie=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"user\":\"olga\",\"password\":\"$password\"}" "$locked/api/v1/session" |
    awk -F'[ ;]' 'tolower($1) == "set-cookie:" { print $2 }' | tr -d '\r')
[ -n "$token" ] && [ "$token" != null ] && [ -n "$cookie" ] || { echo "access.sh: could not make a token and a session" >&2; exit 1; }

# One wrk run: $1 = base URL, $2 = header ("" for none) -> "rps p50_us p99_us non2xx"
run() {
    local hdr=()
    [ -n "$2" ] && hdr=(-H "$2")
    wrk -t1 -c4 -d"${seconds}s" --latency "${hdr[@]}" "$1/api/v1/session" 2>&1 | awk '
        function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
        /^Requests\/sec/ { rps = $2 }
        $1 == "50%" { p50 = us($2) }
        $1 == "99%" { p99 = us($2) }
        /Non-2xx or 3xx responses/ { bad = $NF }
        END { printf "%.0f %.0f %.0f %d\n", rps, p50, p99, bad }'
}

names=(peer admin token cookie refused)
label_peer="no user (access control off) — the peer"
label_admin="admin token (api.admin_token)"
label_token="API token (SHA-256, one indexed SELECT)"
label_cookie="session cookie (SHA-256, a SELECT joining the user)"
label_refused="no credential once a user exists (401)"
declare -A rps p50 p99 ratio lratio
for r in $(seq 1 "$rounds"); do
    echo "round $r/$rounds ..." >&2
    for n in admin token cookie refused; do
        read -r pr pp5 pp9 pbad <<<"$(run "$open" "")"
        [ "$pbad" = 0 ] || echo "WARNING: the peer got $pbad non-2xx answers" >&2
        case $n in
            admin) h="Authorization: Bearer $admin" ;;
            token) h="Authorization: Bearer $token" ;;
            cookie) h="Cookie: $cookie" ;;
            refused) h="" ;;
        esac
        read -r xr xp5 xp9 xbad <<<"$(run "$locked" "$h")"
        if [ "$n" = refused ]; then
            [ "$xbad" != 0 ] || echo "WARNING: the anonymous calls were not refused" >&2
        else
            [ "$xbad" = 0 ] || echo "WARNING: $n got $xbad non-2xx answers" >&2
        fi
        rps[peer]+="$pr "; p50[peer]+="$pp5 "; p99[peer]+="$pp9 "
        rps[$n]+="$xr "; p50[$n]+="$xp5 "; p99[$n]+="$xp9 "
        ratio[$n]+="$(awk -v a="$xr" -v b="$pr" 'BEGIN { printf "%.2f", a / b }') "
        lratio[$n]+="$(awk -v a="$xp5" -v b="$pp5" 'BEGIN { printf "%.2f", a / b }') "
    done
done

stat() { # "v1 v2 ..." -> "median (min–max)"
    printf '%s\n' $1 | sort -n | awk '{ v[NR] = $1 } END { printf "%s (%s–%s)", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
med() { printf '%s\n' $1 | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo
echo "GET /api/v1/session, wrk 1 thread, 4 connections, ${seconds} s, $rounds rounds (the peer runs before each), stores on tmpfs"
echo "| credential | requests/s | p50 µs | p99 µs | requests/s ÷ the peer's | p50 ÷ the peer's |"
echo "|---|---:|---:|---:|---:|---:|"
for n in "${names[@]}"; do
    label_var="label_$n"
    if [ "$n" = peer ]; then
        rr="1"; lr="1"
    else
        rr=$(stat "${ratio[$n]}"); lr=$(stat "${lratio[$n]}")
    fi
    printf "| %s | %s | %s | %s | %s | %s |\n" "${!label_var}" "$(stat "${rps[$n]}")" "$(stat "${p50[$n]}")" "$(stat "${p99[$n]}")" "$rr" "$lr"
done

# Logins, end to end: a fresh user each time (no lockout); the refused ones hash as well.
ok=(); bad=()
for i in $(seq 1 "$logins"); do
    post /api/v1/users "{\"name\":\"bench$i\",\"role\":\"viewer\",\"password\":\"$password\"}" >/dev/null
    ok+=("$(curl -s -o /dev/null -w '%{time_total}' -H 'Content-Type: application/json' \
        -d "{\"user\":\"bench$i\",\"password\":\"$password\"}" "$locked/api/v1/session" | awk '{ printf "%.0f", $1 * 1000 }')")
    bad+=("$(curl -s -o /dev/null -w '%{time_total}' -H 'Content-Type: application/json' \
        -d "{\"user\":\"bench$i\",\"password\":\"wrong-$password\"}" "$locked/api/v1/session" | awk '{ printf "%.0f", $1 * 1000 }')")
done
echo
echo "Logins, curl, one after another ($logins each)"
echo "| | ms, median (min–max) |"
echo "|---|---:|"
printf "| a login (scrypt ln=15 r=8 p=1, a session row, the cookie) | %s |\n" "$(stat "${ok[*]}")"
printf "| a wrong password (the same hash, then 401) | %s |\n" "$(stat "${bad[*]}")"
