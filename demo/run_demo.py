"""`make demo`: every detector of the plugin on a real noisy dataset.

Loads the shipped CIFAR-10N subset (3,000 CIFAR-10 images with the `worst`
human labels, ~40% wrong, and MobileNetV2 embeddings) into FiftyOne's default
database, runs every detector operator the plugin registers through the same
SDK a user calls, and prints per method how many samples it flags and the
AUROC of its score for finding the wrong labels.

With ``--dataset-dir DIR`` it runs on your own ``DIR/<class>/<image>`` tree
instead (embeddings computed first; no true labels, so no AUROC).
"""

import argparse
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
# long detectors (Training-ValueNet) exceed FiftyOne's default 600 s operator timeout
os.environ.setdefault("FIFTYONE_OPERATOR_TIMEOUT", "7200")

PLUGIN = "@label-noise/curation"
VERIFIED_PER_CLASS = 100
VALIDATED_PER_CLASS = 60


def _verify_some(dataset, seed=0):
    """Plays the user who reviewed a few samples per class in the App.

    Picks VERIFIED_PER_CLASS samples per (noisy) class and records whether
    each label is correct (``label_verified``, CleanNet's verification
    labels), and tags ``validated`` VALIDATED_PER_CLASS samples per class
    whose label was confirmed correct (the clean validation set of
    Training-ValueNet). Uses the true labels, which only the demo knows.
    """
    from demo.detectors import mark_verified

    rng = np.random.default_rng(seed)
    ids, noisy, clean = dataset.values(["id", "ground_truth.label", "clean_label.label"])
    ids, noisy, clean = np.array(ids), np.array(noisy), np.array(clean)
    picked = []
    for c in sorted(set(noisy)):
        members = np.flatnonzero(noisy == c)
        picked += rng.choice(members, min(VERIFIED_PER_CLASS, len(members)), replace=False).tolist()
    mark_verified(dataset, ids[picked], noisy[picked] == clean[picked])
    validated = []
    for c in sorted(set(noisy)):
        correct = np.flatnonzero((noisy == c) & (noisy == clean))
        validated += ids[rng.choice(correct, min(VALIDATED_PER_CLASS, len(correct)), replace=False)].tolist()
    dataset.untag_samples("validated")
    dataset.select(validated).tag_samples("validated")


def noise_rate_lines(summary, num_samples, true_rate=None):
    """The consensus' estimate of the share of wrong labels (and the truth,
    when known) and how many samples ``noise_flagged`` marks."""
    lines = []
    rate = summary.get("noise_rate")
    if rate is None:
        lines.append("Consensus: no noise-rate estimate (no input with class probabilities)")
    else:
        text = "Consensus: estimated noise rate %.1f%% (~%s wrong labels; basis: %s" % (
            100 * rate, summary.get("num_likely_wrong", "?"), summary.get("noise_rate_basis", "?"))
        interval = summary.get("noise_rate_interval")
        if interval:
            text += "; 95%% interval %.1f-%.1f%%" % (100 * interval[0], 100 * interval[1])
        text += ")"
        if true_rate is not None:
            text += " vs true %.1f%%" % (100 * true_rate)
        lines.append(text)
        estimate = summary.get("noise_estimate") or {}
        models = [(k, estimate[k]) for k in ("anchors", "confident_learning") if estimate.get(k) is not None]
        if models:
            lines.append("  model-based estimates (no verified sample needed): " + ", ".join(
                "%s %.1f%%" % (k, 100 * v) for k, v in models))
    flagged = summary.get("num_flagged")
    if flagged is not None:
        lines.append("  flagged (noise_flagged): %d samples (%.1f%%)" % (flagged, 100.0 * flagged / max(num_samples, 1)))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-dir", help="your own <dir>/<class>/<image> tree")
    parser.add_argument("--name", help="FiftyOne dataset name")
    parser.add_argument("--noisy-column", default="worst", help="worst or random1")
    parser.add_argument("--model", default="",
                        help="embeddings model for --dataset-dir: a FiftyOne zoo model name (default: "
                             "the plugin's, the zoo's CLIP; resnet18 when --weights is a file)")
    parser.add_argument("--weights", default="DEFAULT",
                        help="model weights for --dataset-dir (DEFAULT needs internet once, or a "
                             "torchvision .pth state_dict for resnet18/resnet50/mobilenet_v3_large)")
    args = parser.parse_args()

    import fiftyone.operators as foo
    from demo.datasets import load_cifar10n, load_image_tree
    from demo.detectors import DETECTORS, NEEDS_VERIFICATION

    available = {op.name for op in foo.list_operators() if op.plugin_name == PLUGIN}
    if not available:
        sys.exit(
            "The plugin is not visible to FiftyOne. Put this checkout on "
            "FIFTYONE_PLUGINS_DIR (make demo does this) and retry"
        )

    knows_truth = args.dataset_dir is None
    if knows_truth:
        name = args.name or "label-noise-demo"
        print("Loading the CIFAR-10N demo subset into FiftyOne as '%s'..." % name)
        dataset = load_cifar10n(name, noisy_column=args.noisy_column)
        _verify_some(dataset)
    else:
        name = args.name or "label-noise-" + os.path.basename(os.path.abspath(args.dataset_dir))
        print("Loading %s into FiftyOne as '%s'..." % (args.dataset_dir, name))
        dataset = load_image_tree(name, args.dataset_dir)
        model = {"model": args.model} if args.model else {}
        print("Computing embeddings (%s)..." % (args.model or "the plugin's default model"))
        foo.get_operator(PLUGIN + "/compute_embeddings")(dataset, weights=args.weights, **model)

    rows = []
    consensus = None
    for op_name, title, score_of, _ in DETECTORS:
        if op_name not in available:
            continue
        if op_name in NEEDS_VERIFICATION and not knows_truth:
            rows.append({"method": title, "flagged": "-", "auroc": "needs verified samples (see README)", "seconds": ""})
            continue
        print("Running %s..." % title)
        started = time.time()
        try:
            summary = foo.get_operator("%s/%s" % (PLUGIN, op_name))(dataset)
        except Exception as e:  # keep the demo going; report the failure
            rows.append({"method": title, "flagged": "failed", "auroc": str(e).strip().splitlines()[-1][:120], "seconds": ""})
            continue
        if op_name == "compute_noise_score":
            consensus = summary
        row = {
            "method": title,
            "flagged": summary.get("num_flagged", "-"),
            "seconds": "%.1f" % (time.time() - started),
        }
        if knows_truth:
            from sklearn.metrics import roc_auc_score

            score = score_of(dataset)
            truth = np.array(dataset.values("is_noisy"))
            ok = np.isfinite(score)
            row["auroc"] = "%.3f" % roc_auc_score(truth[ok], score[ok])
        rows.append(row)

    print()
    if knows_truth:
        noisy = dataset.count_values("is_noisy").get(True, 0)
        print("Dataset '%s': %d samples, %d (%.1f%%) truly mislabeled (CIFAR-10N '%s')"
              % (name, len(dataset), noisy, 100.0 * noisy / len(dataset), args.noisy_column))
    if consensus is not None:
        true_rate = noisy / len(dataset) if knows_truth else None
        for line in noise_rate_lines(consensus, len(dataset), true_rate):
            print(line)
    print()
    print("| method | flagged | AUROC (finding wrong labels) | seconds |")
    print("|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %s | %s |" % (r["method"], r["flagged"], r.get("auroc", "n/a"), r["seconds"]))
    print()
    print("Open it in the App:")
    print("  FIFTYONE_PLUGINS_DIR=%s .venv/bin/fiftyone app launch %s" % (os.environ.get("FIFTYONE_PLUGINS_DIR", "<plugins dir>"), name))
    print("then open the 'Label noise' panel (+ beside the Samples tab): 'Start review' walks the")
    print("flagged samples with the keyboard (y right, s suggestion, 1-9 a class, n skip, u undo),")
    print("'Start audit' estimates the share of wrong labels, 'Re-score' re-fits the consensus.")


if __name__ == "__main__":
    main()
