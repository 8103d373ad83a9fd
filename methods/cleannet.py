"""CleanNet: label-noise detection that transfers to unverified classes.

Lee, He, Zhang, Yang, "CleanNet: Transfer Learning for Scalable Image
Classifier Training with Label Noise", CVPR 2018.

CleanNet works on feature vectors. For every class it builds a *reference
set* (k-means centres of the features of the samples carrying that label).
A *class-embedding encoder* turns a reference set into one vector: each
reference feature goes through a small MLP (2 layers, tanh), an attention
layer (``tanh`` projection, scored against a learned context/query vector,
softmax over the set) weighs them, and the class embedding is the weighted
sum. A *query encoder* (2-layer MLP, tanh, dropout) maps a sample's feature
into the same space.
The score of a sample is the cosine similarity between its query embedding
and the class embedding of its (noisy) label: high = label looks right,
low (below the threshold, 0.1 by default) = label likely wrong.

Training uses a few *verified* samples (a human said "label correct" or
"label wrong") in some classes:

- supervised loss on verified samples (paper, eq. 5), with verification
  label ``l`` (1 correct, 0 wrong) and cosine ``s``::

      l * (1 - s) + (1 - l) * w_neg * max(0, s - margin)

- unsupervised term on unverified samples: the class embedding serves as a
  reference and the noisy label is taken as correct when the current
  similarity agrees (pseudo verification label ``1[s >= pseudo_threshold]``),
  the same loss applied with weight ``unsup_weight`` (0.1); plus the
  query-autoencoder reconstruction loss with weight ``recon_weight`` (0.1),
  as in the authors' release. ``pseudo_threshold=-1`` takes every
  unverified label as correct.

Because the encoders are shared by all classes, what is learnt about label
noise in verified classes transfers to classes without any verified sample.

Transfer needs the encoders anchored (defaults ``residual=True``,
``share_encoder=True``, ``weight_decay=0.1``). The wrong verified samples of
a verified class are mostly *images of other classes*, often of the
unverified ones (CIFAR-10N: cat/dog, automobile/truck, deer/horse,
airplane/ship cross a 5/5 split; 62-64% of the wrong verifications are
transfer-class images). Free encoders find the shortcut "images of the
unverified classes are wrong" / "images of the verified classes are right"
(a class-identity direction in the query embedding), which fits the
supervised loss but scores the transfer classes at or below chance. So each
encoder is a residual map of the L2-normalised feature,
``phi(x) = x + W2 tanh(W1 x)`` (the paper's two FC layers as a residual
branch, ``W2`` initialised at zero), so the untrained model is the cosine
between a sample and the attention-weighted mean of its class's reference
set; weight decay pulls the branches back towards that prior; and the query
and reference-set encoders share weights, so a class embedding moves with
the images of its class (a "move all images of class k away" shortcut then
moves class k's embedding too). ``residual=False, share_encoder=False,
weight_decay=1e-4`` gives the paper-literal unanchored tanh encoders.
Held-out verified samples are scored every ``val_interval`` steps and the
checkpoint with the lowest error rate at the threshold is kept.

Defaults follow the paper and the authors' release: ``num_ref=32``, batch
sizes 32 verified + 32 unverified, dropout 0.2, margin 0.1, negative weight
5, threshold 0.1, pseudo-label threshold 0.1, unsupervised and
reconstruction weights 0.1, hidden size 256.
Deviations: the anchoring above (residual encoders in the feature space, so
``embed_dim`` (128) only applies with ``residual=False``; shared query /
reference encoders; weight decay 0.1 instead of 1e-4); Adam (lr 1e-3)
instead of SGD with momentum, 1000 steps with validation every 100 by
default (CPU speed on small data); features are L2-normalised (the
release's ``l2norm`` option) because generic embeddings can be negative;
with separate encoders they start from the same weights (``tie_init``); the
class embeddings are computed once per class present in a batch instead of
once per sample (identical values).
"""

import copy

import numpy as np

from .arrays import choose_device, l2_normalise

__all__ = [
    "DEFAULTS",
    "MODEL_KEYS",
    "error_rate",
    "make_model",
    "reconstruction_loss",
    "reference_sets",
    "score_cleannet",
    "supervised_loss",
    "train_cleannet",
    "unsupervised_loss",
]

UNVERIFIED, WRONG, CORRECT = -1, 0, 1

DEFAULTS = dict(
    num_ref=32,
    embed_dim=128,
    hidden=256,
    attn_dim=64,
    tie_init=True,
    share_encoder=True,
    residual=True,
    dropout=0.2,
    batch_size_sup=32,
    batch_size_unsup=32,
    n_steps=1000,
    val_interval=100,
    val_fraction=0.2,
    lr=1e-3,
    weight_decay=0.1,
    margin=0.1,
    neg_weight=5.0,
    threshold=0.1,
    unsup_weight=0.1,
    recon_weight=0.1,
    pseudo_threshold=0.1,
)

MODEL_KEYS = ("dim", "num_ref", "embed_dim", "hidden", "attn_dim", "dropout", "tie_init", "share_encoder",
              "residual")
# models saved before an option existed were built without it
_MODEL_KEY_FALLBACK = {"residual": False}


def _model_kwargs(config):
    return {k: config[k] if k in config else _MODEL_KEY_FALLBACK[k] for k in MODEL_KEYS}


def reference_sets(embeddings, labels, num_classes=None, num_ref=32, seed=51, niter=20):
    """Per-class reference sets by k-means (faiss) on L2-normalised features.

    Args:
        embeddings: float array (n, d)
        labels: int array (n,) of class indices
        num_classes (None): number of classes (default ``labels.max() + 1``)
        num_ref (32): reference vectors per class (the paper's default); a
            class with at most ``num_ref`` samples uses all of its samples
        seed (51): k-means seed
        niter (20): k-means iterations

    Returns:
        ``(references, mask)``: float32 (C, num_ref, d) and bool (C, num_ref);
        ``mask[c, j]`` is False for padding rows of small classes. A class
        without samples has an all-False mask.
    """
    import faiss

    x = l2_normalise(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    n, d = x.shape
    refs = np.zeros((num_classes, num_ref, d), dtype=np.float32)
    mask = np.zeros((num_classes, num_ref), dtype=bool)
    for c in range(num_classes):
        members = x[labels == c]
        if len(members) == 0:
            continue
        if len(members) <= num_ref:
            refs[c, : len(members)] = members
            mask[c, : len(members)] = True
            continue
        km = faiss.Kmeans(
            d,
            num_ref,
            niter=niter,
            seed=int(seed) + c,
            min_points_per_centroid=1,
            max_points_per_centroid=1 << 20,
            verbose=False,
        )
        km.train(np.ascontiguousarray(members))
        refs[c] = km.centroids
        mask[c] = True
    return refs, mask


def _torch_model_class():
    import torch
    from torch import nn

    class CleanNetModel(nn.Module):
        """Query encoder, reference-set (class) encoder with attention and a
        query decoder for the reconstruction loss."""

        def __init__(self, dim, num_ref=32, embed_dim=128, hidden=256, attn_dim=64,
                     dropout=0.2, tie_init=True, share_encoder=True, residual=True):
            super().__init__()
            self.share_encoder = share_encoder
            self.residual = residual
            if residual:
                # embeddings live in the (L2-normalised) feature space:
                # phi(x) = x + W2 tanh(W1 x); embed_dim is not used
                embed_dim = dim
            self.dropout = nn.Dropout(dropout)
            # query encoder: 2-layer MLP (tanh), dropout after the first layer
            self.query1 = nn.Linear(dim, hidden)
            self.query2 = nn.Linear(hidden, embed_dim)
            # decoder of the query embedding (reconstruction loss)
            self.decode1 = nn.Linear(embed_dim, hidden)
            self.decode2 = nn.Linear(hidden, dim)
            # class-embedding encoder: the same MLP shape on each reference ...
            self.ref1 = nn.Linear(dim, hidden)
            self.ref2 = nn.Linear(hidden, embed_dim)
            # ... attention: projection + learned context (query) vector
            self.attn_proj = nn.Linear(embed_dim, attn_dim)
            self.context = nn.Parameter(torch.empty(attn_dim))
            bound = (6.0 / (attn_dim + 1)) ** 0.5
            nn.init.uniform_(self.context, -bound, bound)
            if residual:
                # the residual branches start at zero: the untrained model is
                # the cosine between a sample and the attention-weighted mean
                # of its class's reference set
                for layer in (self.query2, self.ref2):
                    nn.init.zeros_(layer.weight)
                    nn.init.zeros_(layer.bias)
            if tie_init:
                # both branches start as the same map, so the initial cosine
                # is a (random-projection) prototype similarity; they are
                # separate parameters and diverge in training
                with torch.no_grad():
                    self.ref1.weight.copy_(self.query1.weight)
                    self.ref1.bias.copy_(self.query1.bias)
                    self.ref2.weight.copy_(self.query2.weight)
                    self.ref2.bias.copy_(self.query2.bias)

        def encode_query(self, q):
            """(b, d) features -> (b, embed_dim) query embeddings, (b, d) reconstruction."""
            h = self.dropout(torch.tanh(self.query1(q)))
            phi_q = q + self.query2(h) if self.residual else torch.tanh(self.query2(h))
            recon = torch.tanh(self.decode2(torch.tanh(self.decode1(phi_q))))
            return phi_q, recon

        def encode_class(self, refs, mask):
            """(c, r, d) reference sets + (c, r) mask -> (c, embed_dim), attention (c, r)."""
            first, second = (self.query1, self.query2) if self.share_encoder else (self.ref1, self.ref2)
            h = self.dropout(torch.tanh(first(refs)))
            h = refs + second(h) if self.residual else torch.tanh(second(h))
            u = torch.tanh(self.attn_proj(h))
            logits = (u * self.context).sum(-1)
            logits = logits.masked_fill(~mask, float("-inf"))
            alpha = torch.softmax(logits, dim=1)
            return (alpha.unsqueeze(-1) * h).sum(1), alpha

        def forward(self, q, refs, mask, class_index):
            """Cosine similarity of each query with the class ``class_index[i]``
            (an index into the rows of ``refs``)."""
            phi_q, recon = self.encode_query(q)
            phi_s, _ = self.encode_class(refs, mask)
            cos = torch.nn.functional.cosine_similarity(phi_q, phi_s[class_index], dim=1, eps=1e-8)
            return cos, recon

    return CleanNetModel


def make_model(dim, num_ref=32, embed_dim=128, hidden=256, attn_dim=64, dropout=0.2,
               tie_init=True, share_encoder=True, residual=True):
    """A fresh CleanNet torch module (see module docstring for the layers)."""
    return _torch_model_class()(dim, num_ref, embed_dim, hidden, attn_dim, dropout, tie_init,
                                share_encoder, residual)


def supervised_loss(cos, correct, neg_weight=5.0, margin=0.1):
    """Per-sample loss of the paper: ``l(1-s) + (1-l) w max(0, s - m)``."""
    import torch

    correct = correct.to(cos.dtype)
    return correct * (1.0 - cos) + (1.0 - correct) * neg_weight * torch.clamp(cos - margin, min=0.0)


def unsupervised_loss(cos, neg_weight=5.0, margin=0.1, pseudo_threshold=0.1):
    """Per-sample loss on unverified samples: the supervised loss with the
    label taken as correct where the class embedding agrees
    (pseudo label ``1[s >= pseudo_threshold]``, no gradient through it)."""
    pseudo = (cos.detach() >= pseudo_threshold).to(cos.dtype)
    return supervised_loss(cos, pseudo, neg_weight, margin)


def reconstruction_loss(x, recon):
    """Squared error of the query autoencoder, per sample."""
    return ((x - recon) ** 2).sum(dim=1)


def error_rate(similarity, correct, threshold=0.1):
    """Fraction of verified samples misclassified by ``similarity >= threshold``."""
    similarity = np.asarray(similarity)
    correct = np.asarray(correct, bool)
    if len(correct) == 0:
        return float("nan")
    return float(((similarity >= threshold) != correct).mean())


def _split_verified(verified, val_fraction, rng):
    """Stratified split of verified indices into train / held-out validation."""
    train, val = [], []
    for value in (CORRECT, WRONG):
        idx = np.flatnonzero(verified == value)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def train_cleannet(embeddings, labels, verified, num_classes=None, seed=51, device=None,
                   progress=None, **options):
    """Trains CleanNet and scores every sample.

    Args:
        embeddings: float array (n, d), one feature vector per sample
        labels: int array (n,) of (noisy) class indices
        verified: int array (n,): 1 = label verified correct, 0 = verified
            wrong, -1 = unverified. Needs at least one correct and one wrong
            verification (in any classes); classes without verified samples
            are scored by transfer
        num_classes (None): number of classes (default ``labels.max() + 1``)
        seed (51): seeds k-means, the split, batches, init and dropout
        device (None): torch device, default CUDA when available else CPU
        progress (None): callable ``progress(fraction, message)``
        **options: any key of :data:`DEFAULTS` (num_ref 32, embed_dim 128,
            hidden 256, attn_dim 64, tie_init True, share_encoder True,
            residual True, dropout 0.2, batch_size_sup 32, batch_size_unsup 32, n_steps
            1000, val_interval 100, val_fraction 0.2, lr 1e-3, weight_decay
            0.1, margin 0.1, neg_weight 5, threshold 0.1, unsup_weight 0.1,
            recon_weight 0.1, pseudo_threshold 0.1)

    Returns:
        a dict with
        - ``similarity``: float32 (n,) cosine similarity in [-1, 1]
          (low = label likely wrong)
        - ``state_dict``: weights of the best checkpoint (CPU tensors)
        - ``references``, ``reference_mask``: the reference sets (see
          :func:`reference_sets`)
        - ``config``: the model/loss settings needed by :func:`score_cleannet`
        - ``validation``: held-out figures of the kept checkpoint
          (``error_rate`` at the threshold, ``step``, ``num_train``,
          ``num_val``, ``set`` = ``"held-out"`` or ``"training"`` when there
          were too few verified samples to hold any out, ``history``)
    """
    import torch

    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError("unknown CleanNet option(s): %s" % sorted(unknown))
    opt = dict(DEFAULTS, **options)
    progress = progress or (lambda fraction, message="": None)
    device = choose_device(device)

    x = l2_normalise(embeddings, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    verified = np.asarray(verified, dtype=np.int64)
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    n, dim = x.shape
    n_correct = int((verified == CORRECT).sum())
    n_wrong = int((verified == WRONG).sum())
    if n_correct == 0 or n_wrong == 0:
        raise ValueError(
            "CleanNet needs verified samples of both kinds (label correct and "
            "label wrong); got %d correct and %d wrong" % (n_correct, n_wrong)
        )

    progress(0.02, "k-means reference sets (%d classes)" % num_classes)
    refs_np, mask_np = reference_sets(x, labels, num_classes, opt["num_ref"], seed)

    rng = np.random.default_rng(seed)
    train_idx, val_idx = _split_verified(verified, opt["val_fraction"], rng)
    val_set = "held-out"
    if not ((verified[val_idx] == CORRECT).any() and (verified[val_idx] == WRONG).any()):
        val_idx, val_set = train_idx, "training"
    unverified_idx = np.flatnonzero(verified == UNVERIFIED)

    config = {k: opt[k] for k in opt}
    config.update(dim=int(dim), num_classes=num_classes)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model(**_model_kwargs(config)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=opt["lr"], weight_decay=opt["weight_decay"])
        xt = torch.from_numpy(x).to(device)
        yt = torch.from_numpy(labels).to(device)
        refs = torch.from_numpy(refs_np).to(device)
        mask = torch.from_numpy(mask_np).to(device)
        correct_t = torch.from_numpy((verified == CORRECT).astype(np.float32)).to(device)

        best = None
        history = []
        for step in range(1, opt["n_steps"] + 1):
            model.train()
            sup = rng.choice(train_idx, opt["batch_size_sup"], replace=len(train_idx) < opt["batch_size_sup"])
            if len(unverified_idx) and opt["batch_size_unsup"] > 0:
                unsup = rng.choice(unverified_idx, opt["batch_size_unsup"],
                                   replace=len(unverified_idx) < opt["batch_size_unsup"])
            else:
                unsup = np.zeros(0, dtype=np.int64)
            batch = torch.from_numpy(np.concatenate([sup, unsup])).to(device)
            classes, class_index = torch.unique(yt[batch], return_inverse=True)
            cos, recon = model(xt[batch], refs[classes], mask[classes], class_index)
            ns = len(sup)
            loss_sup = supervised_loss(cos[:ns], correct_t[batch[:ns]], opt["neg_weight"], opt["margin"])
            per_sample = torch.cat([
                loss_sup,
                opt["unsup_weight"] * unsupervised_loss(
                    cos[ns:], opt["neg_weight"], opt["margin"], opt["pseudo_threshold"]),
            ])
            loss = (per_sample + opt["recon_weight"] * reconstruction_loss(xt[batch], recon)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            if step % opt["val_interval"] == 0 or step == opt["n_steps"]:
                val_sim = _similarity(model, xt[val_idx], yt[val_idx], refs, mask)
                val_correct = verified[val_idx] == CORRECT
                err = error_rate(val_sim, val_correct, opt["threshold"])
                val_loss = float(supervised_loss(
                    torch.from_numpy(val_sim), torch.from_numpy(val_correct),
                    opt["neg_weight"], opt["margin"]).mean())
                history.append({"step": step, "error_rate": err, "loss": val_loss})
                if best is None or (err, val_loss) < (best["error_rate"], best["loss"]):
                    best = {"step": step, "error_rate": err, "loss": val_loss,
                            "state": copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})}
                progress(0.05 + 0.85 * step / opt["n_steps"],
                         "step %d/%d, validation error %.3f" % (step, opt["n_steps"], err))

        model.load_state_dict(best["state"])
        progress(0.92, "scoring %d samples" % n)
        similarity = _similarity(model, xt, yt, refs, mask)

    return {
        "similarity": similarity,
        "state_dict": best["state"],
        "references": refs_np,
        "reference_mask": mask_np,
        "config": config,
        "validation": {
            "error_rate": best["error_rate"],
            "loss": best["loss"],
            "step": best["step"],
            "threshold": opt["threshold"],
            "set": val_set,
            "num_train": int(len(train_idx)),
            "num_val": int(len(val_idx)),
            "num_val_correct": int((verified[val_idx] == CORRECT).sum()),
            "num_val_wrong": int((verified[val_idx] == WRONG).sum()),
            "history": history,
        },
    }


def _similarity(model, x, y, refs, mask, batch_size=8192):
    """Eval-mode cosine similarity of each row of ``x`` with its class ``y``."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        phi_s, _ = model.encode_class(refs, mask)
        for start in range(0, len(x), batch_size):
            phi_q, _ = model.encode_query(x[start:start + batch_size])
            cls = phi_s[y[start:start + batch_size]]
            out.append(torch.nn.functional.cosine_similarity(phi_q, cls, dim=1, eps=1e-8).cpu())
    model.train(was_training)
    if not out:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(out).numpy().astype(np.float32)


def score_cleannet(embeddings, labels, state_dict, references, reference_mask, config, device=None):
    """Scores samples with a trained CleanNet, without retraining.

    Args:
        embeddings: float array (n, d); ``d`` must equal ``config["dim"]``
        labels: int array (n,) of class indices into ``references``
        state_dict, references, reference_mask, config: as returned by
            :func:`train_cleannet`
        device (None): torch device, default CUDA when available else CPU

    Returns:
        float32 (n,) cosine similarity in [-1, 1]
    """
    import torch

    x = l2_normalise(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != int(config["dim"]):
        raise ValueError(
            "embeddings have dimension %s but the saved CleanNet model expects %d"
            % (x.shape[1] if x.ndim == 2 else x.shape, int(config["dim"]))
        )
    labels = np.asarray(labels, dtype=np.int64)
    references = np.asarray(references, dtype=np.float32)
    reference_mask = np.asarray(reference_mask, dtype=bool)
    empty = [int(c) for c in np.unique(labels) if not reference_mask[c].any()]
    if empty:
        raise ValueError("classes %s have no reference vectors" % empty)
    device = choose_device(device)
    model = make_model(**_model_kwargs(config))
    model.load_state_dict(state_dict)
    model.to(device)
    return _similarity(
        model,
        torch.from_numpy(x).to(device),
        torch.from_numpy(labels).to(device),
        torch.from_numpy(references).to(device),
        torch.from_numpy(reference_mask).to(device),
    )
