"""SCAN on the shared CIFAR-10 embeddings vs k-means on the same features.

Training ignores all labels; clusters are scored against the clean CIFAR-10
labels (ACC after Hungarian matching, NMI, ARI), before and after
self-labeling. Then, as a label-noise detector: clusters are matched to the
*noisy* labels (as the operator does), and ``1 - P_scan(given label)`` is
scored (AUROC/AUPRC) against the known noise of CIFAR-10N random1 / worst.

    .venv/bin/python benchmarks/bench_scan.py [--quick]

``--quick``: the first 3,000 images and fewer epochs (< 60 s).
``--steps 5000,1000,500,250``: only the quality by ``max_steps`` budget
(cluster ACC on clean labels, AUROC of 1 - P(given) on random1), the
evidence for the cap that keeps SCAN within minutes at 1M samples.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

import numpy as np  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a loaded 2-core box)")
    parser.add_argument("--steps", default="", help="comma-separated max_steps budgets")
    args = parser.parse_args()
    if args.steps:
        return step_budgets([int(b) for b in args.steps.split(",")], args.quick)

    import torch

    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    from methods.scan import (class_probabilities, cluster_metrics, hungarian_match,
                              kmeans_clusters, mine_neighbours, scan)

    limit = 3000 if args.quick else None
    data = {ls: common.cifar10n(ls, limit=limit) for ls in ("random1", "worst")}
    x, clean = data["worst"]["x"], data["worst"]["clean"]
    n = len(x)
    kwargs = dict(num_clusters=10, seed=51)
    if args.quick:
        kwargs.update(epochs=8, self_label_epochs=4)

    rows = []
    with common.Timer() as t_km:
        km = kmeans_clusters(x, 10, seed=51)
    rows.append(dict(method="k-means (faiss, cosine)", **cluster_metrics(clean, km),
                     seconds=round(t_km.seconds, 1)))

    with common.Timer() as t_scan:
        with common.Timer() as t_mine:
            neighbours = mine_neighbours(x, 20)
        found = scan(x, neighbours=neighbours, **kwargs)
    purity = float((clean[neighbours] == clean[:, None]).mean())
    rows.append(dict(method="SCAN clustering step", **cluster_metrics(clean, found["cluster_before_self_label"]),
                     seconds=""))
    rows.append(dict(method="SCAN + self-labeling", **cluster_metrics(clean, found["cluster"]),
                     seconds=round(t_scan.seconds, 1)))

    detection = []
    for ls, d in data.items():
        noisy = d["noisy"]
        for name, probs in (("clustering step", found["probs_before_self_label"]),
                            ("+ self-labeling", found["probs"])):
            clusters = probs.argmax(1)
            mapping = hungarian_match(clusters, noisy, 10, 10)
            cp = class_probabilities(probs, mapping, 10)
            score = 1.0 - cp[np.arange(n), noisy]
            suggested = mapping[clusters]
            conf = cp[np.arange(n), np.maximum(suggested, 0)]
            flagged = (suggested != noisy) & (conf >= 0.9)
            s = common.detection_scores(d["is_noisy"], score, flagged)
            detection.append(dict(label_set=ls, noise_rate=float(d["is_noisy"].mean()),
                                  model=name, auroc=s["auroc"], auprc=s["auprc"],
                                  precision_at_0_9=s["precision"], recall_at_0_9=s["recall"],
                                  flagged=s["num_flagged"]))

    print("## SCAN vs k-means on CIFAR-10 MobileNetV2 embeddings (n=%d%s)\n"
          % (n, ", quick" if args.quick else ""))
    print(common.markdown_table(rows, ["method", "acc", "nmi", "ari", "seconds"]))
    print("\nneighbour purity (K=20, clean labels): %.3f; mining %.1f s; "
          "clustering epochs %d; self-labeling epochs %d; confident set %s; best head %d"
          % (purity, t_mine.seconds, found["clustering_epochs_run"],
             found["self_label_epochs_run"], found["confident_counts"], found["best_head"]))
    print("\n## SCAN as a label-noise detector (score = 1 - P(given label))\n")
    print(common.markdown_table(detection, ["label_set", "noise_rate", "model", "auroc", "auprc",
                                            "precision_at_0_9", "recall_at_0_9", "flagged"]))
    load = os.getloadavg()
    print("\nload average during the run: %.1f %.1f %.1f (2 cores, shared with other jobs)"
          % load)
    path = common.save("scan_quick" if args.quick else "scan", dict(
        n=n, quick=args.quick, params=dict(kwargs, k=20), clustering=rows, detection=detection,
        neighbour_purity=purity, mining_seconds=t_mine.seconds, total_seconds=t_scan.seconds,
        confident_counts=found["confident_counts"], load_average=load,
        torch_threads=args.threads, when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    ))
    print("\nwrote", path)


def step_budgets(budgets, quick=False):
    """SCAN's quality by optimizer-step budget (``max_steps``) on CIFAR-10N."""
    from methods.scan import class_probabilities, cluster_metrics, hungarian_match, mine_neighbours, scan

    d = common.cifar10n("random1", limit=3000 if quick else None)
    x, noisy, n = d["x"], d["noisy"], len(d["x"])
    neighbours = mine_neighbours(x, 20)
    rows = []
    for budget in budgets:
        with common.Timer() as t:
            found = scan(x, num_clusters=10, neighbours=neighbours, max_steps=budget, seed=51)
        cp = class_probabilities(found["probs"], hungarian_match(found["cluster"], noisy, 10, 10), 10)
        s = common.detection_scores(d["is_noisy"], 1.0 - cp[np.arange(n), noisy])
        rows.append(dict(max_steps=budget, clustering_steps=found["clustering_steps_run"],
                         passes=round(found["clustering_steps_run"] * 256 / n, 2),
                         acc_clean=round(cluster_metrics(d["clean"], found["cluster"])["acc"], 4),
                         auroc_random1=round(s["auroc"], 4), seconds=round(t.seconds, 1)))
        print(rows[-1], flush=True)
    print("\n## SCAN by step budget (CIFAR-10 MobileNetV2, n=%d, seed 51)\n" % n)
    print(common.markdown_table(rows))
    print("\nwrote", common.save("scan_steps_quick" if quick else "scan_steps", dict(
        n=n, rows=rows, when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))))


if __name__ == "__main__":
    main()
