"""Time of every detector vs number of samples and vs number of classes.

Synthetic Gaussian blobs (256-d, 10% uniform label noise; the generator of
``tests/synthetic.py``, bulk-inserted as in the 1M-sample test) in a private
FiftyOne database; each detector runs through its operator with its
defaults. A fitted exponent b of ``time ~ a * N^b`` (least squares on
log-log) is reported per method. Larger sizes of a method are skipped once
one run of it exceeds ``--budget`` seconds (reported as skipped): at the
default 90 s that is Training-ValueNet after N = 10,000, whose Monte Carlo
subset stops growing there (``train_per_class`` = 1000), so `make bench`
stays within an hour. The point shared by both axes (N = 10,000, 10
classes) is measured once.

Usage: python benchmarks/bench_scaling.py [--quick] [--budget 90]
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PLUGIN = "@label-noise/curation"
# scaling is about embeddings-only detectors (SCAN ignores labels but is timed too)
SCALED = ["compute_knn_disagreement", "compute_training_value", "compute_cleannet_similarity",
          "compute_dupes", "compute_corrected_labels", "compute_scan_clusters"]


def load(name, n, num_classes):
    import fiftyone as fo
    from synthetic import insert_blob_samples

    ds = fo.Dataset(name, overwrite=True)
    insert_blob_samples(ds, n, dim=256, num_classes=num_classes, noise_rate=0.1, seed=0)
    common.mark_blob_verified(ds)
    return ds


def fit_exponent(sizes, seconds):
    sizes, seconds = np.asarray(sizes, float), np.asarray(seconds, float)
    if len(sizes) < 2:
        return float("nan")
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


# --quick only checks that the sweep runs (CI): fewer episodes/rounds
QUICK_PARAMS = {
    "compute_training_value": {"episodes": 5, "regressor_epochs": 100, "min_val_per_class": 20},
    "compute_cleannet_similarity": {"n_steps": 200},
    "compute_dupes": {"rounds": 3, "threshold": 3},
    "compute_scan_clusters": {"epochs": 3, "self_label_epochs": 2},
}


def measure(axis, points, make, budget, available, params=None, measured=None):
    """Seconds per operator and point; ``measured`` = {point: {op: seconds}}
    already timed elsewhere (the point both axes share)."""
    import fiftyone.operators as foo

    timings = {op: {} for op in SCALED if op in available}
    over = set()
    for point in points:
        known = (measured or {}).get(point, {})
        for op, seconds in known.items():
            if op in timings:
                timings[op][point] = seconds
                if seconds > budget:
                    over.add(op)
        todo = [op for op in timings if op not in over and op not in known]
        if not todo:
            continue
        ds = make(point)
        for op in todo:
            with common.Timer() as t:
                try:
                    foo.get_operator("%s/%s" % (PLUGIN, op))(ds, **(params or {}).get(op, {}))
                except Exception as e:
                    print("  %s at %s=%s failed: %s" % (op, axis, point, str(e).splitlines()[0][:100]), flush=True)
                    over.add(op)
                    continue
            timings[op][point] = t.seconds
            print("  %s %s=%s: %.1f s" % (op, axis, point, t.seconds), flush=True)
            if t.seconds > budget:
                over.add(op)
        ds.delete()
    return timings


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--budget", type=float, default=90.0,
                        help="skip larger sizes of a method after one run takes longer than this")
    args = parser.parse_args(argv)
    common.private_database()
    import fiftyone as fo
    import fiftyone.operators as foo

    fo.config.show_progress_bars = False
    available = {op.name for op in foo.list_operators() if op.plugin_name == PLUGIN}
    sizes = [1000, 2000] if args.quick else [5000, 10000, 25000, 50000, 200000]
    class_counts = [5, 10] if args.quick else [10, 20, 50, 100]
    print("time vs N (10 classes)", flush=True)
    params = QUICK_PARAMS if args.quick else None
    name = "scaling_quick" if args.quick else "scaling"
    by_n = measure("N", sizes, lambda n: load("scale-n", n, 10), args.budget, available, params)
    save(name, sizes, class_counts, by_n, {})  # keep the N axis if the K axis is stopped
    k_axis_n = 2000 if args.quick else 10000
    print("time vs classes (N = %d)" % k_axis_n, flush=True)
    shared = {10: {op: t[k_axis_n] for op, t in by_n.items() if k_axis_n in t}}
    by_k = measure("K", class_counts, lambda k: load("scale-k", k_axis_n, k),
                   args.budget, available, params, measured=shared)
    rows = save(name, sizes, class_counts, by_n, by_k)
    print(common.markdown_table(rows))


def save(name, sizes, class_counts, by_n, by_k):
    rows = []
    for op in by_n:
        row = {"method": op.replace("compute_", "")}
        for n in sizes:
            row["N=%d" % n] = by_n[op].get(n, "skipped")
        row["exp(N)"] = fit_exponent(list(by_n[op]), list(by_n[op].values()))
        for k in class_counts:
            row["K=%d" % k] = by_k.get(op, {}).get(k, "skipped")
        row["exp(K)"] = fit_exponent(list(by_k.get(op, {})), list(by_k.get(op, {}).values()))
        rows.append(row)
    common.save(name, {"sizes": sizes, "classes": class_counts, "rows": rows,
                       "by_n": {k: {str(a): b for a, b in v.items()} for k, v in by_n.items()},
                       "by_k": {k: {str(a): b for a, b in v.items()} for k, v in by_k.items()}})
    return rows

if __name__ == "__main__":
    main()
