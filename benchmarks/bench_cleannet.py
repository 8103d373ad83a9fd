"""CleanNet on CIFAR-10N: verified classes vs transfer classes.

Verification labels come from the clean labels for 100 samples per class
(``common.verified_subset``, seed 0) in the first 5 classes (airplane,
automobile, bird, cat, deer); the other 5 classes (dog, frog, horse, ship,
truck) have no verified sample and are scored by transfer. Reported: AUROC
of ``-cleannet_similarity`` for the noise flag, separately on the verified
and the transfer classes, for the ``random1`` and ``worst`` label sets; the
error rate at the threshold (0.1) on all samples and on the held-out
verified samples; total time (k-means + training + scoring). kNN
disagreement (k=10) on the same subsets beside.

    .venv/bin/python benchmarks/bench_cleannet.py [--quick]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import common  # noqa: E402

VERIFIED_CLASSES = [0, 1, 2, 3, 4]


def run(label_set, limit, options, seed=51):
    from methods.cleannet import train_cleannet
    from methods.knn_disagreement import knn_disagreement

    data = common.cifar10n(label_set, limit=limit)
    noisy, clean, is_noisy = data["noisy"], data["clean"], data["is_noisy"]
    picked, correct = common.verified_subset(noisy, clean, classes=VERIFIED_CLASSES)
    verified = -np.ones(len(noisy), dtype=np.int64)
    verified[picked] = correct.astype(np.int64)
    with common.Timer() as timer:
        out = train_cleannet(data["x"], noisy, verified, num_classes=len(data["classes"]),
                             seed=seed, **options)
    sim = out["similarity"]
    knn = knn_disagreement(data["x"], noisy, k=10)["score"]
    in_verified = np.isin(noisy, VERIFIED_CLASSES)
    threshold = out["config"]["threshold"]
    row = {
        "labels": label_set,
        "samples": len(noisy),
        "noise": float(is_noisy.mean()),
        "auroc_verified": common.detection_scores(is_noisy[in_verified], -sim[in_verified])["auroc"],
        "auroc_transfer": common.detection_scores(is_noisy[~in_verified], -sim[~in_verified])["auroc"],
        "auroc_all": common.detection_scores(is_noisy, -sim)["auroc"],
        "knn_verified": common.detection_scores(is_noisy[in_verified], knn[in_verified])["auroc"],
        "knn_transfer": common.detection_scores(is_noisy[~in_verified], knn[~in_verified])["auroc"],
        "err@thr_all": float(((sim >= threshold) != ~is_noisy).mean()),
        "err@thr_val": out["validation"]["error_rate"],
        "best_step": out["validation"]["step"],
        "seconds": round(timer.seconds, 1),
    }
    flagged = sim < threshold
    row["f1@thr"] = common.detection_scores(is_noisy, -sim, flagged)["f1"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10k samples, 200 steps (< 60 s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest for this small model on a loaded machine)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    limit = 10000 if args.quick else None
    options = dict(n_steps=200, val_interval=50) if args.quick else {}
    rows = [run(label_set, limit, options) for label_set in ("random1", "worst")]
    columns = ["labels", "samples", "noise", "auroc_verified", "auroc_transfer", "auroc_all",
               "knn_verified", "knn_transfer", "err@thr_all", "err@thr_val", "f1@thr",
               "best_step", "seconds"]
    print(common.markdown_table(rows, columns))
    path = common.save(
        "cleannet" + ("_quick" if args.quick else ""),
        {
            "method": "cleannet",
            "quick": args.quick,
            "verified_classes": VERIFIED_CLASSES,
            "verified_per_class": 100,
            "options": options,
            "torch_threads": args.threads,
            "rows": rows,
        },
    )
    print("saved", path)


if __name__ == "__main__":
    main()
