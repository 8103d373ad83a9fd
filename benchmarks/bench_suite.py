"""Every detector against public baselines, same data, same run (issue #10).

Goes through the plugin's public SDK on a real (private) MongoDB: each data
set is loaded into FiftyOne, each detector runs as ``get_operator(uri)(ds)``
with its defaults, and its fields are read back and scored against the true
labels. Baselines on the same embeddings:

- Confident Learning: ``cleanlab.filter.find_label_issues`` (flags) and
  ``cleanlab.rank.get_label_quality_scores`` (score) on 5-fold
  cross-validated probabilities of a logistic regression;
- FiftyOne Brain ``compute_mistakenness`` on the same probabilities;
- kNN disagreement (also a plugin operator).

Data: CIFAR-10N (random1..3, worst; shared MobileNetV2 embeddings) and the
Fashion-MNIST subset (PCA-64 of the pixels as embeddings, since no pretrained
weights can be downloaded here) with injected uniform and asymmetric noise at
20% and 40%. A fixed verified subset (100 per class, seed 0) is given to the
methods that need verified samples.

Usage: python benchmarks/bench_suite.py [--quick] [--sets worst,random1] [--n N]
"""

import argparse
import csv
import io
import os
import sys
import tarfile
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PLUGIN = "@label-noise/curation"
FMNIST_ASYMMETRIC = {  # class-conditional confusions a human makes
    "t-shirt_top": "shirt", "shirt": "t-shirt_top", "pullover": "coat",
    "coat": "pullover", "sneaker": "sandal", "sandal": "sneaker",
    "ankle_boot": "sneaker", "dress": "coat", "trouser": "dress", "bag": "pullover",
}


class PeakRSS:
    """Samples this process's RSS every 50 ms; ``peak_mb`` after the block."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start_mb = self._proc.memory_info().rss / 2**20
        self.peak_mb = self.start_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.05):
            self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._proc.memory_info().rss / 2**20)


def cifar_sets(names, n):
    for name in names:
        d = common.cifar10n(name)
        if n:
            rng = np.random.default_rng(0)
            keep = np.sort(rng.choice(len(d["noisy"]), n, replace=False))
            d = {k: (np.asarray(v)[keep] if k != "classes" else v) for k, v in d.items()}
        d["name"] = "cifar10n-" + name
        d["filepath"] = [os.path.join(common.SHARED, "cifar10", "train", p.split("train/", 1)[-1])
                         for p in d["filepath"]]
        yield d


def fmnist_sets(kinds, n):
    """Fashion-MNIST subset with injected noise; embeddings = PCA-64 of pixels."""
    from PIL import Image
    from sklearn.decomposition import PCA

    root = os.path.join(common.SHARED, "fashion-mnist-small")
    rows = list(csv.DictReader(open(os.path.join(root, "labels.csv"))))
    pixels = {}
    with tarfile.open(os.path.join(root, "fashion_mnist_small_png.tar.gz")) as tar:
        for m in tar:
            if m.isfile():
                pixels[m.name] = np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())), np.float32)
    x = np.stack([pixels[r["filepath"]].ravel() / 255.0 for r in rows])
    x = PCA(64, random_state=0).fit_transform(x).astype(np.float32)
    classes = sorted({r["label"] for r in rows})
    ci = {c: i for i, c in enumerate(classes)}
    clean = np.array([ci[r["label"]] for r in rows])
    for kind in kinds:
        mode, rate = kind.split("-")
        rate = int(rate) / 100
        rng = np.random.default_rng(100 + int(rate * 100) + (mode == "asym"))
        noisy = clean.copy()
        flip = rng.random(len(clean)) < rate
        if mode == "uniform":
            noisy[flip] = (clean[flip] + rng.integers(1, len(classes), flip.sum())) % len(classes)
        else:
            noisy[flip] = [ci[FMNIST_ASYMMETRIC[classes[c]]] for c in clean[flip]]
        keep = np.arange(len(clean)) if not n else np.sort(rng.choice(len(clean), min(n, len(clean)), replace=False))
        yield {
            "name": "fmnist-" + kind, "x": x[keep], "noisy": noisy[keep], "clean": clean[keep],
            "classes": classes, "is_noisy": (noisy != clean)[keep],
            "filepath": [os.path.join(root, rows[i]["filepath"]) for i in keep],
        }


def load_into_fiftyone(d):
    import fiftyone as fo
    from synthetic import insert_labeled_samples

    if fo.dataset_exists(d["name"]):
        fo.delete_dataset(d["name"])
    ds = fo.Dataset(d["name"])
    cls = d["classes"]
    noisy_names = [cls[c] for c in d["noisy"]]
    insert_labeled_samples(
        ds, d["filepath"],
        {"ground_truth": noisy_names, "clean_label": [cls[c] for c in d["clean"]]},
        d["x"], rand=np.random.default_rng(0).random(len(d["noisy"])),
    )
    if ds.values("ground_truth.label") != noisy_names:  # scores are read by position
        raise RuntimeError("%s: samples do not come back in insertion order" % d["name"])
    return ds


def cv_probabilities(x, y, seed=0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return cross_val_predict(model, x, y, cv=folds, method="predict_proba")


def baselines(ds, d):
    """Confident Learning and FiftyOne mistakenness on 5-fold CV probabilities."""
    import fiftyone as fo
    import fiftyone.brain as fob
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    out = []
    with common.Timer() as t_cv, PeakRSS() as mem_cv:
        probs = cv_probabilities(d["x"], d["noisy"])
    with common.Timer() as t, PeakRSS() as mem:
        issues = find_label_issues(d["noisy"], probs)
        quality = get_label_quality_scores(d["noisy"], probs)
    out.append(dict(method="Confident Learning (cleanlab)", score=-quality, flagged=issues,
                    suggestion=probs.argmax(1), seconds=t.seconds + t_cv.seconds,
                    peak_mb=max(mem.peak_mb, mem_cv.peak_mb), delta_mb=mem_cv.peak_mb - mem_cv.start_mb))

    cls = d["classes"]
    ds.set_values("cv_predictions", [
        fo.Classification(label=cls[int(p.argmax())], confidence=float(p.max()), logits=np.log(p + 1e-12))
        for p in probs
    ])
    with common.Timer() as t, PeakRSS() as mem:
        fob.compute_mistakenness(ds, "cv_predictions", label_field="ground_truth",
                                 mistakenness_field="mistakenness", use_logits=True)
    mist = np.array(ds.values("mistakenness"), float)
    out.append(dict(method="FiftyOne mistakenness", score=mist, flagged=mist > 0.5,
                    suggestion=probs.argmax(1), seconds=t.seconds + t_cv.seconds,
                    peak_mb=mem.peak_mb, delta_mb=mem.peak_mb - mem.start_mb))
    return out


def run_detectors(ds, d, quick, only=None):
    import fiftyone.operators as foo
    from demo.detectors import DETECTORS, mark_verified

    available = {op.name for op in foo.list_operators() if op.plugin_name == PLUGIN}
    verified, is_correct = common.verified_subset(d["noisy"], d["clean"], per_class=100, seed=0)
    ids = np.array(ds.values("id"))
    mark_verified(ds, ids[verified], is_correct)
    out = []
    for op_name, title, score_of, suggestion_field in DETECTORS:
        if op_name not in available or (only and op_name not in only):
            continue
        params = dict(SUITE_PARAMS.get(op_name, {}))
        if quick:
            params.update(QUICK_PARAMS.get(op_name, {}))
        with common.Timer() as t, PeakRSS() as mem:
            try:
                foo.get_operator("%s/%s" % (PLUGIN, op_name))(ds, **params)
                error = None
            except Exception as e:
                error = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[-1][:160])
        row = dict(method=title, seconds=t.seconds, peak_mb=mem.peak_mb, delta_mb=mem.peak_mb - mem.start_mb)
        print("  %s: %.1f s%s" % (title, t.seconds, " (%s)" % error if error else ""), flush=True)
        if error:
            row["error"] = error
            out.append(row)
            continue
        row["score"] = score_of(ds)
        row["flagged"] = _flags(ds, op_name, params)
        if suggestion_field and ds.has_field(suggestion_field):
            names = ds.values(suggestion_field + ".label") if _is_label(ds, suggestion_field) else ds.values(suggestion_field)
            index = {c: i for i, c in enumerate(d["classes"])}
            row["suggestion"] = np.array([index.get(v, -1) for v in names])
        out.append(row)
    return out


# The fixed verified subset (100 per noisy class) holds fewer than the default
# 50 correct samples in some classes of `worst` (e.g. automobile): let
# Training-ValueNet use what the user verified instead of refusing.
SUITE_PARAMS = {
    "compute_training_value": {"min_val_per_class": 20},
}

QUICK_PARAMS = {  # smaller settings so that the CI harness run stays short
    "compute_training_value": {"episodes": 5},
    "compute_dupes": {"rounds": 2, "threshold": 2},
}


def _is_label(ds, field):
    import fiftyone as fo

    f = ds.get_field(field)
    return getattr(f, "document_type", None) is not None and issubclass(f.document_type, fo.Classification)


def _flags(ds, op_name, params):
    """Boolean flags of a method at its default threshold (or the one passed)."""
    def field(name):
        return lambda: np.array([bool(v) for v in ds.values(name)])

    flag_fields = {
        "compute_knn_disagreement": lambda: np.array(ds.values("knn_disagreement"), float) > params.get("threshold", 0.7),
        "compute_training_value": lambda: np.array(ds.values("training_value"), float) < params.get("threshold", 0.0),
        "compute_cleannet_similarity": lambda: np.array(ds.values("cleannet_similarity"), float) < params.get("threshold", 0.1),
        "compute_dupes": field("is_dupe"),
        "compute_corrected_labels": field("label_changed"),
        "compute_scan_clusters": field("scan_mislabeled"),
        "compute_noise_score": field("noise_flagged"),
    }
    try:
        return flag_fields[op_name]()
    except Exception:
        return None


def score_rows(rows, d):
    table = []
    for r in rows:
        entry = {"method": r["method"], "seconds": round(r["seconds"], 1),
                 "peak RSS MB": round(r["peak_mb"]), "+RSS MB": round(r["delta_mb"])}
        if "error" in r:
            entry["error"] = r["error"]
            table.append(entry)
            continue
        score = np.asarray(r["score"], float)
        ok = np.isfinite(score)
        flagged = r.get("flagged")
        m = common.detection_scores(d["is_noisy"][ok], score[ok], None if flagged is None else np.asarray(flagged)[ok])
        entry.update({k: m[k] for k in ("auroc", "auprc", "precision_at_k")})
        for k in ("precision", "recall", "f1"):
            if k in m:
                entry[k] = float(m[k])
        if r.get("suggestion") is not None:
            wrong = d["is_noisy"]
            entry["suggestion acc (wrong labels)"] = float((r["suggestion"][wrong] == d["clean"][wrong]).mean())
        table.append(entry)
    return table


COLUMNS = ["method", "auroc", "auprc", "precision_at_k", "precision", "recall", "f1",
           "suggestion acc (wrong labels)", "seconds", "peak RSS MB", "+RSS MB", "error"]


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sets", default=None, help="comma list, e.g. worst,random1,fmnist-uniform-20")
    parser.add_argument("--n", type=int, default=None, help="subsample each set to N samples")
    parser.add_argument("--only", default="", help="comma list of operator names; skips the baselines")
    parser.add_argument("--tag", default="", help="results file suffix (suite_<tag>.json), to split a full run")
    args = parser.parse_args(argv)

    common.private_database()
    import fiftyone as fo

    fo.config.show_progress_bars = False
    if args.quick:
        sets, n = ["worst"], args.n or 3000
    else:
        sets = ["random1", "random2", "random3", "worst",
                "fmnist-uniform-20", "fmnist-uniform-40", "fmnist-asym-20", "fmnist-asym-40"]
        n = args.n
    if args.sets:
        sets = args.sets.split(",")
    cifar = [s for s in sets if not s.startswith("fmnist")]
    fmnist = [s[len("fmnist-"):] for s in sets if s.startswith("fmnist")]
    datasets = list(cifar_sets(cifar, n)) + (list(fmnist_sets(fmnist, n)) if fmnist else [])

    report = {"quick": args.quick, "sets": {}}
    name = "suite_quick" if args.quick else "suite" + ("_" + args.tag if args.tag else "")
    for d in datasets:
        print("== %s: %d samples, %.1f%% noisy" % (d["name"], len(d["noisy"]), 100 * d["is_noisy"].mean()), flush=True)
        ds = load_into_fiftyone(d)
        only = set(filter(None, args.only.split(",")))
        rows = run_detectors(ds, d, args.quick, only) + ([] if only else baselines(ds, d))
        table = score_rows(rows, d)
        print(common.markdown_table(table, [c for c in COLUMNS if any(c in t for t in table)]), flush=True)
        report["sets"][d["name"]] = {"n": int(len(d["noisy"])), "noise_rate": float(d["is_noisy"].mean()),
                                     "rows": table, "roc": _roc_points(rows, d)}
        ds.delete()
        path = common.save(name, report)  # after every set, so a long run keeps what it measured
    print("wrote", path)
    failed = sorted({r["method"] for entry in report["sets"].values() for r in entry["rows"] if "error" in r})
    if failed:  # keep the harness honest: a detector that errors fails the run (and CI)
        sys.exit("detectors failed: %s" % ", ".join(failed))
    return report


def _roc_points(rows, d):
    from sklearn.metrics import roc_curve

    curves = {}
    for r in rows:
        if "score" not in r:
            continue
        score = np.asarray(r["score"], float)
        ok = np.isfinite(score)
        fpr, tpr, _ = roc_curve(d["is_noisy"][ok], score[ok])
        step = max(1, len(fpr) // 200)
        curves[r["method"]] = [fpr[::step].round(4).tolist(), tpr[::step].round(4).tolist()]
    return curves


if __name__ == "__main__":
    main()
