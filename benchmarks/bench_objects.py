"""Object level vs image level on the same CIFAR-10N images and labels.

Builds the pasted-objects detection dataset (``scripts/make_detection_dataset.py``:
2-4 CIFAR-10 train images per 96x96 canvas, exact boxes, CIFAR-10N labels
as object labels), with each object's embedding = its image's shared
MobileNetV2 embedding. Then, for each label set, runs the plugin's default
pipeline -- ``find_label_issues`` with ``preset="fast"`` (kNN disagreement,
out-of-sample label quality, Dupes, Deep Self-Learning, then the
probability consensus ``compute_noise_score``), through the operators --
twice: on an image dataset (one sample per CIFAR image) and on
``dataset.to_patches("ground_truth")`` of the detection dataset (one item
per object, outputs written on each Detection), and compares AUROC (noise
= label != clean), the estimated noise rate and the time. cleanlab
(``get_label_quality_scores`` on 5-fold CV logistic-regression
probabilities of the same object embeddings; benchmark-only dependency)
is the baseline.

Crops: on the first ``--crop-canvases`` canvases (label set ``worst``),
``compute_embeddings`` crops every box (10% margin) and embeds it with
resnet18 (``--weights``: a local state_dict, or empty = random weights),
then the same pipeline runs on those object embeddings: the end-to-end
AUROC from pixels. The same backbone also embeds the whole canvases, so the
cost of cropping shows as seconds per item, crops vs images.

Usage: python benchmarks/bench_objects.py [--quick] [--sets worst,random1]
       [--crop-canvases 500] [--weights PATH]
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
PRESET = "fast"
SEED = 51


def operator(name):
    import fiftyone.operators as foo

    return foo.get_operator(PLUGIN + name)


def find_issues(collection, **params):
    """``find_label_issues`` (preset fast) on ``collection``; returns its
    summary and the wall-clock seconds."""
    t = time.perf_counter()
    summary = operator("find_label_issues")(collection, preset=PRESET, seed=SEED, **params)
    return summary, time.perf_counter() - t


def cleanlab_scores(x, y):
    from cleanlab.rank import get_label_quality_scores
    from bench_suite import cv_probabilities

    t = time.perf_counter()
    probs = cv_probabilities(x, y)
    return -get_label_quality_scores(y, probs), time.perf_counter() - t


def compare_levels(work, label_set, num_canvases, num_objects):
    """One row: the pipeline on images and on objects, plus cleanlab."""
    import fiftyone as fo
    from make_detection_dataset import load_objects
    from synthetic import insert_labeled_samples

    t = time.perf_counter()
    objects = load_objects("objects-" + label_set, work, label_column=label_set)
    load_seconds = time.perf_counter() - t
    t = time.perf_counter()
    patches = objects.to_patches("ground_truth")
    patches_seconds = time.perf_counter() - t
    index, noisy_names, clean_names = patches.values(
        ["ground_truth.source_index", "ground_truth.label", "ground_truth.clean_label"])
    x = np.stack(patches.values("ground_truth.embeddings")).astype(np.float32)
    images = fo.Dataset("images-" + label_set)
    paths = ["/cifar/%05d.jpg" % i for i in index]
    insert_labeled_samples(images, paths, {"ground_truth": noisy_names, "clean_label": clean_names}, x)
    is_noisy = np.array([a != b for a, b in zip(noisy_names, clean_names)])

    image_summary, image_seconds = find_issues(images)
    object_summary, object_seconds = find_issues(patches)

    by_path = dict(zip(*images.values(["filepath", "noise_score"])))
    image_score = np.array([by_path[p] for p in paths], float)
    fresh = objects.to_patches("ground_truth")
    if fresh.values("ground_truth.source_index") != index:  # scores are compared by position
        raise RuntimeError("patches do not come back in the same order")
    object_score = np.array(fresh.values("ground_truth.noise_score"), float)
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
        "image_est_rate": image_summary.get("noise_rate"),
        "object_est_rate": object_summary.get("noise_rate"),
        "image_seconds": image_seconds,
        "object_seconds": object_seconds,
        "patches_seconds": patches_seconds,
        "cleanlab_seconds": cl_seconds,
        "load_seconds": load_seconds,
        "per_step_seconds": {
            "image": {s["step"]: s["seconds"] for s in image_summary["steps"]},
            "object": {s["step"]: s["seconds"] for s in object_summary["steps"]},
        },
    }
    for name in ("knn_disagreement", "label_quality"):
        by_path = dict(zip(*images.values(["filepath", name])))
        image_values = np.array([by_path[p] for p in paths], float)
        object_values = np.array(fresh.values("ground_truth." + name), float)
        sign = -1.0 if name == "label_quality" else 1.0  # higher quality = cleaner
        row["image_%s_auroc" % name] = common.detection_scores(is_noisy, sign * image_values)["auroc"]
        row["object_%s_auroc" % name] = common.detection_scores(is_noisy, sign * object_values)["auroc"]
    row["difference"] = row["object_auroc"] - row["image_auroc"]
    objects.delete()
    images.delete()
    return row


def crops_row(work, num_canvases, weights):
    """Object embeddings computed from the crops (``compute_embeddings``),
    then the same pipeline: end-to-end AUROC; and crop vs image cost."""
    from make_detection_dataset import load_objects

    full = load_objects("crops-worst", work, label_column="worst", with_embeddings=False)
    ds = full.limit(num_canvases).clone("crops-worst-subset")
    full.delete()
    patches = ds.to_patches("ground_truth")
    n = len(patches)
    t = time.perf_counter()
    operator("compute_embeddings")(patches, model="resnet18", weights=weights,
                                   embeddings_field="crop_embeddings", patch_margin=0.1)
    crop_seconds = time.perf_counter() - t
    t = time.perf_counter()
    operator("compute_embeddings")(ds, model="resnet18", weights=weights,
                                   embeddings_field="image_embeddings")
    image_embed_seconds = time.perf_counter() - t
    summary, seconds = find_issues(patches, embeddings_field="crop_embeddings")
    noisy, score = ds.to_patches("ground_truth").values(
        ["ground_truth.is_noisy", "ground_truth.noise_score"])
    row = {
        "objects": n,
        "canvases": len(ds),
        "weights": weights or "random",
        "noise_rate": float(np.mean(noisy)),
        "auroc": common.detection_scores(np.array(noisy, bool), np.array(score, float))["auroc"],
        "est_rate": summary.get("noise_rate"),
        "crop_embed_seconds": crop_seconds,
        "crop_ms_per_object": 1000 * crop_seconds / n,
        "image_embed_seconds": image_embed_seconds,
        "image_ms_per_canvas": 1000 * image_embed_seconds / len(ds),
        "pipeline_seconds": seconds,
    }
    ds.delete()
    return row


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3,000 images")
    parser.add_argument("--limit", type=int, default=None, help="source images (default all; --quick 3000)")
    parser.add_argument("--sets", default="worst,random1")
    parser.add_argument("--crop-canvases", type=int, default=500,
                        help="canvases of the crops run (0: skip it)")
    parser.add_argument("--weights", default="",
                        help="resnet18 state_dict for the crops run (empty: random weights)")
    args = parser.parse_args(argv)
    common.private_database()

    import fiftyone as fo
    from make_detection_dataset import make

    fo.config.show_progress_bars = False
    limit = args.limit or (3000 if args.quick else None)
    work = tempfile.mkdtemp(prefix="label-noise-objects-")
    t = time.perf_counter()
    num_canvases, num_objects = make("cifar10n", work, limit=limit)
    make_seconds = time.perf_counter() - t
    print("made %d canvases, %d objects in %.0f s" % (num_canvases, num_objects, make_seconds), flush=True)
    rows = []
    for label_set in args.sets.split(","):
        rows.append(compare_levels(work, label_set, num_canvases, num_objects))
        print(report({"rows": rows[-1:]}), flush=True)
    crops = None
    if args.crop_canvases:
        crops = crops_row(work, args.crop_canvases, args.weights)
        print(crops_table({"crops": crops}), flush=True)
    payload = {"rows": rows, "crops": crops, "make_seconds": make_seconds, "preset": PRESET,
               "limit": limit}
    common.save("objects_quick" if args.quick else "objects", payload)
    print(report(payload))


SECTION_TITLE = "## Object detection: mislabeled objects vs mislabeled images"


def section(payload):
    """The BENCHMARKS.md section of a run (``results/objects.json``)."""
    rows = payload["rows"]
    when = (payload.get("machine") or {}).get("date", "?")
    if "preset" not in payload:  # a run of the older harness (detectors listed in it)
        return _older_section(payload, when)
    text = (
        "`benchmarks/bench_objects.py` (`make bench`): %s CIFAR-10 train images pasted 2-4 per "
        "96x96 canvas (%s canvases, exact boxes, `scripts/make_detection_dataset.py`, built in "
        "%.0f s), each object labelled with its image's CIFAR-10N label and embedded with its "
        "image's shared MobileNetV2 vector. The default pipeline, `find_label_issues` preset "
        "`%s` (kNN disagreement, label quality, Dupes, Deep Self-Learning, then the probability "
        "consensus), runs through the operators on the images (one sample each) and on "
        "`dataset.to_patches(\"ground_truth\")` (one item per object; outputs written on each "
        "Detection). No object is verified. cleanlab: `get_label_quality_scores` on 5-fold CV "
        "logistic-regression probabilities of the same object embeddings. `est_rate`: the "
        "consensus' estimated share of wrong labels. Seconds: the whole pipeline, reading and "
        "writing included; `patches_seconds`: `to_patches` itself. Run %s."
        % ("{:,}".format(rows[0]["objects"]), "{:,}".format(rows[0]["canvases"]),
           payload["make_seconds"], payload["preset"], when)
    )
    text += "\n\n" + report(payload)
    if payload.get("crops"):
        c = payload["crops"]
        text += (
            "\n\nFrom pixels (`worst`, first %s canvases): `compute_embeddings` crops each box "
            "(10%% margin) and embeds it with resnet18 (%s weights), then the same pipeline "
            "runs on those object embeddings; the same backbone also embeds the whole canvases "
            "(cost of cropping = ms per object vs ms per canvas).\n\n" % (
                "{:,}".format(c["canvases"]), c["weights"]) + crops_table(payload)
        )
    return text


def report(payload):
    cols = ["label_set", "objects", "noise_rate", "image_auroc", "object_auroc", "difference",
            "cleanlab_auroc", "image_est_rate", "object_est_rate", "image_seconds",
            "object_seconds", "patches_seconds"]
    return common.markdown_table(payload["rows"], cols)


def crops_table(payload):
    cols = ["objects", "weights", "noise_rate", "auroc", "est_rate", "crop_ms_per_object",
            "image_ms_per_canvas", "pipeline_seconds"]
    return common.markdown_table([payload["crops"]], cols)


def _older_section(payload, when):
    cols = ["label_set", "objects", "noise_rate", "image_auroc", "object_auroc", "difference",
            "cleanlab_auroc", "image_seconds", "object_seconds"]
    return (
        "%s pasted CIFAR-10N objects vs the same images (shared MobileNetV2 embeddings), run "
        "%s by an older harness: kNN disagreement, Deep Self-Learning, Dupes (%d rounds) and the "
        "consensus of that time (before label quality and the probability consensus). Rerun "
        "`python benchmarks/bench_objects.py` for the current defaults.\n\n%s"
        % ("{:,}".format(payload["rows"][0]["objects"]), when, payload.get("rounds", 10),
           common.markdown_table(payload["rows"], cols))
    )


if __name__ == "__main__":
    main()
