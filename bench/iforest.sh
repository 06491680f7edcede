#!/usr/bin/env bash
# iforest.sh BUILD_DIR [DATA_DIR] — canary's Isolation Forest against scikit-learn's, same run.
#
# Prints the Isolation Forest tables of docs/BENCHMARKS.md. For every CSV of DATA_DIR
# (default ../shared/data/odds, or BENCH_IFOREST_DATA), one dataset at a time and the two
# implementations back to back (so drift of this shared machine hits both alike):
#   BUILD_DIR/bench/bench_iforest   canary: 100 trees, ψ 256, seeds 1..5, on 1 then 2 threads
#   bench/iforest_sklearn.py        IsolationForest(n_estimators=100, max_samples=256,
#                                   random_state=seed, n_jobs=1), Debian's /usr/bin/python3
# Both print "run IMPL DATASET ROWS DIMS THREADS SEED FIT_MS SCORE_MS AUC" lines (and
# "latency ..." for one-row-at-a-time scoring of the headline dataset, http); this script
# joins them into five tables:
#   1. accuracy: ROC AUC, mean (min–max) over the 5 seeds, beside the paper's figure (Liu,
#      Ting & Zhou 2008, Table 3) and scikit-learn's; target: canary within 0.01 of sklearn
#   2. speed, one thread: median fit and score times of the 5 seeds, ratios, ns per row;
#      targets on http (the headline): fit >= 50x and scoring >= 30x faster than sklearn
#   3. scoring kernels on http, one thread: every batch kernel this CPU runs (avx512, avx2,
#      scalar; src/ml/iforest_score.c) on the same forests, ns per row and tree, x sklearn
#   4. canary on 1 vs 2 threads (scikit-learn 1.2's score_samples has no threads at all)
#   5. streaming: one row per call (iforest_score_row; sklearn's score_samples on one row)
# Without python3-sklearn the sklearn columns are "–" (scripts/install-deps.sh --bench).
# BENCH_IFOREST_SEEDS (5), BENCH_IFOREST_LATENCY_ROWS (100000 for canary; sklearn does 200).
# BENCH_IFOREST_KERNEL=scalar|avx2|avx512 forces canary's batch kernel in tables 2 and 4 (to
# see what a CPU without AVX-512, or an ARM gateway, would get); the header says which ran.
# About 1–1.5 minutes here, nearly all of it scikit-learn. The machine is shared and noisy:
# read ratios between columns of one run.
set -euo pipefail
build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
data=${2:-${BENCH_IFOREST_DATA:-$root/../shared/data/odds}}
seeds=${BENCH_IFOREST_SEEDS:-5}
latency_rows=${BENCH_IFOREST_LATENCY_ROWS:-100000}
kernel=${BENCH_IFOREST_KERNEL:-}
bench="$root/$build/bench/bench_iforest"
python=/usr/bin/python3

[ -x "$bench" ] || { echo "iforest.sh: $bench is missing (build with: cmake --build $build)" >&2; exit 1; }
[ -d "$data" ] || { echo "iforest.sh: no dataset directory $data (give DATA_DIR)" >&2; exit 1; }
kernel_args=()
[ -n "$kernel" ] && kernel_args=(--kernel "$kernel")
out=$(mktemp /tmp/canary-iforest-XXXXXX)
trap 'rm -f "$out"' EXIT

sklearn=""
if [ -x "$python" ] && "$python" -c 'import sklearn' 2>/dev/null; then
    sklearn=$("$python" -c 'import sklearn; print(sklearn.__version__)')
else
    echo "NOTE: python3-sklearn is not installed: canary's columns only" \
        "(install it with: bash scripts/install-deps.sh --bench)"
fi

# The paper's datasets in its order, then any others by name; http is the headline.
files=()
for n in http shuttle mammography annthyroid pima breastw ionosphere; do
    [ -f "$data/$n.csv" ] && files+=("$data/$n.csv")
done
for f in "$data"/*.csv; do
    case " ${files[*]} " in *" $f "*) ;; *) files+=("$f") ;; esac
done
headline=${files[0]}

echo "Isolation Forest: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), build $build," \
    "scikit-learn ${sklearn:-not installed}, $seeds seeds, 100 trees, psi 256${kernel:+, canary kernel forced to $kernel}"
for f in "${files[@]}"; do
    rows=0
    [ "$f" = "$headline" ] && rows=$latency_rows
    # Exit status 3: WARNING lines (checks failed), printed below the tables; else an error.
    "$bench" --seeds "$seeds" --threads 2 --latency-rows "$rows" "${kernel_args[@]}" "$f" >>"$out" ||
        { rc=$?; [ "$rc" -eq 3 ] || exit "$rc"; }
    if [ -n "$sklearn" ]; then
        srows=0
        [ "$f" = "$headline" ] && srows=200
        # One thread for the whole process: no BLAS or OpenMP pools behind n_jobs=1.
        OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
            "$python" "$here/iforest_sklearn.py" --seeds "$seeds" --latency-rows "$srows" "$f" >>"$out"
    fi
done
[ -n "${BENCH_IFOREST_RAW:-}" ] && cp "$out" "$BENCH_IFOREST_RAW"

awk -v paper="http=1.00 shuttle=1.00 mammography=0.86 annthyroid=0.82 pima=0.67 breastw=0.99 ionosphere=0.85" \
    -v headline="$(basename "$headline" .csv)" '
function commas(x,    s, neg) {   # 1234567 -> 1,234,567 (x rounded to an integer)
    s = sprintf("%.0f", x); neg = ""
    if (s ~ /^-/) { neg = "-"; s = substr(s, 2) }
    while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
    return neg s
}
function ms(x) { return x >= 100 ? commas(x) : sprintf(x >= 10 ? "%.1f" : "%.2f", x) }
function median(key, field,    n, i, j, v, t) {   # median of vals[key, field, 1..cnt[key]]
    n = cnt[key]
    for (i = 1; i <= n; i++) v[i] = vals[key, field, i]
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function aucs(key,    n, i, s, lo, hi) {   # sets amean, alo, ahi
    n = cnt[key]; s = 0; lo = 2; hi = -1
    for (i = 1; i <= n; i++) { a = vals[key, "auc", i]; s += a; if (a < lo) lo = a; if (a > hi) hi = a }
    amean = s / n; alo = lo; ahi = hi
}
BEGIN {
    np = split(paper, pp, " ")
    for (i = 1; i <= np; i++) { split(pp[i], kv, "="); pap[kv[1]] = kv[2] }
}
$1 == "run" {
    key = $2 SUBSEP $3 SUBSEP $6
    if (!($3 in rows)) { order[++nd] = $3; rows[$3] = $4; dims[$3] = $5 }
    n = ++cnt[key]
    vals[key, "fit", n] = $8; vals[key, "score", n] = $9; vals[key, "auc", n] = $10
}
$1 == "latency" { lat[$2] = $0 }
$1 == "kernel" { ran[$4] = ran[$4] (ran[$4] == "" ? "" : " ") $3; forced = $5 }
$1 == "kernels" {
    k = $5
    if (!(k in kcnt)) korder[++nk] = k
    kvals[k, ++kcnt[k]] = $7; krows = $4
}
END {
    hasskl = 0
    for (k in cnt) { split(k, p, SUBSEP); if (p[1] == "sklearn") hasskl = 1 }

    print ""
    print "Accuracy: ROC AUC, mean (min–max) over the seeds; target: canary within 0.01 of scikit-learn"
    print "| dataset | rows × dims | paper | scikit-learn | canary | canary − sklearn | within 0.01 |"
    print "|---|---|---:|---:|---:|---:|:-:|"
    met = 0; tot = 0
    for (i = 1; i <= nd; i++) {
        d = order[i]
        aucs("canary" SUBSEP d SUBSEP 1); cm = amean
        cs = sprintf("%.4f (%.3f–%.3f)", amean, alo, ahi)
        ss = "–"; diff = "–"; ok = "–"
        if (cnt["sklearn" SUBSEP d SUBSEP 1] > 0) {
            aucs("sklearn" SUBSEP d SUBSEP 1)
            ss = sprintf("%.4f (%.3f–%.3f)", amean, alo, ahi)
            diff = sprintf("%+.4f", cm - amean)
            tot++
            if (cm - amean <= 0.01 && amean - cm <= 0.01) { ok = "yes"; met++ } else ok = "**no**"
        }
        printf "| %s | %s × %s | %s | %s | %s | %s | %s |\n", d, commas(rows[d]), dims[d],
            (d in pap) ? pap[d] : "–", ss, cs, diff, ok
    }
    if (tot) printf "Within 0.01 of scikit-learn on %d of %d datasets.\n", met, tot

    print ""
    print "Speed, one thread: median of the seeds (fit = training, score = every row of the dataset)"
    print "| dataset | sklearn fit ms | canary fit ms | fit × | sklearn score ms | canary score ms | score × | canary ns/row | ns/row/tree |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nd; i++) {
        d = order[i]; c = "canary" SUBSEP d SUBSEP 1; s = "sklearn" SUBSEP d SUBSEP 1
        cf = median(c, "fit"); cs = median(c, "score")
        sf = "–"; ss = "–"; rf = "–"; rs = "–"
        if (cnt[s] > 0) {
            sfv = median(s, "fit"); ssv = median(s, "score")
            sf = ms(sfv); ss = ms(ssv)
            rf = sprintf("%.0f×", sfv / cf); rs = sprintf("%.0f×", ssv / cs)
            if (d == headline) { hf = sfv / cf; hs = ssv / cs }
        }
        nsrow = cs * 1e6 / rows[d]
        b1 = (d == headline) ? "**" : ""
        printf "| %s%s%s | %s | %s | %s%s%s | %s | %s | %s%s%s | %s | %.1f |\n", b1, d, b1, sf, ms(cf),
            b1, rf, b1, ss, ms(cs), b1, rs, b1, commas(nsrow), nsrow / 100
        if (d == headline) head_nsrow = nsrow
    }
    if (hasskl && hf > 0)
        printf "Targets on %s: fit >= 50× faster: %s (%.0f×); scoring >= 30× faster: %s (%.0f×).\n",
            headline, (hf >= 50 ? "met" : "**missed**"), hf, (hs >= 30 ? "met" : "**missed**"), hs

    line = ""
    for (k in ran) line = line (line == "" ? "" : "; ") k (forced ? " (forced)" : "") ": " ran[k]
    print "canary batch kernel: " line

    if (nk > 0) {
        print ""
        print "Scoring kernels on " headline ", one thread: median of the seeds, the same forests, every row (the kernels take turns)"
        print "| kernel | canary score ms | ns/row | ns/row/tree | × scikit-learn |"
        print "|---|---:|---:|---:|---:|"
        s = "sklearn" SUBSEP headline SUBSEP 1
        for (i = nk; i >= 1; i--) {
            k = korder[i]; n = kcnt[k]
            for (j = 1; j <= n; j++) v[j] = kvals[k, j]
            for (a = 2; a <= n; a++) for (b = a; b > 1 && v[b - 1] > v[b]; b--) { t = v[b]; v[b] = v[b - 1]; v[b - 1] = t }
            med = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            ratio = cnt[s] > 0 ? sprintf("%.0f×", median(s, "score") / med) : "–"
            printf "| %s | %s | %s | %.2f | %s |\n", k, ms(med), commas(med * 1e6 / krows),
                med * 1e6 / krows / 100, ratio
        }
    }

    print ""
    print "canary on 1 and 2 threads: median of the seeds (the same forest and scores on both)"
    print "| dataset | fit ms, 1 thread | fit ms, 2 threads | speed-up | score ms, 1 thread | score ms, 2 threads | speed-up | ns/row, 2 threads |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nd; i++) {
        d = order[i]; c1 = "canary" SUBSEP d SUBSEP 1; c2 = "canary" SUBSEP d SUBSEP 2
        if (cnt[c2] == 0) continue
        f1 = median(c1, "fit"); f2 = median(c2, "fit"); s1 = median(c1, "score"); s2 = median(c2, "score")
        printf "| %s | %s | %s | %.2f× | %s | %s | %.2f× | %s |\n", d, ms(f1), ms(f2), f1 / f2,
            ms(s1), ms(s2), s1 / s2, commas(s2 * 1e6 / rows[d])
    }

    print ""
    print "Streaming: one row per call on " headline " (canary: iforest_score_row, each call timed; sklearn: score_samples on a 1-row array)"
    print "| implementation | rows | mean ns | p50 ns | p99 ns | max ns | batch ns/row (same run) |"
    print "|---|---:|---:|---:|---:|---:|---:|"
    split(lat["canary"], l, " ")
    if (lat["canary"] != "")
        printf "| canary | %s | %s | %s | %s | %s | %s |\n", commas(l[4]), commas(l[5]), commas(l[6]),
            commas(l[7]), commas(l[8]), commas(head_nsrow)
    if (lat["sklearn"] != "") {
        split(lat["sklearn"], l, " ")
        s = "sklearn" SUBSEP headline SUBSEP 1
        printf "| scikit-learn | %s | %s | %s | %s | – | %s |\n", commas(l[4]), commas(l[5]), commas(l[6]),
            commas(l[7]), commas(median(s, "score") * 1e6 / rows[headline])
    }
}' "$out"
sed -n 's/^# clock/canary: clock/p' "$out" | head -1
if grep '^WARNING' "$out"; then exit 1; fi
