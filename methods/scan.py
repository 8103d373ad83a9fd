"""SCAN: learning to classify images without labels (Van Gansbeke et al., ECCV 2020).

Three steps, on plain arrays:

1. **Pretext features**: any embeddings (one vector per image), or
   :func:`methods.simclr.simclr_features`, a SimCLR instance-discrimination training
   (NT-Xent loss over two augmented views of every image) of a torchvision
   backbone on the dataset's own images.
2. **Mining**: the K nearest neighbours of every sample (cosine, faiss),
   :func:`mine_neighbours`.
3. **Clustering step** (:func:`scan`): clustering heads trained with the SCAN
   loss (:func:`scan_loss`): the consistency term ``-log <p_i, p_j>`` over
   pairs of a sample and one of its mined neighbours, minus ``entropy_weight``
   (lambda = 5) times the entropy of the mean prediction of the batch, which
   keeps every cluster in use. Several heads are trained at once and the one
   with the lowest loss is kept.
4. **Self-labeling** (in :func:`scan`): the kept head is fine-tuned with a
   cross-entropy on its own confident predictions (``p_max > 0.99``),
   weighted against cluster imbalance, computed on strongly augmented inputs,
   until the confident set stops growing.

Deviation from the paper (documented in ``docs/scan.md``): the paper updates
the whole backbone in steps 3 and 4, with RandAugment image augmentations.
Here the pretext features are **frozen** and the trainable part is a small
projection (``Linear + BatchNorm + ReLU``, ``hidden_dim``; 0 = linear heads
directly on the features) shared by the heads. Image augmentations are
replaced by feature-space augmentation: random feature dropout plus Gaussian
noise (weak in the clustering step, stronger in self-labeling). That keeps
the method fast on CPU (50,000 precomputed embeddings in a few minutes).

:func:`hungarian_match` maps clusters to classes (Hungarian matching, then
many-to-one majority for extra clusters when over-clustering) and
:func:`cluster_metrics` computes ACC, NMI and ARI.

No FiftyOne import here; torch, faiss, scipy and sklearn are imported inside
the functions.
"""

import numpy as np

from .arrays import choose_device, l2_normalise, zscore
from .simclr import nt_xent_loss, simclr_features

__all__ = [
    "class_probabilities",
    "cluster_metrics",
    "hungarian_match",
    "kmeans_clusters",
    "mine_neighbours",
    "nt_xent_loss",
    "scan",
    "scan_loss",
    "simclr_features",
]

_EPS = 1e-8


# --------------------------------------------------------------------------
# loss, neighbours, matching, metrics
# --------------------------------------------------------------------------


def scan_loss(anchor_logits, neighbour_logits, entropy_weight=5.0):
    """The SCAN loss of a batch.

    Args:
        anchor_logits: torch tensor (b, c), logits of the samples
        neighbour_logits: torch tensor (b, c), logits of one mined neighbour of
            each sample (row-aligned)
        entropy_weight (5.0): lambda, weight of the entropy term (paper: 5)

    Returns:
        ``(total, consistency, entropy)`` scalar tensors where
        ``consistency = -mean_i log <p_i, p_j(i)>``,
        ``entropy = -sum_c pbar_c log pbar_c`` with ``pbar`` the mean of the
        anchors' softmax, and ``total = consistency - entropy_weight * entropy``
    """
    import torch

    p_anchor = torch.softmax(anchor_logits, dim=1)
    p_neighbour = torch.softmax(neighbour_logits, dim=1)
    similarity = (p_anchor * p_neighbour).sum(dim=1)
    consistency = -torch.log(similarity.clamp_min(_EPS)).mean()
    mean_p = p_anchor.mean(dim=0)
    entropy = -(mean_p * torch.log(mean_p.clamp_min(_EPS))).sum()
    return consistency - entropy_weight * entropy, consistency, entropy


def mine_neighbours(features, k=20, batch_size=16384, exact=None):
    """The ``k`` nearest neighbours of every row (cosine, self excluded).

    Args:
        features: float array (n, d)
        k (20): neighbours per sample (paper default 20; clipped to n - 1)
        batch_size (16384): query rows per faiss search
        exact (None): see :func:`methods.neighbours.cosine_neighbours` (exact
            search up to 100,000 rows, an IVF index above)

    Returns:
        int64 array (n, k) of row indices, nearest first
    """
    from .neighbours import cosine_neighbours

    return cosine_neighbours(features, k, batch_size, exact=exact)


def hungarian_match(clusters, labels, num_clusters=None, num_classes=None):
    """Maps clusters to classes.

    The Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) finds
    the one-to-one assignment with the most samples on the diagonal. When
    there are more clusters than classes (over-clustering), clusters left
    unmatched are mapped to the majority class of their members (a cluster
    with no labeled member gets -1).

    Args:
        clusters: int array (n,) of cluster indices
        labels: int array (n,) of class indices (same samples)
        num_clusters, num_classes: sizes (default: from the data)

    Returns:
        int array (num_clusters,): the class of each cluster (-1 = none)
    """
    from scipy.optimize import linear_sum_assignment

    clusters = np.asarray(clusters, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    num_clusters = int(num_clusters or (clusters.max() + 1 if len(clusters) else 0))
    num_classes = int(num_classes or (labels.max() + 1 if len(labels) else 0))
    counts = np.zeros((num_clusters, num_classes), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(-counts)
    mapping = np.full(num_clusters, -1, dtype=np.int64)
    mapping[rows] = cols
    for c in np.flatnonzero(mapping < 0):
        if counts[c].sum() > 0:
            mapping[c] = int(counts[c].argmax())
    return mapping


def class_probabilities(probs, mapping, num_classes):
    """Class probabilities from cluster probabilities and a cluster -> class map.

    Args:
        probs: float array (n, num_clusters)
        mapping: int array (num_clusters,) from :func:`hungarian_match`
            (-1 = cluster without a class, its mass is dropped)
        num_classes: number of classes

    Returns:
        float64 array (n, num_classes): ``P(class c) = sum of p_k`` over the
        clusters k mapped to c
    """
    out = np.zeros((len(probs), int(num_classes)), dtype=np.float64)
    for cluster, cls in enumerate(mapping):
        if cls >= 0:
            out[:, cls] += probs[:, cluster]
    return out


def cluster_metrics(labels, clusters, mapping=None):
    """Clustering accuracy (after matching), NMI and ARI.

    Args:
        labels: int array (n,) of class indices
        clusters: int array (n,) of cluster indices
        mapping (None): cluster -> class from :func:`hungarian_match`
            (computed when None)

    Returns:
        dict ``acc``, ``nmi``, ``ari`` (floats)
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels, dtype=np.int64)
    clusters = np.asarray(clusters, dtype=np.int64)
    if mapping is None:
        mapping = hungarian_match(clusters, labels)
    return {
        "acc": float((mapping[clusters] == labels).mean()),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }


def kmeans_clusters(features, num_clusters, seed=51, niter=50, nredo=3):
    """k-means baseline (faiss, cosine: rows L2-normalised). Returns int (n,)."""
    import faiss

    x = np.ascontiguousarray(features, dtype=np.float32).copy()
    faiss.normalize_L2(x)
    km = faiss.Kmeans(x.shape[1], int(num_clusters), niter=niter, nredo=nredo,
                      seed=int(seed), verbose=False)
    km.train(x)
    _, assigned = km.index.search(x, 1)
    return assigned.ravel().astype(np.int64)


# --------------------------------------------------------------------------
# clustering step + self-labeling
# --------------------------------------------------------------------------


def scan(
    features,
    num_clusters=10,
    k=20,
    num_heads=10,
    entropy_weight=5.0,
    epochs=10,
    batch_size=256,
    lr=1e-3,
    weight_decay=1e-4,
    hidden_dim=128,
    dropout=0.1,
    noise=0.05,
    self_label=True,
    confidence_threshold=0.99,
    self_label_epochs=10,
    strong_dropout=0.3,
    strong_noise=0.15,
    patience=3,
    min_growth=0.002,
    min_steps=200,
    max_steps=5000,
    neighbours=None,
    seed=51,
    device=None,
    progress=None,
):
    """SCAN clustering (clustering step + self-labeling) of feature vectors.

    Args:
        features: float array (n, d) of pretext features (frozen; rows are
            L2-normalised then standardised per dimension internally)
        num_clusters (10): clusters per head (may exceed the number of
            classes: over-clustering)
        k (20): mined neighbours per sample (paper: 20)
        num_heads (10): clustering heads trained at once (paper: 10); the
            one with the lowest SCAN loss on the whole set is kept
        entropy_weight (5.0): lambda of the entropy term (paper: 5)
        epochs (10): clustering-step epochs (paper: 100 on images with a
            trainable backbone; frozen features converge faster)
        batch_size (256): samples per step (paper: 128); the entropy term is
            estimated per batch, so it must be well above ``num_clusters``
        lr (1e-3), weight_decay (1e-4): Adam (paper: lr 1e-4 for a full
            backbone; the small head here trains faster with 1e-3)
        hidden_dim (128): width of the trainable projection shared by the
            heads (0 = linear heads on the features)
        dropout (0.1), noise (0.05): feature-space augmentation of both
            samples and neighbours in the clustering step (feature dropout
            rate, Gaussian noise std in units of the per-dimension std)
        self_label (True): run the self-labeling step
        confidence_threshold (0.99): p_max above which a prediction is a
            pseudo-label (paper: 0.99)
        self_label_epochs (10): maximum self-labeling epochs
        strong_dropout (0.3), strong_noise (0.15): the "strong" augmentation
            of self-labeling (the paper uses RandAugment on images)
        patience (3), min_growth (0.002): self-labeling stops when the
            confident set has not grown by more than ``min_growth * n``
            samples for ``patience`` epochs; the weights at the largest
            confident set are kept
        min_steps (200): small datasets get more epochs so that the
            clustering step makes at least this many optimizer steps
        max_steps (5000): large datasets get fewer passes: the clustering
            step makes at most this many optimizer steps (the last pass may
            be partial) and each self-labeling epoch at most
            ``max_steps / self_label_epochs``. With the defaults only sets
            above 128,000 samples are affected (128,000 / 256 = 500 steps
            a pass, x 10 epochs = 5,000); a small head on frozen features converges in far fewer
            steps than the paper's 100 epochs of a whole backbone
            (``docs/scan.md``: CIFAR-10N quality by step budget)
        neighbours (None): precomputed (n, k) neighbour indices
        seed (51): all randomness (init, batches, augmentation)
        device (None): torch device; default CUDA when available
        progress (None): ``callable(fraction, message)``

    Returns:
        dict with
        - ``cluster``: int array (n,), final cluster of each sample
        - ``confidence``: float array (n,), its max probability
        - ``probs``: float32 (n, num_clusters) final probabilities
        - ``cluster_before_self_label``, ``confidence_before_self_label``,
          ``probs_before_self_label``: after the clustering step only
        - ``best_head``, ``head_losses`` (per head: total, consistency,
          entropy on the whole set)
        - ``confident_counts``: confident-set size before each
          self-labeling epoch and after the last one
        - ``clustering_epochs_run`` (passes, the last maybe partial),
          ``clustering_steps_run``, ``self_label_epochs_run``,
          ``neighbours`` (n, k)
    """
    import torch

    report = progress or (lambda fraction, message="": None)
    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n < 2:
        raise ValueError("SCAN needs at least 2 samples, got %d" % n)
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or inf")
    num_clusters = int(num_clusters)
    if num_clusters < 2:
        raise ValueError("num_clusters must be >= 2, got %d" % num_clusters)

    report(0.0, "mining %d nearest neighbours" % k)
    if neighbours is None:
        neighbours = mine_neighbours(x, k)
    neighbours = np.asarray(neighbours, dtype=np.int64)
    report(0.1, "clustering step")

    device = choose_device(device)
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(int(seed))
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        feats = torch.from_numpy(zscore(l2_normalise(x, eps=_EPS)).astype(np.float32)).to(device)
        nbrs = torch.from_numpy(neighbours).to(device)
        model = _make_model(feats.shape[1], hidden_dim, num_clusters, num_heads).to(device)
        batch_size = int(min(batch_size, n))

        def augment(v, drop, sigma):
            if drop > 0:
                keep = (torch.rand(v.shape, generator=gen) >= drop).to(device)
                v = v * keep / (1.0 - drop)
            if sigma > 0:
                v = v + sigma * torch.randn(v.shape, generator=gen).to(device)
            return v

        # ---- clustering step
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps = max(n // batch_size, 1)
        epochs = max(int(epochs), -(-int(min_steps) // steps))
        total_steps = min(epochs * steps, max(int(max_steps), int(min_steps)))
        epochs = -(-total_steps // steps)
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(n, generator=gen).to(device)
            pick = torch.randint(0, nbrs.shape[1], (n,), generator=gen).to(device)
            for s in range(min(steps, total_steps - epoch * steps)):
                rows = order[s * batch_size:(s + 1) * batch_size]
                partners = nbrs[rows, pick[rows]]
                both = torch.cat([feats[rows], feats[partners]])
                both = augment(both, dropout, noise)
                logits = model(both)
                loss = 0.0
                for head_logits in logits:
                    total, _, _ = scan_loss(
                        head_logits[: len(rows)], head_logits[len(rows):], entropy_weight
                    )
                    loss = loss + total
                opt.zero_grad()
                loss.backward()
                opt.step()
            report(0.1 + 0.6 * (epoch + 1) / max(epochs, 1),
                   "clustering step: epoch %d/%d" % (epoch + 1, epochs))

        # ---- pick the head with the lowest loss over the whole set
        probs_all = _predict(model, feats, batch_size=4096)  # list per head
        head_losses = []
        nbrs_cpu = torch.from_numpy(neighbours)
        for p in probs_all:
            p_t = torch.from_numpy(p)
            log_sim = 0.0  # by row chunks: (n, k, c) at once is 0.8 GB per head at 1M
            for start in range(0, n, 65536):
                nb_p = p_t[nbrs_cpu[start:start + 65536]]  # (rows, k, c)
                sim = (p_t[start:start + 65536, None, :] * nb_p).sum(-1).clamp_min(_EPS)
                log_sim += float(torch.log(sim).double().sum())
            consistency = -log_sim / neighbours.size
            mean_p = p_t.mean(0)
            entropy = float(-(mean_p * torch.log(mean_p.clamp_min(_EPS))).sum())
            head_losses.append(
                {"total": consistency - entropy_weight * entropy,
                 "consistency": consistency, "entropy": entropy}
            )
        best = int(np.argmin([h["total"] for h in head_losses]))
        before = probs_all[best]
        result = {
            "best_head": best,
            "clustering_epochs_run": epochs,
            "clustering_steps_run": total_steps,
            "head_losses": head_losses,
            "probs_before_self_label": before,
            "cluster_before_self_label": before.argmax(1).astype(np.int64),
            "confidence_before_self_label": before.max(1).astype(np.float32),
            "neighbours": neighbours,
        }

        # ---- self-labeling
        final = before
        counts = [int((before.max(1) > confidence_threshold).sum())]
        epochs_run = 0
        if self_label and counts[0] > 0 and int(self_label_epochs) > 0:
            model.keep_head(best)
            report(0.7, "self-labeling (%d confident samples)" % counts[0])
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
            best_count, best_state, stale = counts[0], _copy_state(model), 0
            # BatchNorm statistics stay those of the clustering step (eval
            # mode): re-estimating them on strongly augmented batches shifts
            # every prediction and shrinks the confident set
            model.eval()
            round_steps = min(steps, max(int(max_steps) // int(self_label_epochs), 1))
            for epoch in range(int(self_label_epochs)):
                order = torch.randperm(n, generator=gen).to(device)
                for s in range(round_steps):
                    rows = order[s * batch_size:(s + 1) * batch_size]
                    with torch.no_grad():
                        weak = torch.softmax(model(feats[rows])[0], dim=1)
                    conf, target = weak.max(1)
                    mask = conf > confidence_threshold
                    if not bool(mask.any()):
                        continue
                    strong = model(augment(feats[rows][mask], strong_dropout, strong_noise))[0]
                    target = target[mask]
                    present, inverse, freq = torch.unique(
                        target, return_inverse=True, return_counts=True
                    )
                    weight = torch.zeros(num_clusters, device=device)
                    weight[present] = float(len(target)) / freq.float()
                    loss = torch.nn.functional.cross_entropy(strong, target, weight=weight)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                epochs_run += 1
                probs = _predict(model, feats, batch_size=4096)[0]
                count = int((probs.max(1) > confidence_threshold).sum())
                counts.append(count)
                report(0.7 + 0.28 * (epoch + 1) / int(self_label_epochs),
                       "self-labeling: epoch %d, %d confident" % (epoch + 1, count))
                if count > best_count + min_growth * n:
                    best_count, best_state, stale = count, _copy_state(model), 0
                else:
                    if count > best_count:
                        best_count, best_state = count, _copy_state(model)
                    stale += 1
                    if stale >= patience:
                        break
            model.load_state_dict(best_state)
            final = _predict(model, feats, batch_size=4096)[0]

    result.update(
        probs=final.astype(np.float32),
        cluster=final.argmax(1).astype(np.int64),
        confidence=final.max(1).astype(np.float32),
        confident_counts=counts,
        self_label_epochs_run=epochs_run,
    )
    report(1.0, "done")
    return result


def _make_model(in_dim, hidden_dim, num_clusters, num_heads):
    from torch import nn

    class ClusteringHeads(nn.Module):
        """Shared projection (optional) + ``num_heads`` linear heads."""

        def __init__(self):
            super().__init__()
            if hidden_dim and hidden_dim > 0:
                self.body = nn.Sequential(
                    nn.Linear(in_dim, hidden_dim),
                    nn.BatchNorm1d(hidden_dim),
                    nn.ReLU(),
                )
                width = hidden_dim
            else:
                self.body = nn.Identity()
                width = in_dim
            self.heads = nn.ModuleList(
                nn.Linear(width, num_clusters) for _ in range(num_heads)
            )

        def forward(self, v):
            h = self.body(v)
            return [head(h) for head in self.heads]

        def keep_head(self, index):
            self.heads = nn.ModuleList([self.heads[index]])

    return ClusteringHeads()


def _predict(model, feats, batch_size=4096):
    import torch

    model.eval()
    out = None
    with torch.no_grad():
        for start in range(0, len(feats), batch_size):
            logits = model(feats[start:start + batch_size])
            probs = [torch.softmax(l, dim=1).cpu().numpy() for l in logits]
            if out is None:
                out = [[] for _ in probs]
            for acc, p in zip(out, probs):
                acc.append(p)
    return [np.concatenate(p).astype(np.float32) for p in out]


def _copy_state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
