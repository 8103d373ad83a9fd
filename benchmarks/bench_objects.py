"""Object level vs image level on the same CIFAR-10N images and labels.

Builds the pasted-objects detection dataset (``scripts/make_detection_dataset.py``:
2-4 CIFAR-10 train images per 96x96 canvas, exact boxes, CIFAR-10N labels
as object labels), with each object's embedding = its image's shared
MobileNetV2 embedding. Then, for each label set, runs the same detectors and
the consensus twice through the operators: on an image dataset (one sample
per CIFAR image) and on the patches view of the detection dataset (one item
per object), and compares AUROC (noise = label != clean) and time. Also
cleanlab (``get_label_quality_scores`` on 5-fold CV logistic-regression
probabilities of the same object embeddings; benchmark-only dependency).

Detectors: kNN disagreement, Deep Self-Learning (correction phase), Dupes
(``--rounds``), then ``compute_noise_score`` (equal weights: no verified
objects). Training-ValueNet/CleanNet need verified samples and are left out.

Usage: python benchmarks/bench_objects.py [--quick] [--sets worst,random1] [--rounds 10]
Writes benchmarks/results/objects[_quick].json and prints a markdown table.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import common

sys.path.insert(0, os.path.join(common.REPO, "scripts"))

PLUGIN = "@label-noise/curation/"


def detectors(rounds):
    return [
        ("compute_knn_disagreement", {"k": 10}),
        ("compute_corrected_labels", {}),
        ("compute_dupes", {"rounds": rounds, "threshold": max(1, int(0.8 * rounds))}),
        ("compute_noise_score", {}),
    ]


def run_level(collection, label_field, rounds):
    """Runs the detectors on ``collection``; returns per-method seconds."""
    import fiftyone.operators as foo

    seconds = {}
    for name, params in detectors(rounds):
        t = time.time()
        foo.get_operator(PLUGIN + name)(collection, label_field=label_field, **params)
        seconds[name] = time.time() - t
    return seconds


def cleanlab_scores(x, y):
    from cleanlab.rank import get_label_quality_scores
    from bench_suite import cv_probabilities

    t = time.time()
    probs = cv_probabilities(x, y)
    return -get_label_quality_scores(y, probs), time.time() - t


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3,000 images")
    parser.add_argument("--sets", default="worst,random1")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    common.private_database()

    import fiftyone as fo
    from make_detection_dataset import load_objects, make
    from synthetic import insert_labeled_samples

    limit = 3000 if args.quick else None
    work = tempfile.mkdtemp(prefix="label-noise-objects-")
    t = time.time()
    num_canvases, num_objects = make("cifar10n", work, limit=limit)
    make_seconds = time.time() - t
    rows = []
    for label_set in args.sets.split(","):
        t = time.time()
        objects = load_objects("objects-" + label_set, work, label_column=label_set)
        load_seconds = time.time() - t
        patches = objects.to_patches("ground_truth")
        index = np.array(patches.values("ground_truth.source_index"))
        noisy_names = patches.values("ground_truth.label")
        clean_names = patches.values("ground_truth.clean_label")
        x = np.stack(patches.values("ground_truth.embeddings")).astype(np.float32)
        images = fo.Dataset("images-" + label_set)
        insert_labeled_samples(
            images, ["/cifar/%05d.jpg" % i for i in index],
            {"ground_truth": noisy_names, "clean_label": clean_names}, x,
        )
        is_noisy = np.array([a != b for a, b in zip(noisy_names, clean_names)])
        image_seconds = run_level(images, "ground_truth", args.rounds)
        object_seconds = run_level(patches, "ground_truth", args.rounds)
        patches = objects.to_patches("ground_truth")
        by_index = dict(zip(images.values("filepath"), images.values("noise_score")))
        image_score = np.array([by_index["/cifar/%05d.jpg" % i] for i in index], float)
        obj_ids = patches.values("id")
        object_score = np.array(patches.values("ground_truth.noise_score"), float)
        assert list(obj_ids) == list(patches.values("id"))
        classes = sorted(set(noisy_names))
        y = np.array([classes.index(c) for c in noisy_names])
        cl_score, cl_seconds = cleanlab_scores(x, y)
        row = {
            "label_set": label_set,
            "objects": num_objects,
            "canvases": num_canvases,
            "noise_rate": float(is_noisy.mean()),
            "image_auroc": common.detection_scores(is_noisy, image_score)["auroc"],
            "object_auroc": common.detection_scores(is_noisy, object_score)["auroc"],
            "cleanlab_auroc": common.detection_scores(is_noisy, cl_score)["auroc"],
            "image_seconds": sum(image_seconds.values()),
            "object_seconds": sum(object_seconds.values()),
            "cleanlab_seconds": cl_seconds,
            "load_seconds": load_seconds,
            "per_method_seconds": {"image": image_seconds, "object": object_seconds},
        }
        for name in ("knn_disagreement",):
            row["object_" + name + "_auroc"] = common.detection_scores(
                is_noisy, np.array(patches.values("ground_truth." + name), float))["auroc"]
        row["difference"] = row["object_auroc"] - row["image_auroc"]
        rows.append(row)
        print(row, flush=True)
        objects.delete()
        images.delete()
    payload = {"rows": rows, "make_seconds": make_seconds, "rounds": args.rounds,
               "machine": common.machine()}
    common.save("objects_quick" if args.quick else "objects", payload)
    print(report(payload))


SECTION_TITLE = "## Object detection: mislabeled objects vs mislabeled images"


def section(payload):
    """The BENCHMARKS.md section of a run (``results/objects.json``)."""
    rows = payload["rows"]
    when = (payload.get("machine") or {}).get("date", "?")
    text = (
        "`benchmarks/bench_objects.py` (`make bench`): the %s CIFAR-10 train images pasted "
        "2-4 per 96x96 canvas (%s canvases, exact boxes, `scripts/make_detection_dataset.py`), "
        "each object labelled with its image's CIFAR-10N label and embedded with its image's "
        "shared MobileNetV2 vector. The same detectors (kNN disagreement, Deep Self-Learning "
        "correction phase, Dupes with %d rounds) and the consensus `compute_noise_score` run "
        "through the operators on the images (one sample each) and on "
        "`dataset.to_patches(\"ground_truth\")` (one item per object; outputs written on each "
        "Detection). cleanlab: `get_label_quality_scores` on 5-fold CV logistic-regression "
        "probabilities of the same object embeddings. Seconds: all four operators, reading and "
        "writing included (object writes: staged on each label, one server-side move). "
        "Run %s." % ("{:,}".format(rows[0]["objects"]), "{:,}".format(rows[0]["canvases"]),
                     payload["rounds"], when)
    )
    return text + "\n\n" + report(payload)


def report(payload):
    cols = ["label_set", "objects", "noise_rate", "image_auroc", "object_auroc", "difference",
            "cleanlab_auroc", "image_seconds", "object_seconds"]
    return common.markdown_table(payload["rows"], cols)


if __name__ == "__main__":
    main()
