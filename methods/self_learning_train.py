"""Iterative mode of Deep Self-Learning (Han, Luo & Wang, ICCV 2019; torch,
imported lazily).

A classifier F = f∘G (an MLP on embeddings, or a CNN on the images) is
trained for ``epochs`` epochs with L = (1 − α)·CE(F(x), y) + α·CE(F(x), ŷ):
α = 0 in the first epoch (no corrected label ŷ yet) and the paper's
α = 0.5 afterwards. After every epoch the label-correction phase
(:func:`methods.prototypes.correct_labels`: m = 1280 samples per class,
p = 8 prototypes, top 40% density threshold, η < 0.95) re-runs on the
current penultimate features G(x) of all samples. Plugin defaults: 10
epochs, Adam lr 1e-3, weight decay 5e-4, batch 256, hidden width 512.

See :func:`methods.self_learning.self_learning` for the public interface.
"""

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .arrays import choose_device
from .prototypes import correct_labels

__all__ = ["train_self_learning"]

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class _MLP(nn.Module):
    """F = f∘G on standardised embeddings; G ends with the last hidden layer."""

    def __init__(self, dim, hidden, num_classes, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.features = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, num_classes)

    def embed(self, x):
        return self.features((x - self.mean) / self.std)

    def forward(self, x):
        return self.head(self.embed(x))


class _CNN(nn.Module):
    """A torchvision backbone (G, pooled penultimate features) plus a head f."""

    def __init__(self, arch, weights, num_classes):
        super().__init__()
        import torchvision

        self.backbone = torchvision.models.get_model(arch, weights=weights)
        if hasattr(self.backbone, "fc"):
            dim = self.backbone.fc.in_features
            self.backbone.fc = nn.Identity()
        else:  # mobilenet / efficientnet style: classifier[-1] is the Linear
            dim = self.backbone.classifier[-1].in_features
            self.backbone.classifier[-1] = nn.Identity()
        self.head = nn.Linear(dim, num_classes)

    def embed(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.embed(x))


def _load_images(paths, size, progress=None):
    from PIL import Image

    mean = np.array(_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(_STD, dtype=np.float32)[:, None, None]
    out = np.empty((len(paths), 3, size, size), dtype=np.float32)
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
        out[i] = (arr.transpose(2, 0, 1).astype(np.float32) / 255.0 - mean) / std
        if progress is not None and i % 500 == 0:
            progress(0.05 * i / len(paths), "loading images %d/%d" % (i, len(paths)))
    return torch.from_numpy(out)


def _features_and_logits(net, inputs, device, batch_size):
    net.eval()
    feats, logits = [], []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            g = net.embed(inputs[start : start + batch_size].to(device))
            feats.append(g.float().cpu())
            logits.append(net.head(g).float().cpu())
    return torch.cat(feats).numpy(), torch.cat(logits)


def train_self_learning(
    features,
    labels,
    model,
    image_paths,
    epochs,
    alpha,
    hidden_dim,
    lr,
    weight_decay,
    batch_size,
    cnn_arch,
    cnn_weights,
    image_size,
    correction,
    seed,
    device,
    progress,
):
    num_classes = correction["num_classes"]
    device = choose_device(device)
    epochs = int(epochs)
    if epochs < 1:
        raise ValueError("epochs must be >= 1, got %d" % epochs)

    def report(fraction, message):
        if progress is not None:
            progress(fraction, message)

    if model == "mlp":
        if features is None:
            raise ValueError("model='mlp' needs features (embeddings)")
        inputs = torch.as_tensor(np.asarray(features, dtype=np.float32))
    elif model == "cnn":
        if image_paths is None:
            raise ValueError("model='cnn' needs image_paths")
        inputs = _load_images(list(image_paths), int(image_size), progress)
    else:
        raise ValueError("model must be 'mlp' or 'cnn', got %r" % (model,))
    n = len(inputs)
    if n != len(labels):
        raise ValueError("inputs and labels have different lengths")
    y = torch.as_tensor(labels, dtype=torch.long)
    rng = np.random.default_rng(seed)
    devices = [device.index or 0] if device.type == "cuda" else []

    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if model == "mlp":
            mean = inputs.mean(0)
            std = inputs.std(0).clamp_min(1e-6)
            net = _MLP(inputs.shape[1], int(hidden_dim), num_classes, mean, std)
        else:
            net = _CNN(cnn_arch, cnn_weights, num_classes)
        net = net.to(device)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(int(seed))
        corrected = None
        history = []
        result = None
        for epoch in range(epochs):
            a = 0.0 if epoch == 0 else float(alpha)
            y_hat = y if corrected is None else torch.as_tensor(corrected, dtype=torch.long)
            net.train()
            order = torch.randperm(n, generator=gen)
            total, seen = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                if len(idx) < 2 and n >= 2:  # BatchNorm needs > 1 row
                    continue
                xb = inputs[idx]
                if model == "cnn":
                    flip = torch.rand(len(idx), generator=gen) < 0.5
                    xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
                xb = xb.to(device)
                logits = net(xb)
                loss = (1 - a) * F.cross_entropy(logits, y[idx].to(device))
                if a > 0:
                    loss = loss + a * F.cross_entropy(logits, y_hat[idx].to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            report(0.05 + 0.9 * (epoch + 0.7) / epochs, "epoch %d/%d: correcting labels" % (epoch + 1, epochs))
            feats, logits = _features_and_logits(net, inputs, device, max(batch_size, 1024))
            result = correct_labels(feats, labels, rng=rng, **correction)
            corrected = result["corrected"]
            pred = logits.argmax(1).numpy()
            history.append(
                {
                    "epoch": epoch + 1,
                    "alpha": a,
                    "loss": total / max(seen, 1),
                    "changed_fraction": float((corrected != labels).mean()),
                    "prediction_agrees_with_label": float((pred == labels).mean()),
                }
            )
            report(0.05 + 0.9 * (epoch + 1) / epochs, "epoch %d/%d done" % (epoch + 1, epochs))

    probs = torch.softmax(logits, dim=1)
    conf, pred = probs.max(dim=1)
    result = dict(result)
    result["prediction"] = pred.numpy()
    result["prediction_confidence"] = conf.numpy().astype(np.float32)
    result["history"] = history
    return result
