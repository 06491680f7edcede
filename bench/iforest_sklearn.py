#!/usr/bin/python3
"""iforest_sklearn.py — scikit-learn's IsolationForest under bench_iforest's protocol.

The peer half of bench/iforest.sh: the same datasets, parameters and seeds as
bench/bench_iforest.c, and the same output lines, so the script can join the two.
For each CSV (columns f0..f{d-1},label; label 1 = anomaly), for seeds 1..5:
IsolationForest(n_estimators=100, max_samples=256, random_state=seed, n_jobs=1), the fit
and score_samples timed with time.perf_counter (CLOCK_MONOTONIC on Linux; loading the CSV
is not timed), and ROC AUC = roc_auc_score(label, -score_samples). Then, on the headline
dataset only (http.csv, or the largest given), the single-row path: score_samples on one
row at a time, --latency-rows rows.

Output, one line per measurement, space-separated (lines starting with '#' are comments):
  run sklearn DATASET ROWS DIMS THREADS SEED FIT_MS SCORE_MS AUC
  latency sklearn DATASET ROWS_SCORED MEAN_NS P50_NS P99_NS
Run with Debian's /usr/bin/python3 (python3-sklearn 1.2.1). Usage:
  iforest_sklearn.py [--seeds N] [--latency-rows N] CSV_OR_DIR...
"""
import argparse
import os
import sys
import time


def dataset_paths(args):
    paths = []
    for a in args:
        if os.path.isdir(a):
            paths += sorted(os.path.join(a, f) for f in os.listdir(a) if f.endswith(".csv"))
        else:
            paths.append(a)
    return paths


def load(path, np):
    with open(path) as fh:
        header = fh.readline().strip().split(",")
    if "label" not in header:
        sys.exit(f"{path}: no 'label' column in the header")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    li = header.index("label")
    y = data[:, li].astype(np.int64)
    x = np.ascontiguousarray(np.delete(data, li, axis=1))
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--latency-rows", type=int, default=200)
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()

    try:
        import numpy as np
        import sklearn
        from sklearn.ensemble import IsolationForest
        from sklearn.metrics import roc_auc_score
    except ImportError as e:
        print(f"# scikit-learn unavailable: {e} (apt-get install python3-sklearn)")
        return 3

    print(f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
          f"python {sys.version.split()[0]}")
    paths = dataset_paths(a.paths)
    largest = None
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        x, y = load(path, np)
        rows, dims = x.shape
        # The headline dataset: http, else the largest.
        if largest is None or (largest[0] != "http" and
                               (name == "http" or rows > largest[1].shape[0])):
            largest = (name, x)
        for seed in range(1, a.seeds + 1):
            model = IsolationForest(n_estimators=100, max_samples=256, random_state=seed,
                                    n_jobs=1)
            t0 = time.perf_counter()
            model.fit(x)
            t1 = time.perf_counter()
            s = model.score_samples(x)
            t2 = time.perf_counter()
            auc = roc_auc_score(y, -s)
            print(f"run sklearn {name} {rows} {dims} 1 {seed} {(t1 - t0) * 1e3:.3f} "
                  f"{(t2 - t1) * 1e3:.3f} {auc:.6f}", flush=True)

    if largest is not None and a.latency_rows > 0:
        name, x = largest
        model = IsolationForest(n_estimators=100, max_samples=256, random_state=1,
                                n_jobs=1).fit(x)
        n = min(a.latency_rows, x.shape[0])
        ns = []
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter_ns()
            model.score_samples(x[i:i + 1])
            ns.append(time.perf_counter_ns() - t0)
        total = time.perf_counter() - start
        ns.sort()
        print(f"latency sklearn {name} {n} {total * 1e9 / n:.0f} {ns[n // 2]} "
              f"{ns[min(n - 1, (n * 99) // 100)]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
