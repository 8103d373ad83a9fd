"""SimCLR pretext features (Chen et al., ICML 2020), step 1 of SCAN.

Instance discrimination on the dataset's own images: every image gets two
random views (random resized crop with scale (0.2, 1), horizontal flip,
colour jitter 0.4/0.4/0.4/0.1 with p = 0.8, grayscale with p = 0.2); a
torchvision backbone plus a 2-layer projection head (``dim -> dim -> 128``)
is trained with the NT-Xent loss (:func:`nt_xent_loss`): each view must pick
its partner among the other ``2b - 1`` views of the batch by cosine
similarity / temperature. The features returned are the backbone's pooled
output on the un-augmented images; the head is thrown away.

Defaults (:func:`simclr_features`): temperature 0.5 (SimCLR's CIFAR
setting), projection 128, Adam (lr 1e-3, weight decay 1e-6), batch 64, 10
epochs, 64-pixel images, a randomly initialised backbone (the paper's
setting; ImageNet weights or a local state_dict can start it instead). The
paper trains for hundreds of epochs with large batches on a GPU; these
defaults are sized for small datasets on a CPU.

:func:`methods.scan.scan` clusters these (or any other) features. No
FiftyOne import here; torch, torchvision and PIL are imported inside the
functions.
"""

import numpy as np

from .arrays import choose_device

__all__ = ["nt_xent_loss", "simclr_features"]


def simclr_features(
    paths,
    backbone="resnet18",
    weights=None,
    epochs=10,
    batch_size=64,
    image_size=64,
    temperature=0.5,
    lr=1e-3,
    weight_decay=1e-6,
    projection_dim=128,
    seed=51,
    device=None,
    progress=None,
):
    """SimCLR instance discrimination on the images, returns their features.

    Every image gets two random views (random resized crop, horizontal flip,
    colour jitter, random grayscale); a backbone + 2-layer projection head is
    trained with the NT-Xent loss (each view must pick its partner among the
    other ``2 * batch - 2`` views). Features are then the backbone's pooled
    output on the un-augmented (resized) images.

    CPU-feasible for small datasets only (hundreds to a few thousand images
    at ``image_size`` 32-64); for large datasets run it on a GPU.

    Args:
        paths: image file paths
        backbone ("resnet18"): a name of ``methods.embeddings.BACKBONES``
        weights (None): None = random init (the paper's setting), "DEFAULT"
            = torchvision ImageNet weights as a starting point (internet
            once), or a path to a local state_dict
        epochs (10), batch_size (64), lr (1e-3, Adam), weight_decay (1e-6)
        image_size (64): images are resized to this square size
        temperature (0.5): NT-Xent temperature (SimCLR CIFAR setting)
        projection_dim (128): output size of the projection head
        seed (51), device (None), progress (None): as in :func:`scan`

    Returns:
        ``(features, failed, losses)``: float32 (n, d) features with NaN rows
        for unreadable images, a list of ``(index, error message)``, and
        the mean loss of every epoch
    """
    import torch
    from torch import nn
    from PIL import Image
    import torchvision.transforms as T

    from .embeddings import load_backbone

    report = progress or (lambda fraction, message="": None)
    device = choose_device(device)
    size = int(image_size)

    images, rows, failed = [], [], []
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                images.append(img.convert("RGB").resize((size, size), Image.BILINEAR))
            rows.append(i)
        except Exception as e:  # unreadable/corrupt/missing file
            failed.append((i, "%s: %s" % (type(e).__name__, e)))
    n = len(images)
    if n < 2:
        raise ValueError("SimCLR needs at least 2 readable images, got %d" % n)

    normalize = T.Compose([
        T.ToTensor(),
        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    augment = T.Compose([
        T.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ])
    losses = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        gen = torch.Generator().manual_seed(int(seed))
        model, _, device = load_backbone(backbone, weights or None, device)
        with torch.no_grad():
            dim = model(normalize(images[0])[None].to(device)).shape[1]
        head = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, int(projection_dim))
        ).to(device)
        params = list(model.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        batch_size = int(max(2, min(batch_size, n)))
        steps = max(n // batch_size, 1)
        for epoch in range(int(epochs)):
            model.train()
            head.train()
            order = torch.randperm(n, generator=gen).tolist()
            total = 0.0
            for s in range(steps):
                idx = order[s * batch_size:(s + 1) * batch_size]
                if len(idx) < 2:
                    continue
                v1 = torch.stack([normalize(augment(images[i])) for i in idx])
                v2 = torch.stack([normalize(augment(images[i])) for i in idx])
                z = head(model(torch.cat([v1, v2]).to(device)))
                loss = nt_xent_loss(z, temperature)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item()
                report((epoch + (s + 1) / steps) / (int(epochs) + 0.2),
                       "SimCLR epoch %d/%d" % (epoch + 1, epochs))
            losses.append(total / steps)

        model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, n, 256):
                batch = torch.stack([normalize(im) for im in images[start:start + 256]])
                out.append(model(batch.to(device)).float().cpu().numpy())
    features = np.full((len(paths), dim), np.nan, dtype=np.float32)
    features[rows] = np.concatenate(out)
    report(1.0, "SimCLR features done")
    return features, failed, losses


def nt_xent_loss(z, temperature=0.5):
    """NT-Xent (normalized temperature-scaled cross-entropy) of SimCLR.

    Args:
        z: torch tensor (2b, d): rows ``i`` and ``i + b`` are two views of
            the same image
        temperature (0.5)

    Returns:
        scalar tensor: mean over the 2b views of the cross-entropy of picking
        the partner view among the other 2b - 1 views (cosine similarity /
        temperature)
    """
    import torch

    z = torch.nn.functional.normalize(z, dim=1)
    two_b = z.shape[0]
    b = two_b // 2
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(two_b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, two_b), torch.arange(0, b)]).to(z.device)
    return torch.nn.functional.cross_entropy(sim, target)
