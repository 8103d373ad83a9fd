"""Issue types beyond "wrong": outliers, conflicting duplicates, ambiguity.

Three measurements (issue #30), at the methods level (the operator
``find_label_issues`` calls the same functions; its integration tests check
the data path):

1. **Planted outliers.** ``--real`` (10,000) CIFAR-10 train images (random,
   seed 0, their original labels) plus ``--outliers`` (200) Fashion-MNIST
   images (grayscale 28x28 -> RGB 32x32) with random CIFAR labels. Metric:
   AUROC of ``outlier_score`` (planted vs real), share of planted images
   and of real images whose ``outlier_score`` passes ``Z_OUTLIER``; with
   the default ``metric="both"`` and, beside it, each geometry alone.
   Also images of *no class* on a real pretrained embedding: each CIFAR-10
   class in turn left out of the label set, 200 of its images planted
   under random labels of the other nine among 10,000 of theirs, on the
   shared MobileNetV2 features (:func:`measure_heldout_classes`).
2. **Planted conflicting duplicates.** ``--duplicates`` (200) copies of
   random real images, each flipped left-right, or cropped (a 28x28 window
   resized back to 32x32), or JPEG re-compressed at quality 40, labelled
   with another class. Metric: share of planted copies whose group holds
   the original and is conflicting, with the default pixel check (the
   images' thumbnails decide the embedding's candidates) and with
   Datalab's embedding rule alone; conflicting groups among the real
   images alone (every one is written to a contact sheet,
   ``results/issue_types_groups.png``, to be checked by eye).

   Embeddings for 1 and 2, one row each (every image of the set through
   the same network, offline; no pretrained network can be downloaded
   here, and the shared MobileNetV2 embeddings exist only for the CIFAR
   images):

   - torchvision ``resnet18`` with **random weights**
     (``torch.manual_seed(0)``, no download), images resized to 64x64,
     ImageNet normalisation, the pooled 512-d feature; a random-weight CNN
     is the weakest realistic embedding (its CIFAR-10 linear accuracy is
     far below a trained network's), so its numbers are a floor;
   - the same, averaged with the features of the left-right mirror image
     (a flip-invariant embedding);
   - **a small CNN trained here**, standing in for a user's own trained
     model: 3 stages of (conv 3x3 - BN - ReLU) x 2 + 2x2 max-pool,
     ``CNN_CHANNELS`` 64/128/256, global average pool, linear 10; trained
     on the CIFAR-10 train images that are NOT in the evaluated set (the
     other 40,000, their original labels), ``--cnn-epochs`` epochs, batch
     128, SGD (momentum 0.9, Nesterov, weight decay 5e-4, one-cycle
     learning rate up to 0.1), random crop 32 with 4-pixel zero padding +
     horizontal flip, ``torch.manual_seed(seed)``, CPU, 2 threads,
     bfloat16 autocast where the CPU supports it (about 105 s an epoch on
     2 AVX-512 cores; 8 epochs fit ~15 min). The embedding is its 256-d
     globally pooled feature (the penultimate layer, computed in fp32). Its accuracy on the 10,000 evaluated real images (held out,
     original labels) is written to the results. Weights, training log and
     features are cached under ``/tmp/label_noise_bench_issue_types`` keyed
     by the number of real images, the seed and the epochs, so a re-run
     does not retrain;
   - **the same CNN trained self-supervised** (SimCLR, what SCAN's step 1
     builds for a user without a model): trunk + projection head trained on
     the evaluated images themselves, no labels, NT-Xent loss
     (``methods.simclr.nt_xent_loss``) with SimCLR's CIFAR augmentations,
     ``SIMCLR_EPOCHS`` (20) epochs of batch ``SIMCLR_BATCH`` (256), about
     80 s an epoch on 2 cores; cached like the supervised CNN
     (:func:`simclr_cnn_embeddings`).

   The method code and its defaults (``Z_OUTLIER``, the duplicate radius)
   are the same for every row: only the embedding differs.
3. **Ambiguity vs human disagreement.** CIFAR-10N: the three independent
   human labels ``random1..3`` of every train image; "disagree" = not all
   three equal. Out-of-sample probabilities (``methods.out_of_sample``,
   defaults) on the shared MobileNetV2 embeddings, with the given labels
   either ``random1`` (a human-labelled dataset) or ``clean`` (the original
   labels, the situation of the held-out 50-annotator check). AUROC of
   ``label_ambiguity`` vs the entropy of the probabilities alone.

    nice -n 10 .venv/bin/python benchmarks/bench_issue_types.py           # results/issue_types.json
    nice -n 10 .venv/bin/python benchmarks/bench_issue_types.py --quick   # 2,000 real, 10,000 for 3

Contact sheets (50 groups each where there are 50): ``results/issue_types_groups.png``
(plain), ``..._mirror.png`` (mirror-averaged), ``..._trained.png`` (trained
CNN), ``..._simclr.png`` (self-supervised CNN).
"""

import argparse
import io
import json
import os
import tarfile

import numpy as np

import common
from issue_types_embedders import (
    CACHE, CNN_EPOCHS, SIMCLR_BATCH, SIMCLR_EPOCHS, cifar_images, cnn_tag, random_resnet_embeddings,
    simclr_cnn_embeddings, trained_cnn_embeddings,
)

#: the backbones of the planted sets: name -> kind (``planted_set``'s ``backbone``)
BACKBONES = {
    "resnet18 random weights": "random",
    "resnet18 random weights, mean with mirror image": "random_mirror",
    "small CNN trained here on the other CIFAR-10 train images": "trained",
    "same CNN trained self-supervised (SimCLR) on the evaluated images": "simclr",
}
#: file-name suffix of each kind's cache and contact sheet
SUFFIX = {"random": "", "random_mirror": "_mirror", "trained": "_trained", "simclr": "_simclr"}
SECTION_TITLE = "## Issue types: outliers, conflicting duplicates, ambiguity (`bench_issue_types.py`)"


def section(data):
    """The BENCHMARKS.md section of ``results/issue_types.json``."""
    cfg = data["config"]
    rows = []
    for name, found in data["planted"].items():
        o, d = found["outliers"], found["duplicates"]
        rows.append({
            "embedding": name,
            "outlier AUROC": o["auroc"],
            "planted outliers marked": "%.1f%%" % (100 * o["planted_marked"]),
            "real images marked outlier": "%.2f%%" % (100 * o["real_marked"]),
            "cosine only: AUROC / marked / real": _other_metric(o, "cosine"),
            "euclidean only: AUROC / marked / real": _other_metric(o, "euclidean"),
            "planted copies found": "%.1f%%" % (100 * d["found"]),
            "embeddings only (Datalab)": "%.1f%%" % (100 * d["found_embeddings_only"])
            if "found_embeddings_only" in d else "",
            "pairs checked / matched": "{:,} / {:,}".format(d["pixel_pairs_checked"], d["pixel_pairs_matched"])
            if "pixel_pairs_checked" in d else "",
            "flip / crop / jpeg": " / ".join("%.0f%%" % (100 * d["found_by_kind"][k]) for k in ("flip", "crop", "jpeg")),
            "groups among real": d["groups_among_real"],
            "conflicting among real": d["conflicting_groups_among_real"],
            "groups of 2+ Fashion-MNIST (false)": "%d (%d images)" % (
                d["false_groups_among_planted_outliers"], d["planted_outliers_in_them"])
            if "false_groups_among_planted_outliers" in d else "",
        })
    lines = [
        SECTION_TITLE, "",
        "%s CIFAR-10 train images (random, original labels) + %d Fashion-MNIST images (RGB, random "
        "CIFAR labels) + %d copies of real images (flipped, cropped 28/32 and resized, or JPEG q40; "
        "a third each) under another label. Targets (issue #30): outlier AUROC >= 0.95; >= 80%% of "
        "planted outliers and <= 1%% of real images marked `outlier` (`outlier_score` > 3, default "
        "`outlier_metric=\"both\"`; each geometry alone beside it); >= 95%% "
        "of planted copies in a conflicting group with their source (default `duplicate_check=\"pixels\"`: "
        "each item's 3 nearest neighbours, nearest first, at most 20,000 pairs, verified by "
        "the thumbnail correlation after the best flip and crop >= 0.95 and distinctly above an ordinary neighbour's; Datalab's embedding rule alone beside it); "
        "no false group among the real "
        "images (contact sheet: `benchmarks/results/issue_types_groups*.png`). Embeddings: "
        "torchvision resnet18 with random weights (seed 0; no pretrained network can be downloaded "
        "here and the shared MobileNetV2 features exist only for the CIFAR images), 64x64 input, "
        "512-d; the second row averages each image's features with its mirror image's.%s The "
        "method code and its defaults are the same for every row; only the embedding differs. Run %s."
        % ("{:,}".format(cfg["real"]), cfg["outliers"], cfg["duplicates"], _trained_text(data) + _simclr_text(data),
           data["machine"]["date"]),
        "", common.markdown_table(rows), "",
    ]
    if data.get("by_eye"):  # a reviewer's note on this run's contact sheets
        lines += [data["by_eye"], ""]
    if data.get("heldout_classes"):
        lines += _heldout_lines(data["heldout_classes"])
    amb = data.get("ambiguity")
    if amb:
        rows = [{
            "given labels": given,
            "images": v["num_samples"],
            "annotators disagree": "%.1f%%" % (100 * v["disagree_share"]),
            "AUROC label_ambiguity": v["auroc_label_ambiguity"],
            "AUROC entropy of p": v["auroc_entropy"],
            "AUROC Gini of p alone": v["auroc_gini_probabilities_only"],
        } for given, v in amb.items()]
        lines += [
            "Ambiguity vs human disagreement: CIFAR-10N, all 50,000 train images, \"disagree\" = the "
            "three independent annotations `random1..3` are not all equal. Out-of-sample "
            "probabilities `p` (`methods.out_of_sample`, defaults) on the shared MobileNetV2 "
            "embeddings, fitted to the given labels of each row. Target: `label_ambiguity` above "
            "the entropy of `p`.%s" % (" Run %s (kept by `--skip-ambiguity`)." % data["ambiguity_run"]
                                          if data.get("ambiguity_run") else ""),
            "", common.markdown_table(rows), "",
        ]
    if data.get("what_it_says"):  # a reader's summary of this run (dropped when the bench re-runs)
        lines += [data["what_it_says"], ""]
    return "\n".join(lines)


def _other_metric(outliers, metric):
    """``AUROC / planted marked / real marked`` of a non-default geometry."""
    other = (outliers.get("other_metrics") or {}).get(metric)
    if not other:
        return "-"
    return "%.3f / %.1f%% / %.2f%%" % (other["auroc"], 100 * other["planted_marked"],
                                       100 * other["real_marked"])


def _heldout_lines(held):
    """The section's lines on the held-out-class measurement."""
    rows = [dict({"held-out class": name}, **{
        "%s AUROC" % m: v[m]["auroc"] for m in held["metrics"]
    }, **{
        "%s marked / real" % m: "%.1f%% / %.2f%%" % (100 * v[m]["planted_marked"], 100 * v[m]["real_marked"])
        for m in held["metrics"]
    }) for name, v in held["classes"].items()]
    rows.append(dict({"held-out class": "**mean**"}, **{
        "%s AUROC" % m: held["mean"][m]["auroc"] for m in held["metrics"]
    }, **{
        "%s marked / real" % m: "%.1f%% / %.2f%%" % (100 * held["mean"][m]["planted_marked"],
                                                 100 * held["mean"][m]["real_marked"])
        for m in held["metrics"]
    }))
    return [
        "Images of no class, on a real pretrained embedding (the shared ImageNet MobileNetV2 "
        "features, which exist only for CIFAR-10): one CIFAR-10 class at a time is left out of "
        "the label set; %s images of the other nine (random, clean labels, relabelled 0-8) plus "
        "%d images of the held-out class under random labels of the nine. A near "
        "out-of-distribution case (a truck among automobiles), harder than Fashion-MNIST; the "
        "same `outlier_score` defaults, both geometries.%s" % (
            "{:,}".format(held["inliers"]), held["outliers"], _unanimous_text(held)),
        "", common.markdown_table(rows), "",
    ]


def _unanimous_text(held):
    """The sentence on the unanimous CIFAR-10N subset ("" without it)."""
    una = held.get("unanimous")
    if not una:
        return ""
    return (" On the real low-noise set (the %s CIFAR-10N images all three annotators label alike, "
            "their label, same features) the share marked `outlier` is %s." % (
                "{:,}".format(una["images"]),
                ", ".join("%.2f%% (%s)" % (100 * v, m) for m, v in una["marked"].items())))


def _row_record(data, key):
    """``(row name, training record)`` of the first planted row whose
    embedding was trained (``key``: "cnn" or "simclr"), else ``(None, None)``."""
    for name, found in data["planted"].items():
        if found.get(key):
            return name, found[key]
    return None, None


def _simclr_text(data):
    """The section's sentence on the self-supervised row ("" without one)."""
    name, rec = _row_record(data, "simclr")
    if rec:
        return (
            " The row \"%s\" is an embedding a user without a model can build (SCAN's step 1, "
            "`methods.simclr`): the same CNN trunk + a projection head (256-256-128) trained on the "
            "%s evaluated images themselves, no labels, with SimCLR's NT-Xent loss (temperature "
            "0.5) and its CIFAR augmentations (random resized crop 0.2-1, flip, colour jitter, "
            "grayscale); %d epochs, batch %d (2 views each), Adam 1e-3, seed %d%s; %.1f min on %d "
            "CPU threads, final loss %.2f."
            % (name, "{:,}".format(rec["images"]), rec["epochs"], rec["batch_size"], rec["seed"],
               ", bfloat16 autocast" if rec.get("bf16") else "", rec["train_seconds"] / 60,
               rec["threads"], rec["history"][-1]["loss"]))
    return ""


def _trained_text(data):
    """The section's sentence on the trained CNN's row ("" without one)."""
    name, cnn = _row_record(data, "cnn")
    if cnn:
        return (
            " The row \"%s\" stands in for a user's own trained model: a small CNN trained here "
            "(3 stages of (conv 3x3, BN, ReLU) x 2 + max-pool, %s channels, global average pool, "
            "linear 10; %d epochs, batch %d, SGD momentum 0.9 with a one-cycle learning rate up "
            "to %g, random crop 32 with 4-pixel padding + horizontal flip, seed %d%s; %.1f min on "
            "%d CPU threads, fastest epoch %.0f s) on the %s CIFAR-10 train images that are NOT in "
            "the evaluated set, "
            "with their original labels; the embedding is its %d-d globally pooled feature. "
            "Its accuracy on the %s evaluated real images (held out, original labels) is %.1f%%."
            % (name, "/".join(str(c) for c in cnn["channels"]), cnn["epochs"], cnn["batch_size"],
               cnn["lr"], cnn["seed"], ", bfloat16 autocast" if cnn.get("bf16") else "",
               cnn["train_seconds"] / 60, cnn["threads"], min(h["seconds"] for h in cnn["history"]),
               "{:,}".format(cnn["train_images"]), cnn["channels"][-1],
               "{:,}".format(cnn["heldout_images"]), 100 * cnn["heldout_accuracy"]))
    return ""


def _cifar_images(indices):
    """The CIFAR-10 train images of ``indices`` as PIL images, their labels, the class names."""
    from PIL import Image

    images, labels, classes = cifar_images(indices)
    return [Image.fromarray(im) for im in images], labels, classes


def _fmnist_images(count, rng):
    from PIL import Image

    path = os.path.join(common.SHARED, "fashion-mnist-small", "fashion_mnist_small_png.tar.gz")
    images = []
    with tarfile.open(path) as tar:
        members = sorted((m for m in tar if m.isfile() and m.name.endswith(".png")), key=lambda m: m.name)
        for m in rng.choice(len(members), count, replace=False):
            img = Image.open(io.BytesIO(tar.extractfile(members[m]).read())).convert("RGB")
            images.append(img.resize((32, 32), Image.BILINEAR))
    return images


def _transformed(image, kind, rng):
    from PIL import Image, ImageOps

    if kind == "flip":
        return ImageOps.mirror(image)
    if kind == "crop":
        x0, y0 = rng.integers(0, 5, size=2)
        return image.crop((x0, y0, x0 + 28, y0 + 28)).resize((32, 32), Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=40)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def planted_set(num_real, num_outliers, num_duplicates, seed=0, backbone="random", epochs=CNN_EPOCHS):
    """Images, labels and what was planted, embedded by ``backbone`` (a
    value of ``BACKBONES``; ``epochs``: the trained CNN's), cached under /tmp."""
    os.makedirs(CACHE, exist_ok=True)
    tag = {"trained": "_" + cnn_tag(epochs), "simclr": "_e%d_b%d" % (SIMCLR_EPOCHS, SIMCLR_BATCH)}
    path = os.path.join(CACHE, "planted_%d_%d_%d_%d%s%s.npz" % (
        num_real, num_outliers, num_duplicates, seed, SUFFIX[backbone], tag.get(backbone, "")))
    rng = np.random.default_rng(seed)
    real_index = np.sort(rng.choice(50000, num_real, replace=False))
    if os.path.exists(path):
        return dict(np.load(path, allow_pickle=True))
    images, labels, classes = _cifar_images(real_index.tolist())
    outliers = _fmnist_images(num_outliers, rng)
    out_labels = rng.integers(0, 10, num_outliers)
    sources = rng.choice(num_real, num_duplicates, replace=False)
    kinds = np.array(["flip", "crop", "jpeg"])[np.arange(num_duplicates) % 3]
    copies = [_transformed(images[s], kind, rng) for s, kind in zip(sources, kinds)]
    dup_labels = (labels[sources] + rng.integers(1, 10, num_duplicates)) % 10
    all_images = images + outliers + copies
    thumbs = np.stack([np.asarray(im, dtype=np.uint8) for im in all_images])
    extra = {}
    if backbone == "trained":
        x, record = trained_cnn_embeddings(thumbs, real_index, labels, seed=seed, epochs=epochs)
        extra["cnn"] = json.dumps(record)
    elif backbone == "simclr":
        x, record = simclr_cnn_embeddings(thumbs, seed=seed)
        extra["simclr"] = json.dumps(record)
    else:
        x = random_resnet_embeddings(all_images, mirror=backbone == "random_mirror")
    data = dict(extra,
        x=x, thumbs=thumbs,
        labels=np.concatenate([labels, out_labels, dup_labels]),
        kind=np.array(["real"] * num_real + ["outlier"] * num_outliers + ["duplicate"] * num_duplicates),
        source=np.concatenate([np.full(num_real + num_outliers, -1), sources]),
        dup_kind=np.concatenate([np.array([""] * (num_real + num_outliers)), kinds]),
        classes=np.array(classes),
    )
    np.savez(path, **data)
    return data


def measure_planted(data, sheet_name="issue_types_groups.png"):
    from sklearn.metrics import roc_auc_score

    from methods.near_duplicates import near_duplicate_groups
    from methods.outlier_score import METRICS, Z_OUTLIER, outlier_score

    x, labels, kind = data["x"], data["labels"], data["kind"]
    is_out = kind == "outlier"
    real = kind == "real"
    measured = {}
    for metric in METRICS:  # the default first
        with common.Timer() as t_out:
            score = outlier_score(x, labels, num_classes=10, metric=metric)["score"]
        marked = score > Z_OUTLIER
        measured[metric] = dict(
            auroc=float(roc_auc_score(is_out[kind != "duplicate"], score[kind != "duplicate"])),
            planted_marked=float(marked[is_out].mean()),
            real_marked=float(marked[real].mean()),
            seconds=round(t_out.seconds, 2),
        )
    outliers = dict(measured[METRICS[0]], metric=METRICS[0], z_outlier=Z_OUTLIER,
                    other_metrics={m: measured[m] for m in METRICS[1:]})
    thumbs = data["thumbs"]
    dup_rows = np.flatnonzero(kind == "duplicate")
    src = data["source"][dup_rows]

    def found_copies(groups):
        group, conflict = groups["group"], groups["conflict"]
        return (group[dup_rows] >= 0) & (group[dup_rows] == group[src]) & conflict[dup_rows]

    # the embedding rule alone (Datalab's), beside the default pixel check
    embedding_only = found_copies(near_duplicate_groups(x, labels))
    with common.Timer() as t_dup:
        groups = near_duplicate_groups(
            x, labels, thumbnails=lambda rows: (thumbs[rows], np.ones(len(rows), dtype=bool)))
    group, conflict = groups["group"], groups["conflict"]
    found_dup = found_copies(groups)
    per_kind = {k: float(found_dup[data["dup_kind"][dup_rows] == k].mean()) for k in ("flip", "crop", "jpeg")}
    # groups made of real images only (no planted member)
    planted_groups = set(group[kind != "real"][group[kind != "real"] >= 0].tolist())
    real_groups = sorted(set(group[real & (group >= 0)].tolist()) - planted_groups)
    real_conflicting = [g for g in real_groups if conflict[group == g].any()]
    # groups joining 2+ different planted outliers (distinct Fashion-MNIST images: all false)
    out_groups, out_counts = np.unique(group[is_out & (group >= 0)], return_counts=True)
    duplicates = dict(
        found=float(found_dup.mean()),
        false_groups_among_planted_outliers=int((out_counts >= 2).sum()),
        planted_outliers_in_them=int(out_counts[out_counts >= 2].sum()),
        found_by_kind=per_kind,
        found_embeddings_only=float(embedding_only.mean()),
        pixel_pairs_checked=groups["pixel_pairs_checked"],
        pixel_pairs_matched=groups["pixel_pairs_matched"],
        radius=groups["radius"],
        groups_among_real=len(real_groups),
        conflicting_groups_among_real=len(real_conflicting),
        seconds=round(t_dup.seconds, 2),
    )
    sheet = _contact_sheet(data, group, real_groups, planted_groups, name=sheet_name)
    return dict(outliers=outliers, duplicates=duplicates, contact_sheet=sheet)


def _contact_sheet(data, group, real_groups, planted_groups, max_groups=50, name="issue_types_groups.png"):
    """``max_groups`` groups to check by eye, one row each (thumbnails, the
    label under each): every group among the real images (a random sample of
    them when there are more), then groups holding a planted image (a random
    sample) up to ``max_groups`` in all, at least 10."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    show = list(real_groups)
    if len(show) > max_groups:
        show = sorted(rng.choice(show, max_groups, replace=False).tolist())
    planted = sorted(planted_groups)
    take = min(len(planted), max(10, max_groups - len(show)))
    planted = sorted(rng.choice(planted, take, replace=False).tolist()) if take else []
    rows = [(g, "real") for g in show] + [(g, "planted") for g in planted]
    if not rows:
        return None
    cell = 40
    width = 80 + 8 * cell
    sheet = Image.new("RGB", (width, cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (g, what) in enumerate(rows):
        members = np.flatnonzero(group == g)[:8]
        draw.text((2, r * cell + 4), "%s %d" % (what, g), fill="black")
        for c, m in enumerate(members):
            sheet.paste(Image.fromarray(data["thumbs"][m]), (80 + c * cell, r * cell + 2))
            draw.text((80 + c * cell, r * cell + 32), str(data["classes"][data["labels"][m]])[:6], fill="red")
    path = os.path.join(common.RESULTS, name)
    sheet.save(path)
    return os.path.relpath(path, common.REPO)


def measure_heldout_classes(inliers=10000, outliers=200, seed=0):
    """Each CIFAR-10 class in turn left out of the label set (see
    :func:`_heldout_lines`), on the shared MobileNetV2 embeddings."""
    from sklearn.metrics import roc_auc_score

    from methods.outlier_score import METRICS, Z_OUTLIER, outlier_score

    data = common.cifar10n("clean")
    x, y = data["x"], data["clean"]
    rng = np.random.default_rng(seed)
    per_class = {}
    for held in range(len(data["classes"])):
        inn = rng.choice(np.flatnonzero(y != held), inliers, replace=False)
        out = rng.choice(np.flatnonzero(y == held), outliers, replace=False)
        relabel = np.cumsum(np.arange(10) != held) - 1   # class -> 0..8 without ``held``
        labels = np.concatenate([relabel[y[inn]], rng.integers(0, 9, outliers)])
        is_out = np.r_[np.zeros(inliers, bool), np.ones(outliers, bool)]
        rows = np.concatenate([inn, out])
        per_class[data["classes"][held]] = {}
        for metric in METRICS:
            score = outlier_score(x[rows], labels, num_classes=9, metric=metric)["score"]
            per_class[data["classes"][held]][metric] = dict(
                auroc=float(roc_auc_score(is_out, score)),
                planted_marked=float((score[is_out] > Z_OUTLIER).mean()),
                real_marked=float((score[~is_out] > Z_OUTLIER).mean()),
            )
    mean = {m: {k: float(np.mean([v[m][k] for v in per_class.values()]))
                for k in ("auroc", "planted_marked", "real_marked")} for m in METRICS}
    # the low-noise real set: the images all three CIFAR-10N annotators agree on
    agree = [common.cifar10n("random%d" % i)["noisy"] for i in (1, 2, 3)]
    unanimous = np.flatnonzero((agree[0] == agree[1]) & (agree[1] == agree[2]))
    marked = {m: float((outlier_score(x[unanimous], agree[0][unanimous], num_classes=10,
                                      metric=m)["score"] > Z_OUTLIER).mean()) for m in METRICS}
    return dict(inliers=inliers, outliers=outliers, seed=seed, metrics=list(METRICS),
                classes=per_class, mean=mean,
                unanimous=dict(images=int(len(unanimous)), marked=marked))


def measure_ambiguity(limit=None, seed=0):
    from sklearn.metrics import roc_auc_score

    from methods.label_ambiguity import label_ambiguity
    from methods.out_of_sample import out_of_sample_probabilities

    out = {}
    for given in ("random1", "clean"):
        d = common.cifar10n(label_set=given)
        r = [common.cifar10n(label_set=s)["noisy"] for s in ("random2", "random3")]
        r1 = common.cifar10n(label_set="random1")["noisy"]
        rows = np.arange(len(d["noisy"]))
        if limit:
            rows = np.sort(np.random.default_rng(seed).choice(len(rows), limit, replace=False))
        disagree = ~((r1 == r[0]) & (r[0] == r[1]))[rows]
        y = d["noisy"][rows]
        with common.Timer() as t:
            p = out_of_sample_probabilities(d["x"][rows], y, num_classes=10, seed=51)["probabilities"]
        entropy = -(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1)
        amb = label_ambiguity(p, y)
        out[given] = dict(
            num_samples=int(len(rows)),
            disagree_share=float(disagree.mean()),
            auroc_label_ambiguity=float(roc_auc_score(disagree, amb)),
            auroc_entropy=float(roc_auc_score(disagree, entropy)),
            auroc_gini_probabilities_only=float(roc_auc_score(disagree, label_ambiguity(p, y, given_weight=0))),
            seconds_probabilities=round(t.seconds, 1),
        )
        print(given, out[given], flush=True)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--real", type=int, default=10000)
    parser.add_argument("--outliers", type=int, default=200)
    parser.add_argument("--duplicates", type=int, default=200)
    parser.add_argument("--cnn-epochs", type=int, default=CNN_EPOCHS)
    parser.add_argument("--skip-ambiguity", action="store_true",
                        help="keep the ambiguity results of the existing results file")
    args = parser.parse_args()
    real = 2000 if args.quick else args.real
    result = dict(config=dict(real=real, outliers=args.outliers, duplicates=args.duplicates),
                  planted={})
    for name, backbone in BACKBONES.items():
        with common.Timer() as t:
            data = planted_set(real, args.outliers, args.duplicates, backbone=backbone, epochs=args.cnn_epochs)
        found = measure_planted(data, "issue_types_groups%s%s.png" % (SUFFIX[backbone], "_quick" if args.quick else ""))
        found["seconds_data"] = round(t.seconds, 1)
        if "cnn" in data:
            found["cnn"] = json.loads(str(data["cnn"]))
        if "simclr" in data:
            found["simclr"] = json.loads(str(data["simclr"]))
        result["planted"][name] = found
        print(name, found["outliers"], found["duplicates"], flush=True)
    name = "issue_types_quick" if args.quick else "issue_types"
    result["heldout_classes"] = measure_heldout_classes(
        inliers=2000 if args.quick else 10000, outliers=40 if args.quick else 200)
    print("held-out classes", result["heldout_classes"]["mean"], flush=True)
    if not args.skip_ambiguity:
        result["ambiguity"] = measure_ambiguity(limit=10000 if args.quick else None)
    else:  # keep the previous results file's ambiguity part (it does not depend on the planted set)
        previous = os.path.join(common.RESULTS, name + ".json")
        if os.path.exists(previous):
            old = json.load(open(previous))
            if old.get("ambiguity"):
                result["ambiguity"] = old["ambiguity"]
                result["ambiguity_run"] = old.get("ambiguity_run") or old["machine"]["date"]
    path = common.save(name, result)
    print("wrote", path)


if __name__ == "__main__":
    main()
