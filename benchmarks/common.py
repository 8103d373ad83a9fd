"""Shared pieces of the benchmarks: data, scores, tables.

Every benchmark script imports this first. Nothing here touches the user's
database: :func:`private_database` starts a throw-away mongod (call it before
importing fiftyone).
"""

import csv
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.path.join(REPO, "..", "shared", "data")
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)


def private_database():
    """Starts a private mongod and points FiftyOne at it (before importing it)."""
    import private_mongo

    return private_mongo.start()


def cifar10n(label_set="worst", limit=None):
    """CIFAR-10N arrays from ../shared/data.

    Returns a dict: ``x`` float32 (n, 256) MobileNetV2 embeddings, ``noisy``
    and ``clean`` int labels, ``classes`` names, ``index`` CIFAR indices,
    ``is_noisy`` bool, ``filepath`` relative image paths.
    """
    rows = list(csv.DictReader(open(os.path.join(SHARED, "cifar10", "labels.csv"))))
    if limit:
        rows = rows[:limit]
    classes = sorted({r["clean"] for r in rows})
    ci = {c: i for i, c in enumerate(classes)}
    npz = np.load(os.path.join(SHARED, "cifar10-embeddings", "train_mobilenetv2.npz"))
    index = np.array([int(r["index"]) for r in rows])
    noisy = np.array([ci[r[label_set]] for r in rows])
    clean = np.array([ci[r["clean"]] for r in rows])
    return {
        "x": npz["embeddings"][index].astype(np.float32),
        "noisy": noisy,
        "clean": clean,
        "classes": classes,
        "index": index,
        "is_noisy": noisy != clean,
        "filepath": [r["filepath"] for r in rows],
    }


def verified_subset(noisy, clean, per_class=100, seed=0, classes=None):
    """Fixed "verified by a human" subset, the same for every method.

    Picks ``per_class`` samples per *noisy* label class (seeded), i.e. what a
    user reviewing samples class by class would verify. Returns indices and
    whether each one's noisy label is correct.
    """
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(noisy) if classes is None else classes:
        members = np.flatnonzero(noisy == c)
        picked.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    picked = np.sort(np.concatenate(picked))
    return picked, noisy[picked] == clean[picked]


def detection_scores(is_noisy, score, flagged=None):
    """AUROC/AUPRC of ``score`` (higher = noisier), its precision at K (K =
    the true number of wrong labels) and in its top 1%, and P/R/F1 of
    ``flagged``. Metrics that need both classes are NaN when there is one."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    is_noisy = np.asarray(is_noisy, bool)
    score = np.asarray(score, float)
    both = 0 < is_noisy.sum() < len(is_noisy)  # else AUROC/AUPRC are undefined
    out = {
        "auroc": float(roc_auc_score(is_noisy, score)) if both else float("nan"),
        "auprc": float(average_precision_score(is_noisy, score)) if both else float("nan"),
    }
    k = int(is_noisy.sum())
    order = np.argsort(-score, kind="stable")
    out["precision_at_k"] = float(is_noisy[order[:k]].mean()) if k else float("nan")
    # what a user reviewing the top 1% finds (0 on a clean set: all false alarms)
    top1 = max(1, int(np.ceil(0.01 * len(score))))
    out["precision_top1pct"] = float(is_noisy[order[:top1]].mean()) if len(score) else float("nan")
    if flagged is not None:
        flagged = np.asarray(flagged, bool)
        tp = float((flagged & is_noisy).sum())
        p = tp / max(flagged.sum(), 1)
        r = tp / max(is_noisy.sum(), 1)
        out.update(precision=p, recall=r, f1=2 * p * r / max(p + r, 1e-12),
                   num_flagged=int(flagged.sum()))
    return out


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def peak_rss_gib():
    """Peak resident memory of this process so far, GiB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine():
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def markdown_table(rows, columns=None):
    """A GitHub markdown table from a list of dicts (floats: 3 decimals below 10, else 1; None: "–")."""
    columns = columns or list(rows[0])

    def fmt(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return "%.1f" % v if abs(v) >= 10 else "%.3f" % v
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def save(name, payload):
    """Writes ``results/<name>.json`` (machine info added) and returns its path."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name + ".json")
    with open(path, "w") as f:
        json.dump(dict(payload, machine=machine()), f, indent=2, default=float)
    return path


def mark_blob_verified(ds, per_class=100, seed=0):
    """Verifies :func:`verified_subset` of a blob dataset (``tests/synthetic.py``
    fields): ``label_verified`` on the picked samples, tag ``validated`` on the
    correct ones. Returns how many were picked."""
    ids, noisy, clean = ds.values(["id", "ground_truth.label", "clean.label"])
    noisy, clean = np.array(noisy), np.array(clean)
    picked, correct = verified_subset(noisy, clean, per_class=per_class, seed=seed)
    picked_ids = [ids[i] for i in picked]
    ds.set_values("label_verified", dict(zip(picked_ids, map(bool, correct))), key_field="id")
    ds.select([i for i, ok in zip(picked_ids, correct) if ok]).tag_samples("validated")
    return len(picked_ids)
