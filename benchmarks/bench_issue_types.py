"""Issue types beyond "wrong": outliers, conflicting duplicates, ambiguity.

Three measurements (issue #30), at the methods level (the operator
``find_label_issues`` calls the same functions; its integration tests check
the data path):

1. **Planted outliers.** ``--real`` (10,000) CIFAR-10 train images (random,
   seed 0, their original labels) plus ``--outliers`` (200) Fashion-MNIST
   images (grayscale 28x28 -> RGB 32x32) with random CIFAR labels. Metric:
   AUROC of ``outlier_score`` (planted vs real), share of planted images
   and of real images whose ``outlier_score`` passes ``Z_OUTLIER``.
2. **Planted conflicting duplicates.** ``--duplicates`` (200) copies of
   random real images, each flipped left-right, or cropped (a 28x28 window
   resized back to 32x32), or JPEG re-compressed at quality 40, labelled
   with another class. Metric: share of planted copies whose group holds
   the original and is conflicting; conflicting groups among the real
   images alone (every one is written to a contact sheet,
   ``results/issue_types_groups.png``, to be checked by eye).

   Embeddings for 1 and 2: one backbone for every image of the set, offline:
   torchvision ``resnet18`` with **random weights** (``torch.manual_seed(0)``,
   no download), images resized to 64x64, ImageNet normalisation, the
   pooled 512-d feature. Why: the shared MobileNetV2 embeddings exist only
   for the CIFAR images, and no pretrained network can be downloaded here;
   a random-weight CNN is the weakest realistic embedding (its CIFAR-10
   linear accuracy is far below a trained network's), so the numbers are a
   floor for a user's real backbone.
3. **Ambiguity vs human disagreement.** CIFAR-10N: the three independent
   human labels ``random1..3`` of every train image; "disagree" = not all
   three equal. Out-of-sample probabilities (``methods.out_of_sample``,
   defaults) on the shared MobileNetV2 embeddings, with the given labels
   either ``random1`` (a human-labelled dataset) or ``clean`` (the original
   labels, the situation of the held-out 50-annotator check). AUROC of
   ``label_ambiguity`` vs the entropy of the probabilities alone.

    nice -n 10 .venv/bin/python benchmarks/bench_issue_types.py           # results/issue_types.json
    nice -n 10 .venv/bin/python benchmarks/bench_issue_types.py --quick   # 2,000 real, 10,000 for 3
"""

import argparse
import csv
import io
import os
import tarfile

import numpy as np

import common

CACHE = os.path.join("/tmp", "label_noise_bench_issue_types")
#: the backbones of the planted sets: name -> features averaged with the mirror image
BACKBONES = {
    "resnet18 random weights": False,
    "resnet18 random weights, mean with mirror image": True,
}
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
            "planted copies found": "%.1f%%" % (100 * d["found"]),
            "flip / crop / jpeg": " / ".join("%.0f%%" % (100 * d["found_by_kind"][k]) for k in ("flip", "crop", "jpeg")),
            "groups among real": d["groups_among_real"],
            "conflicting among real": d["conflicting_groups_among_real"],
        })
    lines = [
        SECTION_TITLE, "",
        "%s CIFAR-10 train images (random, original labels) + %d Fashion-MNIST images (RGB, random "
        "CIFAR labels) + %d copies of real images (flipped, cropped 28/32 and resized, or JPEG q40; "
        "a third each) under another label. Targets (issue #30): outlier AUROC >= 0.95; >= 80%% of "
        "planted outliers and <= 1%% of real images marked `outlier` (`outlier_score` > 3); >= 95%% "
        "of planted copies in a conflicting group with their source; no false group among the real "
        "images (contact sheet: `benchmarks/results/issue_types_groups*.png`). Embeddings: "
        "torchvision resnet18 with random weights (seed 0; no pretrained network can be downloaded "
        "here and the shared MobileNetV2 features exist only for the CIFAR images), 64x64 input, "
        "512-d; the second row averages each image's features with its mirror image's. Run %s."
        % ("{:,}".format(cfg["real"]), cfg["outliers"], cfg["duplicates"], data["machine"]["date"]),
        "", common.markdown_table(rows), "",
    ]
    if data.get("by_eye"):  # a reviewer's note on this run's contact sheets
        lines += [data["by_eye"], ""]
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
            "the entropy of `p`.", "", common.markdown_table(rows), "",
        ]
    return "\n".join(lines)


def _cifar_images(indices):
    want = {}
    rows = list(csv.DictReader(open(os.path.join(common.SHARED, "cifar10", "labels.csv"))))
    for i in indices:
        want[rows[i]["filepath"]] = i
    out = {}
    from PIL import Image

    with tarfile.open(os.path.join(common.SHARED, "cifar10", "cifar10_train_jpg.tar.gz")) as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in want:
                data = tar.extractfile(member).read()
                out[want[name]] = Image.open(io.BytesIO(data)).convert("RGB")
    classes = sorted({r["clean"] for r in rows})
    labels = np.array([classes.index(rows[i]["clean"]) for i in indices])
    return [out[i] for i in indices], labels, classes


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


def random_resnet_embeddings(images, batch_size=256, mirror=False):
    """Pooled 512-d features of a random-weight resnet18 (seed 0), 64x64
    input; ``mirror``: the mean of the features of the image and of its
    left-right mirror image (a flip-invariant embedding)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = np.stack([np.asarray(im.resize((64, 64)), dtype=np.float32) / 255 for im in images[start:start + batch_size]])
            t = (torch.from_numpy(batch).permute(0, 3, 1, 2) - mean) / std
            f = model(t)
            if mirror:
                f = (f + model(torch.flip(t, dims=[3]))) / 2
            out.append(f.numpy())
    return np.concatenate(out)


def planted_set(num_real, num_outliers, num_duplicates, seed=0, mirror=False):
    """Images, labels and what was planted (cached under /tmp)."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, "planted_%d_%d_%d_%d%s.npz" % (
        num_real, num_outliers, num_duplicates, seed, "_mirror" if mirror else ""))
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
    x = random_resnet_embeddings(all_images, mirror=mirror)
    thumbs = np.stack([np.asarray(im, dtype=np.uint8) for im in all_images])
    data = dict(
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
    from methods.outlier_score import Z_OUTLIER, outlier_score

    x, labels, kind = data["x"], data["labels"], data["kind"]
    with common.Timer() as t_out:
        found = outlier_score(x, labels, num_classes=10)
    score = found["score"]
    is_out = kind == "outlier"
    real = kind == "real"
    marked = score > Z_OUTLIER
    outliers = dict(
        auroc=float(roc_auc_score(is_out[kind != "duplicate"], score[kind != "duplicate"])),
        planted_marked=float(marked[is_out].mean()),
        real_marked=float(marked[real].mean()),
        z_outlier=Z_OUTLIER,
        seconds=round(t_out.seconds, 2),
    )
    with common.Timer() as t_dup:
        groups = near_duplicate_groups(x, labels)
    group, conflict = groups["group"], groups["conflict"]
    dup_rows = np.flatnonzero(kind == "duplicate")
    src = data["source"][dup_rows]
    found_dup = (group[dup_rows] >= 0) & (group[dup_rows] == group[src]) & conflict[dup_rows]
    per_kind = {k: float(found_dup[data["dup_kind"][dup_rows] == k].mean()) for k in ("flip", "crop", "jpeg")}
    # groups made of real images only (no planted member)
    planted_groups = set(group[kind != "real"][group[kind != "real"] >= 0].tolist())
    real_groups = sorted(set(group[real & (group >= 0)].tolist()) - planted_groups)
    real_conflicting = [g for g in real_groups if conflict[group == g].any()]
    duplicates = dict(
        found=float(found_dup.mean()),
        found_by_kind=per_kind,
        radius=groups["radius"],
        groups_among_real=len(real_groups),
        conflicting_groups_among_real=len(real_conflicting),
        seconds=round(t_dup.seconds, 2),
    )
    sheet = _contact_sheet(data, group, real_groups, planted_groups, name=sheet_name)
    return dict(outliers=outliers, duplicates=duplicates, contact_sheet=sheet)


def _contact_sheet(data, group, real_groups, planted_groups, max_groups=50, name="issue_types_groups.png"):
    """Real-image groups (all, up to ``max_groups``) then 10 planted ones,
    one row per group: thumbnails with their labels' colours."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    show = list(real_groups)
    if len(show) > max_groups:
        show = sorted(rng.choice(show, max_groups, replace=False).tolist())
    planted = sorted(planted_groups)[:10]
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
    parser.add_argument("--skip-ambiguity", action="store_true")
    args = parser.parse_args()
    real = 2000 if args.quick else args.real
    result = dict(config=dict(real=real, outliers=args.outliers, duplicates=args.duplicates),
                  planted={})
    for name, mirror in BACKBONES.items():
        with common.Timer() as t:
            data = planted_set(real, args.outliers, args.duplicates, mirror=mirror)
        found = measure_planted(data, "issue_types_groups%s.png" % ("_mirror" if mirror else ""))
        found["seconds_data"] = round(t.seconds, 1)
        result["planted"][name] = found
        print(name, found["outliers"], found["duplicates"], flush=True)
    if not args.skip_ambiguity:
        result["ambiguity"] = measure_ambiguity(limit=10000 if args.quick else None)
    path = common.save("issue_types_quick" if args.quick else "issue_types", result)
    print("wrote", path)


if __name__ == "__main__":
    main()
