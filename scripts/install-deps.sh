#!/usr/bin/env bash
# install-deps.sh [--bench] — installs the Debian packages canary needs to build, test, run
# and benchmark.
#
# Without arguments: what `make test` and `make demo` need (and CI, through make test).
# --bench adds the packages only the benchmarks use (`make bench`): peers measured in the
# same run, which the build and the tests never touch.
#
# Idempotent: asks dpkg what is missing and installs only that, so a second run costs
# nothing. Needs root or sudo when something is missing. Every dependency of the project
# is listed here and nowhere else; CI and the README commands go through this script.
set -euo pipefail

packages=(
    build-essential cmake pkg-config      # toolchain
    libmicrohttpd-dev                     # HTTP server (ingest, REST API)
    libsqlite3-dev sqlite3                # embedded store (+ CLI for inspection)
    libcjson-dev                          # JSON parsing and output
    libinih-dev                           # configuration file parser
    libcurl4-openssl-dev curl             # HTTP client (simulator, tests, alert delivery)
    libssl-dev                            # libcrypto: HMAC-SHA256 webhook signatures
    libmosquitto-dev mosquitto            # MQTT client library + the broker tests and demo run
    mosquitto-clients                     # mosquitto_pub/_sub: the null subscriber of bench/
    zlib1g-dev                            # crc32 of the MQTT journal's records
    libxgboost-dev                        # gradient boosting / random forest engine (gas classifier)
    chromium                              # headless browser of the dashboard tests
    libcmocka-dev                         # unit tests
    libmbedtls-dev                        # the device SDK's mbedtls backend (ESP-IDF's), tested here
    locales                               # localedef's sources: the SDK's test under a comma locale
    wrk                                   # HTTP load generator for bench/
    jq openssl                            # bench/security.sh: scoring JSON, random keys
)

# ---- benchmarks only (--bench): not installed by CI or `make test` ----
bench_packages=(
    python3-sklearn python3-numpy         # scikit-learn's IsolationForest, bench/iforest.sh
    python3-xgboost                       # the gas classifier's peer: scikit-learn's stack
)

# node and npm: the dashboard's build (uPlot through npm ci) and its browser tests
# (playwright-core). Debian's packages only when no node is installed: a newer one is fine.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
fi

case "${1:-}" in
    "") ;;
    --bench) packages+=("${bench_packages[@]}") ;;
    *) echo "usage: install-deps.sh [--bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
