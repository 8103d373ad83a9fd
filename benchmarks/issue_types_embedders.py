"""The embeddings of ``bench_issue_types.py``'s planted sets (no pretrained
network can be downloaded here): a random-weight resnet18 (plain or
averaged with the mirror image), a small CNN trained with labels on the
CIFAR-10 train images outside the evaluated set, and the same CNN trained
self-supervised (SimCLR) on the evaluated images. Weights and training
logs are cached under :data:`CACHE`."""

import csv
import io
import json
import os
import tarfile
import time

import numpy as np

import common

CACHE = os.path.join("/tmp", "label_noise_bench_issue_types")
#: the trained CNN: channels of its three stages, epochs (fits ~15 min on 2 cores)
CNN_CHANNELS = (64, 128, 256)
CNN_EPOCHS = 8
CNN_BATCH = 128
CNN_LR = 0.1
#: the self-supervised (SimCLR) CNN: epochs and batch (2 views each)
SIMCLR_EPOCHS = 20
SIMCLR_BATCH = 256
#: CIFAR-10 per-channel mean and standard deviation (of the train images, 0-1 scale)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


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


def cifar_images(indices=None):
    """CIFAR-10 train images from the shared archive: uint8 (m, 32, 32, 3)
    of the rows ``indices`` of labels.csv in that order (None: all 50,000
    in train order), their clean labels (class indices) and the class names."""
    from PIL import Image

    rows = list(csv.DictReader(open(os.path.join(common.SHARED, "cifar10", "labels.csv"))))
    indices = list(range(len(rows))) if indices is None else list(indices)
    where = {rows[i]["filepath"]: slot for slot, i in enumerate(indices)}
    images = np.zeros((len(indices), 32, 32, 3), dtype=np.uint8)
    seen = np.zeros(len(indices), dtype=bool)
    with tarfile.open(os.path.join(common.SHARED, "cifar10", "cifar10_train_jpg.tar.gz")) as tar:
        for member in tar:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in where:
                slot = where[name]
                images[slot] = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                seen[slot] = True
    if not seen.all():
        raise RuntimeError("%d CIFAR-10 images missing from the archive" % (~seen).sum())
    classes = sorted({r["clean"] for r in rows})
    return images, np.array([classes.index(rows[i]["clean"]) for i in indices]), classes


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


def cnn_tag(epochs):
    """The trained CNN's part of a cache file name: epochs and channels."""
    return "e%d_c%s" % (epochs, "-".join(str(c) for c in CNN_CHANNELS))


def normalise_cifar(batch_uint8_nchw):
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
            xb = normalise_cifar(torch.stack(crops)).contiguous(memory_format=torch.channels_last)
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


def cnn_outputs(model, images, batch_size=500):
    """Pooled features and logits of uint8 (n, 32, 32, 3) images (fp32)."""
    import torch

    feats, logits = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            xb = normalise_cifar(torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size].transpose(0, 3, 1, 2))))
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
    key = os.path.join(CACHE, "cnn_%d_%d_%s" % (len(real_index), seed, cnn_tag(epochs)))
    model = small_cnn()
    if os.path.exists(key + ".pt") and os.path.exists(key + ".json"):
        model.load_state_dict(torch.load(key + ".pt"))
        model.eval()
        record = json.load(open(key + ".json"))
    else:
        all_images, all_labels, _ = cifar_images()
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
    feats, logits = cnn_outputs(model, images)
    num_real = len(real_index)
    record = dict(record, heldout_images=num_real,
                  heldout_accuracy=float((logits[:num_real].argmax(1) == np.asarray(real_labels)).mean()))
    return feats, record


def simclr_views(images, rows, rng, transform):
    """Two augmented views (SimCLR's CIFAR recipe) of each of ``rows``."""
    import torch

    out = []
    for _ in range(2):
        views = []
        for r in rows:
            torch.manual_seed(int(rng.integers(2**31)))
            views.append(transform(torch.from_numpy(np.ascontiguousarray(images[r].transpose(2, 0, 1)))))
        out.append(torch.stack(views))
    return torch.cat(out)


def simclr_cnn_embeddings(images, seed=0, epochs=SIMCLR_EPOCHS, batch_size=SIMCLR_BATCH, log=print):
    """Self-supervised features of uint8 (n, 32, 32, 3) ``images``: the
    :func:`small_cnn` trunk + a projection head (256 -> 256 -> 128) trained
    on the images themselves (no labels) with SimCLR's NT-Xent loss
    (``methods.simclr.nt_xent_loss``, temperature 0.5) and its CIFAR
    augmentations (random resized crop scale 0.2-1, horizontal flip, colour
    jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2); Adam lr 1e-3,
    weight decay 1e-6. Cached under ``CACHE``. Returns features and a record."""
    import contextlib

    import torch
    from torch import nn
    from torchvision.transforms import v2

    from methods.simclr import nt_xent_loss

    torch.set_num_threads(2)
    key = os.path.join(CACHE, "simclr_%d_%d_e%d_b%d" % (len(images), seed, epochs, batch_size))
    torch.manual_seed(seed)
    trunk = small_cnn()[0]
    head = nn.Sequential(nn.Linear(CNN_CHANNELS[-1], CNN_CHANNELS[-1]), nn.ReLU(inplace=True),
                         nn.Linear(CNN_CHANNELS[-1], 128))
    if os.path.exists(key + ".pt") and os.path.exists(key + ".json"):
        trunk.load_state_dict(torch.load(key + ".pt"))
        record = json.load(open(key + ".json"))
    else:
        transform = v2.Compose([
            v2.RandomResizedCrop(32, scale=(0.2, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
        ])
        bf16 = bf16_supported()
        rng = np.random.default_rng(seed)
        model = nn.Sequential(trunk, head).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
        n, history, t_all = len(images), [], time.perf_counter()
        for epoch in range(epochs):
            model.train()
            t0, loss_sum, steps = time.perf_counter(), 0.0, 0
            order = rng.permutation(n)
            for b in range(n // batch_size):  # full batches only (NT-Xent's negatives)
                rows = order[b * batch_size:(b + 1) * batch_size]
                xb = normalise_cifar(simclr_views(images, rows, rng, transform)).contiguous(
                    memory_format=torch.channels_last)
                with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                    z = model(xb)
                loss = nt_xent_loss(z.float(), temperature=0.5)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach())
                steps += 1
            history.append(dict(epoch=epoch + 1, loss=round(loss_sum / steps, 4),
                                seconds=round(time.perf_counter() - t0, 1), bf16=bool(bf16)))
            log("simclr epoch", history[-1])
        record = dict(channels=list(CNN_CHANNELS), epochs=epochs, batch_size=batch_size, seed=seed,
                      images=int(n), threads=torch.get_num_threads(), bf16=bool(bf16),
                      train_seconds=round(time.perf_counter() - t_all, 1), history=history)
        torch.save(trunk.state_dict(), key + ".pt")
        with open(key + ".json", "w") as f:
            json.dump(record, f, indent=2)
    trunk.eval()
    feats = []
    with torch.no_grad():
        for start in range(0, len(images), 500):
            xb = normalise_cifar(torch.from_numpy(np.ascontiguousarray(images[start:start + 500].transpose(0, 3, 1, 2))))
            feats.append(trunk(xb).numpy())
    return np.concatenate(feats), record
