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
     does not retrain.

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

Contact sheets: ``results/issue_types_groups.png`` (plain),
``..._mirror.png`` (mirror-averaged), ``..._trained.png`` (trained CNN).
"""

import argparse
import csv
import io
import json
import os
import tarfile
import time

import numpy as np

import common

CACHE = os.path.join("/tmp", "label_noise_bench_issue_types")
#: the backbones of the planted sets: name -> kind (``planted_set``'s ``backbone``)
BACKBONES = {
    "resnet18 random weights": "random",
    "resnet18 random weights, mean with mirror image": "random_mirror",
    "small CNN trained here on the other CIFAR-10 train images": "trained",
}
#: file-name suffix of each kind's cache and contact sheet
SUFFIX = {"random": "", "random_mirror": "_mirror", "trained": "_trained"}
#: the trained CNN: channels of its three stages, epochs (fits ~15 min on 2 cores)
CNN_CHANNELS = (64, 128, 256)
CNN_EPOCHS = 8
CNN_BATCH = 128
CNN_LR = 0.1
#: CIFAR-10 per-channel mean and standard deviation (of the train images, 0-1 scale)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
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
        "512-d; the second row averages each image's features with its mirror image's.%s The "
        "method code and its defaults are the same for every row; only the embedding differs. Run %s."
        % ("{:,}".format(cfg["real"]), cfg["outliers"], cfg["duplicates"], _trained_text(data),
           data["machine"]["date"]),
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
            "the entropy of `p`.%s" % (" Run %s (kept by `--skip-ambiguity`)." % data["ambiguity_run"]
                                          if data.get("ambiguity_run") else ""),
            "", common.markdown_table(rows), "",
        ]
    return "\n".join(lines)


def _trained_text(data):
    """The section's sentence on the trained CNN's row ("" without one)."""
    for name, found in data["planted"].items():
        cnn = found.get("cnn")
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


def _cifar_all():
    """All 50,000 CIFAR-10 train images, uint8 (50000, 32, 32, 3) in the
    original train order, and their clean labels (class indices)."""
    from PIL import Image

    rows = list(csv.DictReader(open(os.path.join(common.SHARED, "cifar10", "labels.csv"))))
    where = {r["filepath"]: i for i, r in enumerate(rows)}
    images = np.zeros((len(rows), 32, 32, 3), dtype=np.uint8)
    seen = np.zeros(len(rows), dtype=bool)
    with tarfile.open(os.path.join(common.SHARED, "cifar10", "cifar10_train_jpg.tar.gz")) as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in where:
                i = where[name]
                images[i] = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                seen[i] = True
    if not seen.all():
        raise RuntimeError("%d CIFAR-10 images missing from the archive" % (~seen).sum())
    classes = sorted({r["clean"] for r in rows})
    return images, np.array([classes.index(r["clean"]) for r in rows])


def small_cnn(channels=CNN_CHANNELS, num_classes=10):
    """3 stages of (conv 3x3 - BN - ReLU) x 2 + 2x2 max-pool, global average
    pool, linear; ``model[0]`` gives the pooled ``channels[-1]``-d feature."""
    from torch import nn

    layers, cin = [], 3
    for c in channels:
        for c_in in (cin, c):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2))
        cin = c
    return nn.Sequential(nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(cin, num_classes))


def _cnn_tag(epochs):
    """The trained CNN's part of a cache file name: epochs and channels."""
    return "e%d_c%s" % (epochs, "-".join(str(c) for c in CNN_CHANNELS))


def _normalise(batch_uint8_nchw):
    import torch

    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (batch_uint8_nchw.float() / 255 - mean) / std


def bf16_supported():
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def train_small_cnn(images, labels, epochs=CNN_EPOCHS, seed=0, batch_size=CNN_BATCH, lr=CNN_LR,
                    channels=CNN_CHANNELS, bf16=None, log=print):
    """Trains :func:`small_cnn` on uint8 (n, 32, 32, 3) images: random crop
    32 of the image zero-padded by 4 pixels + horizontal flip, SGD (momentum
    0.9, Nesterov, weight decay 5e-4), one-cycle learning rate up to ``lr``;
    ``bf16`` (None: where :func:`bf16_supported`): bfloat16 autocast of the
    forward pass (fp32 weights; about 2x faster on such a CPU). Returns the
    model (eval mode, fp32) and a list of per-epoch records."""
    import contextlib

    import torch
    import torch.nn.functional as F

    if bf16 is None:
        bf16 = bf16_supported()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = small_cnn(channels).to(memory_format=torch.channels_last)
    padded = F.pad(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), (4, 4, 4, 4))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    n = len(y)
    steps = (n + batch_size - 1) // batch_size
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.25)
    history = []
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        order = rng.permutation(n)
        total, correct, loss_sum = 0, 0, 0.0
        for b in range(steps):
            rows = order[b * batch_size:(b + 1) * batch_size]
            dx, dy = rng.integers(0, 9, size=(2, len(rows)))
            flip = rng.random(len(rows)) < 0.5
            crops = []
            for r, i, j, f in zip(rows, dx, dy, flip):
                crop = padded[r, :, j:j + 32, i:i + 32]
                crops.append(torch.flip(crop, dims=[2]) if f else crop)
            xb = _normalise(torch.stack(crops)).contiguous(memory_format=torch.channels_last)
            yb = y[rows]
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                out = model(xb)
                loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(rows)
            correct += int((out.argmax(1) == yb).sum())
            loss_sum += float(loss.detach()) * len(rows)
        history.append(dict(epoch=epoch + 1, loss=round(loss_sum / total, 4), train_accuracy=round(correct / total, 4),
                            seconds=round(time.perf_counter() - t0, 1), bf16=bool(bf16)))
        log("cnn epoch", history[-1])
    model.eval()
    return model, history


def _cnn_outputs(model, images, batch_size=500):
    """Pooled features and logits of uint8 (n, 32, 32, 3) images (fp32)."""
    import torch

    feats, logits = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            xb = _normalise(torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size].transpose(0, 3, 1, 2))))
            f = model[0](xb)
            feats.append(f.numpy())
            logits.append(model[1](f).numpy())
    return np.concatenate(feats), np.concatenate(logits)


def trained_cnn_embeddings(images, real_index, real_labels, seed=0, epochs=CNN_EPOCHS):
    """Features of uint8 (n, 32, 32, 3) ``images`` (the planted set, its
    ``len(real_index)`` real images first) from :func:`small_cnn` trained on
    the CIFAR-10 train images not in ``real_index`` (their clean labels).
    The weights and the training record are cached under ``CACHE``, keyed by
    the number of real images, ``seed``, ``epochs`` and ``CNN_CHANNELS``. Returns the features
    and the record (with the accuracy on the real images, ``real_labels``)."""
    import torch

    torch.set_num_threads(2)
    key = os.path.join(CACHE, "cnn_%d_%d_%s" % (len(real_index), seed, _cnn_tag(epochs)))
    model = small_cnn()
    if os.path.exists(key + ".pt") and os.path.exists(key + ".json"):
        model.load_state_dict(torch.load(key + ".pt"))
        model.eval()
        record = json.load(open(key + ".json"))
    else:
        all_images, all_labels = _cifar_all()
        train = np.ones(len(all_labels), dtype=bool)
        train[real_index] = False
        t0 = time.perf_counter()
        model, history = train_small_cnn(all_images[train], all_labels[train], epochs=epochs, seed=seed)
        record = dict(channels=list(CNN_CHANNELS), epochs=epochs, batch_size=CNN_BATCH, lr=CNN_LR, seed=seed,
                      threads=torch.get_num_threads(), train_images=int(train.sum()),
                      bf16=bool(history[0]["bf16"]),
                      train_seconds=round(time.perf_counter() - t0, 1), history=history)
        torch.save(model.state_dict(), key + ".pt")
        with open(key + ".json", "w") as f:
            json.dump(record, f, indent=2)
    feats, logits = _cnn_outputs(model, images)
    num_real = len(real_index)
    record = dict(record, heldout_images=num_real,
                  heldout_accuracy=float((logits[:num_real].argmax(1) == np.asarray(real_labels)).mean()))
    return feats, record


def planted_set(num_real, num_outliers, num_duplicates, seed=0, backbone="random", epochs=CNN_EPOCHS):
    """Images, labels and what was planted, embedded by ``backbone`` (a
    value of ``BACKBONES``; ``epochs``: the trained CNN's), cached under /tmp."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, "planted_%d_%d_%d_%d%s%s.npz" % (
        num_real, num_outliers, num_duplicates, seed, SUFFIX[backbone],
        "_" + _cnn_tag(epochs) if backbone == "trained" else ""))
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
        result["planted"][name] = found
        print(name, found["outliers"], found["duplicates"], flush=True)
    name = "issue_types_quick" if args.quick else "issue_types"
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
