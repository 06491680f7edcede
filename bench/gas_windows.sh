#!/usr/bin/env bash
# gas_windows.sh BUILD_DIR [CSV] — the gas classifier with and without window features, and
# how its default was chosen without looking at the test rows.
#
# For each variant (no window; the mean, the slope, or both over the last 24 readings; both
# over 16 and 48), BUILD_DIR/bench/bench_gas --quick is run twice:
#   validation  on the samples 0..1023 of each class only (the training part of the outer
#               time split): its own time split holds out the latest 20% of those (samples
#               819..1023); this column is what chooses the default;
#   test        on the whole file (samples 0..1279): the outer time split (the latest 20%,
#               1024..1279) and the stratified random split, as make bench-gas reports them.
# It prints one table: stack accuracy on each, the stack's prediction time per row and the
# window's own cost per reading (gas_stream_push: canaryd pays both per reading). Times come
# from one noisy shared machine: compare rows of one run. About 4 minutes here.
set -euo pipefail
build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
data=${2:-${BENCH_GAS_DATA:-$root/../shared/data/gas/gas_train.csv}}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
bench="$build/bench/bench_gas"
[ -x "$bench" ] || { echo "gas_windows.sh: $bench is missing (build with: cmake --build $build)" >&2; exit 1; }
[ -f "$data" ] || { echo "gas_windows.sh: no dataset $data (give CSV)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/canary-gasw-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# The training part of the outer time split: samples 0..1023 of each class.
awk -F, 'NR == 1 || $1 < 1024' "$data" >"$tmp/inner.csv"

echo "Gas window features: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, build $(basename "$build"), $(basename "$data")"
echo
echo "| window features | validation: time split inside samples 0..1023 | test: time split | test: random split | stack predict/row | window per reading |"
echo "|---|---|---|---|---|---|"
for v in "0 mean none" "24 mean mean" "24 slope slope" "24 mean,slope mean+slope" \
    "16 mean,slope mean+slope" "48 mean,slope mean+slope"; do
    set -- $v
    label=$([ "$1" = 0 ] && echo "none (the reading alone)" || echo "$3 over $1 readings")
    "$bench" --quick --reps 10 --window "$1" --window-features "$2" "$tmp/inner.csv" >"$tmp/in"
    "$bench" --quick --reps 10 --window "$1" --window-features "$2" "$data" >"$tmp/out"
    awk -v label="$label" '
    FILENAME == ARGV[1] && $1 == "run" && $3 == "time" && $4 == "stack" { val = $5 }
    FILENAME == ARGV[2] && $1 == "run" && $4 == "stack" { acc[$3] = $5; if ($3 == "time") ns = $8 }
    FILENAME == ARGV[2] && /gas_stream_push/ { push = $4 }
    END {
        printf "| %s | %.2f%% | %.2f%% | %.2f%% | %.2f µs | %s |\n", label, 100 * val,
            100 * acc["time"], 100 * acc["random"], ns / 1000,
            (push == "" ? "–" : sprintf("%.2f µs", push / 1000))
    }' "$tmp/in" "$tmp/out"
done
