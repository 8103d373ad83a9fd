"""Scale: the whole job, and each detector, on N synthetic samples.

    .venv/bin/python benchmarks/bench_scale.py              # find_label_issues, 1,000,000 x 256-d
    .venv/bin/python benchmarks/bench_scale.py --quick      # the same on 20,000
    .venv/bin/python benchmarks/bench_scale.py --detectors  # each detector alone (old table)

A private mongod is started and N samples are inserted in batches (``--dim``
256, ``--classes`` 10, 10% flipped labels). The default run is the job a
user starts: ``find_label_issues`` with its ``fast`` preset (kNN
disagreement, label quality, Dupes, Deep Self-Learning, the consensus) in
one child process, run immediately (not delegated), every sample written.
Its table gives, per step, the wall seconds split into reading inputs,
computing and writing outputs (the chain reads the embeddings once and
shares one neighbour graph), and the process's peak RSS by the end of the
step; then the noise score's AUROC against the injected flips, the
estimated noise rate against the true one, and whether every sample got
every output. The samples are Gaussian data of 10 classes, each spread
over its own 16-d subspace (``tests/synthetic.py``): low-dimensional classes,
as image embeddings are, on which an IVF index needs as many cells probed
for a given recall as on the CIFAR-10 MobileNetV2 embeddings (on one
isotropic blob per class no index beats scanning the class;
``bench_neighbours.py`` measures both).

``--detectors`` runs each embedding-based detector alone through its
operator in its own process (peak RSS = that process's), on one isotropic
blob per class (``--subspaces``: on the pipeline's data), 100 samples per
class marked verified for the detectors that need them, a detector that
exceeds ``--timeout`` is stopped and reported. ``--only`` re-runs some
detectors and keeps the other rows; each row says when it was measured.

Writes ``benchmarks/results/scale_pipeline.json`` (``scale.json`` with
``--detectors``, ``scale_subspaces.json`` with ``--subspaces``; ``_quick``
with ``--quick``) and prints a markdown table.
Not part of the test suite (``make bench-scale``).
"""

import argparse
import json
import os
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
    rss = common.peak_rss_gib()
    print("RESULT " + json.dumps(
        {"seconds": seconds, "peak_rss_gib": rss, "num_samples": out.get("num_samples"),
         "written": written, "num_flagged": out.get("num_flagged")}
    ), flush=True)


def pipeline_worker(dataset_name, params):
    """Child: runs find_label_issues and prints its steps as JSON."""
    import fiftyone as fo
    import fiftyone.operators as foo

    ds = fo.load_dataset(dataset_name)
    started = time.time()
    out = foo.execute_operator(
        "%s/find_label_issues" % PLUGIN, ctx={"dataset": ds, "params": params}
    ).result
    seconds = time.time() - started
    rss = common.peak_rss_gib()
    print("RESULT " + json.dumps(
        {"seconds": seconds, "peak_rss_gib": rss, "steps": out["steps"],
         "noise_rate": out.get("noise_rate"), "noise_rate_basis": out.get("noise_rate_basis"),
         "num_flagged": out.get("num_flagged"), "score_field": out.get("score_field")},
        default=str,
    ), flush=True)


STEP_FIELDS = {  # the field each fast-preset step writes on every sample
    "compute_knn_disagreement": "knn_disagreement",
    "compute_label_quality": "label_quality",
    "compute_dupes": "dupe_count",
    "compute_corrected_labels": "corrected_label",
    "compute_noise_score": "noise_score",
}


def run_pipeline(ds, n, args):
    from sklearn.metrics import roc_auc_score

    params = {"preset": "fast", "delegate": False}
    cmd = [sys.executable, os.path.abspath(__file__), "--pipeline-worker", ds.name,
           json.dumps(params)]
    print("running find_label_issues (fast) ...", flush=True)
    started = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                          env=os.environ.copy())
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SystemExit("find_label_issues failed after %.0f s:\n%s"
                         % (time.time() - started, "\n".join(tail)))
    got = json.loads(lines[-1][7:])
    ds.reload()
    rows = []
    for step in got["steps"]:
        field = STEP_FIELDS.get(step["step"])
        rows.append(dict(
            step=step["step"].replace("compute_", ""), seconds=step["wall_s"],
            read_s=step["read_s"], compute_s=step["compute_s"], write_s=step["write_s"],
            peak_rss_gib=step["peak_rss_gib"],
            written=ds.exists(field).count() if field else None,
            search=step.get("search"),
        ))
    truth = np.array(ds.values("is_noisy"), bool)
    score = np.array(ds.values(got["score_field"] or "noise_score"), float)
    summary = dict(
        seconds=round(got["seconds"], 1), peak_rss_gib=round(got["peak_rss_gib"], 2),
        auroc=round(float(roc_auc_score(truth, score)), 4),
        noise_rate=got["noise_rate"], noise_rate_basis=got["noise_rate_basis"],
        true_rate=round(float(truth.mean()), 4), num_flagged=got["num_flagged"],
        all_written=all(r["written"] in (None, n) for r in rows),
    )
    return rows, summary


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
    parser.add_argument("--subspaces", action="store_true",
                        help="--detectors on the pipeline's data (16-d class subspaces) "
                             "instead of isotropic blobs")
    parser.add_argument("--detectors", action="store_true",
                        help="each detector alone instead of find_label_issues")
    parser.add_argument("--worker", nargs=3, metavar=("DATASET", "OPERATOR", "PARAMS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--pipeline-worker", nargs=2, metavar=("DATASET", "PARAMS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], json.loads(args.worker[2]))
        return
    if args.pipeline_worker:
        pipeline_worker(args.pipeline_worker[0], json.loads(args.pipeline_worker[1]))
        return
    n = 20_000 if args.quick else args.n
    if not args.detectors:
        return main_pipeline(n, args)

    shape = dict(latent=16, spread=0.2) if args.subspaces else {}
    mongo, ds, t_insert = insert_samples("scale-%d" % n, n, args, **shape)
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
        row = {"detector": name, "n": n, "load_1min": round(os.getloadavg()[0], 1),
               "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
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
    name = ("scale_subspaces" if args.subspaces else "scale") + ("_quick" if args.quick else "")
    previous = os.path.join(common.RESULTS, name + ".json")
    if args.only and os.path.exists(previous):  # keep the other detectors' rows
        before = json.load(open(previous))
        done = {r["detector"] for r in rows}
        kept = [r for r in before.get("rows", []) if r["detector"] not in done and r.get("n") == n]
        for r in kept:
            r.setdefault("measured", (before.get("machine") or {}).get("date", ""))
        rows = kept + rows
    payload = {
        "n": n, "dim": args.dim, "classes": args.classes, "data": shape or "isotropic",
        "insert_seconds": round(t_insert.seconds, 1),
        "rss_limit_gib": LIMIT_GIB, "timeout_seconds": args.timeout,
        "rows": rows,
    }
    path = common.save(name, payload)
    print()
    print("Scale: %d samples x %d-d, %d classes (insert %.0f s)" % (n, args.dim, args.classes, t_insert.seconds))
    print(common.markdown_table(
        rows, ["detector", "n", "status", "seconds", "peak_rss_gib", "rss_ok", "auroc",
               "load_1min", "measured", "note"]))
    print("\nwrote", path)
    mongo.stop()


def insert_samples(name, n, args, **shape):
    """A private mongod and a dataset of ``n`` synthetic samples:
    ``(mongo, dataset, insert timer)``; ``shape``: :func:`insert_blob_samples`
    options (``latent``, ``spread``)."""
    mongo = common.private_database()
    import fiftyone as fo
    from synthetic import insert_blob_samples

    ds = fo.Dataset(name, persistent=True, overwrite=True)
    print("inserting %d samples x %d-d, %d classes %s..." % (n, args.dim, args.classes, shape or ""),
          flush=True)
    with common.Timer() as t_insert:
        insert_blob_samples(
            ds, n, dim=args.dim, num_classes=args.classes, noise_rate=0.1, seed=0,
            batch_size=10000, **shape,
            progress=lambda done, total: (done % 100000 == 0 or done == total)
            and print("  %d/%d" % (done, total), flush=True),
        )
    return mongo, ds, t_insert


def main_pipeline(n, args):
    mongo, ds, t_insert = insert_samples("scale-pipeline-%d" % n, n, args, latent=16, spread=0.2)
    print("inserted in %.1f s" % t_insert.seconds, flush=True)
    rows, summary = run_pipeline(ds, n, args)
    ds.delete()
    payload = {
        "n": n, "dim": args.dim, "classes": args.classes, "latent_dim": 16,
        "insert_seconds": round(t_insert.seconds, 1), "rss_limit_gib": LIMIT_GIB,
        "target_seconds": 1800, "summary": summary, "rows": rows,
    }
    path = common.save("scale_pipeline_quick" if args.quick else "scale_pipeline", payload)
    print()
    print("find_label_issues (fast) on %d samples x %d-d: %.0f s, peak RSS %.2f GiB"
          % (n, args.dim, summary["seconds"], summary["peak_rss_gib"]))
    print(common.markdown_table(rows, ["step", "seconds", "read_s", "compute_s", "write_s",
                                       "peak_rss_gib", "written"]))
    print(summary)
    print("\nwrote", path)
    mongo.stop()


if __name__ == "__main__":
    main()
