#!/usr/bin/python3
"""gas_sklearn.py — scikit-learn's StackingClassifier under bench_gas's protocol.

The peer half of bench/gas.sh: the same CSV, the same rows held out (read from the splits
file bench_gas writes: one line per split, "NAME 0101...", 1 = test row), the same output
lines, so the script can join them. The model is the seed system's: StackingClassifier of
RandomForestClassifier(100), make_pipeline(StandardScaler(), LogisticRegression()) and
XGBClassifier(100 rounds, tree_method="hist"), final_estimator LogisticRegression(), cv=5
(out-of-fold, stratified), each base learner also scored alone. Two feature sets:
  sklearn       the 7 raw sensor values (what the seed system used);
  sklearn_feat  canary's default features, recomputed here: centred log-ratios of the
                readings and of each sensor's mean over the last 24 readings of its class's
                recording (cold start: the mean of what there is), so the table separates
                what the features bring from what the engine brings.
Fit time is StackingClassifier.fit (k-fold fits of all three, the meta-learner, the refits)
or the base learner's own fit; predict time is the mean of predict_proba on one row at a time
over --latency-rows rows (the streaming path).

Output ('#' lines are comments):
  run IMPL SPLIT LEARNER ACCURACY MACRO_F1 FIT_MS PREDICT_NS_PER_ROW
Run with Debian's /usr/bin/python3 (python3-sklearn 1.2.1, python3-xgboost 1.7.4). Usage:
  gas_sklearn.py --splits FILE [--seed S] [--latency-rows N] CSV
"""
import argparse
import csv
import sys
import time


def load(path, np):
    with open(path) as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    cols = ["MQ2", "MQ3", "MQ5", "MQ6", "MQ7", "MQ8", "MQ135"]
    idx = [head.index(c) for c in cols]
    gi = head.index("Gas")
    x = np.array([[float(r[i]) for i in idx] for r in rows[1:]])
    names = sorted(set(r[gi] for r in rows[1:]))
    y = np.array([names.index(r[gi]) for r in rows[1:]])
    return x, y


def canary_features(x, y, np, window=24):
    """Log-ratios of the readings and of their window means, per class recording (file
    order), as canary's gas_window_rows + GAS_FEATURES_LOGRATIO compute them."""
    means = np.zeros_like(x)
    for k in np.unique(y):
        idx = np.where(y == k)[0]
        c = np.cumsum(x[idx], axis=0)
        for j, i in enumerate(idx):
            lo = j - window
            s = c[j] - (c[lo] if lo >= 0 else 0)
            means[i] = s / min(j + 1, window)

    def clr(a):
        la = np.log(np.maximum(a, 1e-6))
        return la - la.mean(axis=1, keepdims=True)

    return np.hstack([clr(x), clr(means)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latency-rows", type=int, default=100)
    ap.add_argument("csv")
    a = ap.parse_args()
    try:
        import numpy as np
        import sklearn
        import xgboost
        from sklearn.ensemble import RandomForestClassifier, StackingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from xgboost import XGBClassifier
    except ImportError as e:
        print(f"# scikit-learn or xgboost unavailable: {e} (apt-get install python3-sklearn "
              "python3-xgboost)")
        return 0
    print(f"# scikit-learn {sklearn.__version__}, xgboost {xgboost.__version__}")
    x_raw, y = load(a.csv, np)
    splits = {}
    with open(a.splits) as fh:
        for line in fh:
            name, bits = line.split()
            splits[name] = np.array([b == "1" for b in bits])
    feats = {"sklearn": x_raw, "sklearn_feat": canary_features(x_raw, y, np)}

    def learners():
        rf = RandomForestClassifier(n_estimators=100, random_state=a.seed, n_jobs=1)
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        xg = XGBClassifier(n_estimators=100, tree_method="hist", random_state=a.seed, n_jobs=1)
        return [("random_forest", rf), ("logistic_regression", lr), ("gradient_boosting", xg)]

    for impl, x in feats.items():
        for split, test in splits.items():
            xtr, ytr, xte, yte = x[~test], y[~test], x[test], y[test]
            models = learners()
            stack = StackingClassifier(estimators=learners(),
                                       final_estimator=LogisticRegression(max_iter=1000), cv=5,
                                       n_jobs=1)
            for name, m in models + [("stack", stack)]:
                t0 = time.perf_counter()
                m.fit(xtr, ytr)
                fit_ms = (time.perf_counter() - t0) * 1e3
                pred = m.predict(xte)
                n = min(a.latency_rows, len(xte))
                t0 = time.perf_counter()
                for i in range(n):
                    m.predict_proba(xte[i:i + 1])
                ns = (time.perf_counter() - t0) * 1e9 / max(n, 1)
                print(f"run {impl} {split} {name} {accuracy_score(yte, pred):.6f} "
                      f"{f1_score(yte, pred, average='macro'):.6f} {fit_ms:.1f} {ns:.0f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
