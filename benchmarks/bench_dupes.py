"""Benchmark: Dupes on CIFAR-10N (50,000 samples, shared MobileNetV2 embeddings).

For each classifier and noisy label set (random1, worst): AUROC/AUPRC of
``dupe_count`` as a noise score, precision/recall of the dupe flag at
thresholds 8, 9, 10 (10 rounds), how often the dupe label of a flagged
noisy sample is its true class, and the wall time of the 10 rounds.

    .venv/bin/python benchmarks/bench_dupes.py            # full (~10-15 min)
    .venv/bin/python benchmarks/bench_dupes.py --quick    # 5,000 samples, < 60 s
"""

import argparse
import sys

import numpy as np

import common

THRESHOLDS = (8, 9, 10)


def evaluate(label_set, classifier, limit, rounds, seed, options):
    from methods.dupes import count_dupes, dupes

    data = common.cifar10n(label_set, limit=limit)
    import time

    cpu = time.process_time()
    with common.Timer() as timer:
        out = dupes(data["noisy"], embeddings=data["x"], num_classes=10,
                    rounds=rounds, classifier=classifier, seed=seed, **options)
    row = {
        "labels": label_set,
        "classifier": classifier,
        "n": len(data["noisy"]),
        "noise": float(data["is_noisy"].mean()),
        "seconds": round(timer.seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "round_acc": float(np.mean(out["round_accuracy"])),
    }
    scores = common.detection_scores(data["is_noisy"], out["dupe_count"])
    row["auroc"] = scores["auroc"]
    row["auprc"] = scores["auprc"]
    for t in THRESHOLDS:
        flag = count_dupes(out["counts"], data["noisy"], threshold=t)["flagged"]
        s = common.detection_scores(data["is_noisy"], out["dupe_count"], flag)
        row["P@%d" % t] = s["precision"]
        row["R@%d" % t] = s["recall"]
        row["flagged@%d" % t] = s["num_flagged"]
    flag8 = out["flagged"] & data["is_noisy"]
    row["label_ok@8"] = float(
        (out["dupe_label"][flag8] == data["clean"][flag8]).mean()
    ) if flag8.any() else float("nan")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5,000 samples, chosen classifier")
    parser.add_argument("--classifiers", default=None,
                        help="comma-separated, default logreg,sklearn_logreg,mlp (quick: logreg)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: the fits are small; more threads only "
                        "add contention on a shared machine)")
    parser.add_argument("--all", action="store_true",
                        help="run the alternative classifiers on random1 too "
                        "(default: alternatives on worst only)")
    parser.add_argument("--seed", type=int, default=51)
    parser.add_argument("--label-sets", default="random1,worst",
                        help="comma-separated noisy label columns")
    parser.add_argument("--append", action="store_true",
                        help="add the rows to the existing results file")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    limit = 5000 if args.quick else None
    classifiers = (args.classifiers or ("logreg" if args.quick else
                                        "logreg,sklearn_logreg,mlp")).split(",")
    rows = []
    for k, classifier in enumerate(classifiers):
        label_sets = args.label_sets.split(",")
        if k > 0 and not args.all:
            label_sets = [x for x in label_sets if x == "worst"]
        for label_set in label_sets:
            row = evaluate(label_set, classifier, limit, 10, args.seed, {})
            rows.append(row)
            print("%s/%s: %.1fs AUROC %.3f" % (classifier, label_set, row["seconds"],
                                               row["auroc"]), file=sys.stderr, flush=True)
    name = "dupes" + ("_quick" if args.quick else "")
    if args.append:
        import json
        import os

        previous = os.path.join(common.RESULTS, name + ".json")
        if os.path.exists(previous):
            rows = json.load(open(previous))["rows"] + rows
    columns = ["labels", "classifier", "n", "noise", "seconds",
               "cpu_seconds", "round_acc", "auroc",
               "auprc"] + ["%s@%d" % (m, t) for t in THRESHOLDS for m in ("P", "R")] + [
               "flagged@8", "label_ok@8"]
    print(common.markdown_table(rows, columns))
    path = common.save(name, {
        "method": "dupes",
        "rounds": 10,
        "seed": args.seed,
        "quick": args.quick,
        "note": "wall times measured on a shared 2-core machine with other jobs running",
        "rows": rows,
    })
    print("\nwritten to %s" % path)


if __name__ == "__main__":
    main()
