"""Scale: every embedding-based detector on N synthetic samples, via its operator.

    .venv/bin/python benchmarks/bench_scale.py            # 1,000,000 x 256-d
    .venv/bin/python benchmarks/bench_scale.py --quick    # 20,000
    .venv/bin/python benchmarks/bench_scale.py --n 200000 --timeout 1800

A private mongod is started; N Gaussian-blob samples (``--dim`` 256,
``--classes`` 10, 10% flipped labels; how cost grows with the number of
classes is measured by ``bench_scaling.py``) are inserted in batches; 100 samples
per class are marked verified (tag ``validated`` and ``label_verified``) for
the detectors that need them. Each detector then runs in its own process
through ``execute_operator`` with its defaults, so the peak RSS measured
(``ru_maxrss`` of that process) is the detector's, and one that exceeds
``--timeout`` is stopped and reported as such. Each completed detector's
AUROC against the injected flips and the 1-minute load average when it
started are reported too (kNN searches above 200,000 rows use an IVF index,
so its AUROC here shows what the approximation costs). Writes
``benchmarks/results/scale.json`` (``scale_quick.json`` for ``--quick``) and
prints a markdown table. Not part of the test suite (``make bench``).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import numpy as np  # noqa: E402

LIMIT_GIB = 6.0
PLUGIN = "@label-noise/curation"


def worker(dataset_name, name, params):
    """Child: runs one operator and prints its timing and peak RSS as JSON."""
    import fiftyone as fo
    import fiftyone.operators as foo

    ds = fo.load_dataset(dataset_name)
    started = time.time()
    out = foo.execute_operator(
        "%s/%s" % (PLUGIN, name), ctx={"dataset": ds, "params": params}
    ).result
    seconds = time.time() - started
    written = {f: ds.count(f) for f in out.get("fields", [])}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print("RESULT " + json.dumps(
        {"seconds": seconds, "peak_rss_gib": rss, "num_samples": out.get("num_samples"),
         "written": written, "num_flagged": out.get("num_flagged")}
    ), flush=True)


def detectors():
    import fiftyone.operators as foo

    names = []
    for op in foo.list_operators(enabled=True, builtin=False):
        mro = [c.__name__ for c in type(op).__mro__]
        if op.uri.startswith(PLUGIN + "/") and "DetectorOperator" in mro:
            if getattr(op, "needs_embeddings", True):
                names.append(op.name)
    return sorted(names)


def _auroc(ds, name):
    """AUROC of the detector's score against the injected label flips."""
    from sklearn.metrics import roc_auc_score

    sys.path.insert(0, os.path.dirname(HERE))
    from demo.detectors import DETECTORS

    score_of = {d[0]: d[2] for d in DETECTORS}.get(name)
    if score_of is None:
        return None
    ds.reload()  # the detector wrote its fields from another process
    score = score_of(ds)
    truth = np.array(ds.values("is_noisy"), bool)
    ok = np.isfinite(score)
    return round(float(roc_auc_score(truth[ok], score[ok])), 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 samples")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per detector")
    parser.add_argument("--only", default="", help="comma-separated detector names")
    parser.add_argument("--worker", nargs=3, metavar=("DATASET", "OPERATOR", "PARAMS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], json.loads(args.worker[2]))
        return
    n = 20_000 if args.quick else args.n

    mongo = common.private_database()
    import fiftyone as fo
    from synthetic import insert_blob_samples

    ds = fo.Dataset("scale-%d" % n, persistent=True, overwrite=True)
    print("inserting %d samples x %d-d, %d classes..." % (n, args.dim, args.classes), flush=True)
    with common.Timer() as t_insert:
        insert_blob_samples(
            ds, n, dim=args.dim, num_classes=args.classes, noise_rate=0.1, seed=0,
            batch_size=10000,
            progress=lambda done, total: (done % 100000 == 0 or done == total)
            and print("  %d/%d" % (done, total), flush=True),
        )
    num_verified = common.mark_blob_verified(ds)
    print("inserted in %.1f s; %d verified samples" % (t_insert.seconds, num_verified), flush=True)

    names = detectors()
    if args.only:
        names = [x for x in names if x in args.only.split(",")]
    rows = []
    for name in names:
        params = {"run_key": "scale_" + name.replace("compute_", "")}
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", ds.name, name,
               json.dumps(params)]
        print("running %s ..." % name, flush=True)
        started = time.time()
        row = {"detector": name, "n": n, "load_1min": round(os.getloadavg()[0], 1)}
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                  env=os.environ.copy())
            lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
            if done.returncode == 0 and lines:
                got = json.loads(lines[-1][7:])
                row.update(status="completed", seconds=round(got["seconds"], 1),
                           peak_rss_gib=round(got["peak_rss_gib"], 2),
                           rss_ok=got["peak_rss_gib"] <= LIMIT_GIB,
                           all_written=all(v == n for v in list(got["written"].values())[:1]),
                           auroc=_auroc(ds, name))
            else:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
                row.update(status="failed", seconds=round(time.time() - started, 1),
                           note=tail[0][:200])
        except subprocess.TimeoutExpired:
            row.update(status="timeout (> %d s)" % args.timeout,
                       seconds=round(time.time() - started, 1))
        print("  %s" % row, flush=True)
        rows.append(row)

    ds.delete()
    name = "scale_quick" if args.quick else "scale"
    previous = os.path.join(common.RESULTS, name + ".json")
    if args.only and os.path.exists(previous):  # keep the other detectors' rows
        old = json.load(open(previous)).get("rows", [])
        done = {r["detector"] for r in rows}
        rows = [r for r in old if r["detector"] not in done and r.get("n") == n] + rows
    payload = {
        "n": n, "dim": args.dim, "classes": args.classes,
        "insert_seconds": round(t_insert.seconds, 1),
        "rss_limit_gib": LIMIT_GIB, "timeout_seconds": args.timeout,
        "rows": rows,
    }
    path = common.save(name, payload)
    print()
    print("Scale: %d samples x %d-d, %d classes (insert %.0f s)" % (n, args.dim, args.classes, t_insert.seconds))
    print(common.markdown_table(
        rows, ["detector", "n", "status", "seconds", "peak_rss_gib", "rss_ok", "auroc",
               "load_1min", "note"]))
    print("\nwrote", path)
    mongo.stop()


if __name__ == "__main__":
    main()
