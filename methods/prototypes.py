"""Deep Self-Learning (Han, Luo & Wang, ICCV 2019): the label-correction phase.

The prototype selection and the correction of every label, on feature
arrays; :func:`methods.self_learning.self_learning` runs it once on given
embeddings or after every epoch of :mod:`methods.self_learning_train`.

Label-correction phase (:func:`correct_labels`), per class c:

1. sample m rows whose (noisy) label is c (paper: m = 1280; all if fewer);
2. S = m×m cosine similarity matrix of those rows; S_c = the value at the top
   ``top_fraction`` (40%) of S, i.e. the k-th largest entry of S with
   k = ceil(0.4·m²) (all m² entries, diagonal included);
   ρ_i = Σ_j sign(S_ij − S_c) (j over all m rows, i included; that adds the
   same +1 to every ρ_i);
   η_i = max_{j: ρ_j > ρ_i} S_ij when ρ_i < ρ_max, η_i = min_j S_ij when
   ρ_i = ρ_max (strict ">" exactly as in the paper, so several samples tied at
   ρ_max all take the second form);
   prototypes = the p (8) samples with the largest ρ among those with
   η < 0.95 (see :func:`select_prototypes` for ties and fallbacks);
3. for every sample, the mean similarity to each class's prototypes; ŷ is the
   class with the largest mean.

Confidence of ŷ: the *margin* between the largest and the second-largest
per-class mean cosine similarity, a number in [0, 2] (0 = two classes tie);
it is not a probability.

The paper's defaults: m = 1280 samples per class, p = 8 prototypes,
top_fraction = 0.4, eta_max = 0.95 (``methods.self_learning.PAPER_DEFAULTS``).
"""

import math

import numpy as np

from .arrays import l2_normalise

__all__ = ["correct_labels", "select_prototypes"]


def select_prototypes(features, num_prototypes=8, top_fraction=0.4, eta_max=0.95):
    """Density-based prototype choice among the sampled rows of one class.

    Args:
        features: float array (m, d), the sampled rows of one class (any
            scale: rows are L2-normalised, so S is the cosine similarity)
        num_prototypes (8): p, the paper's default
        top_fraction (0.4): S_c is the k-th largest entry of S with
            k = ceil(top_fraction · m²)
        eta_max (0.95): only rows with η < eta_max can be prototypes

    Returns:
        a dict with
        - ``indices``: int array (≤ p,) of rows of ``features``, best first:
          order by ρ descending, then η ascending, then row index (so ties in
          ρ are broken deterministically, preferring rows far from denser
          ones). If no row has η < eta_max (e.g. a class of identical
          vectors, or a single sample) the single first row of that order is
          used and ``fallback`` is True
        - ``rho``: int array (m,), ``eta``: float array (m,), ``s_c``: float
        - ``fallback``: bool
    """
    x = l2_normalise(np.asarray(features, dtype=np.float32))
    m = len(x)
    if m == 0:
        raise ValueError("select_prototypes needs at least one sample")
    sim = x @ x.T
    sim = np.clip((sim + sim.T) / 2.0, -1.0, 1.0)  # exactly symmetric
    flat = sim.ravel()
    k = max(1, int(math.ceil(top_fraction * flat.size - 1e-9)))
    k = min(k, flat.size)
    s_c = float(np.partition(flat, flat.size - k)[flat.size - k])
    rho = np.sign(sim - s_c).sum(axis=1).astype(np.int64)

    denser = rho[None, :] > rho[:, None]  # denser[i, j]: ρ_j > ρ_i
    eta = np.where(denser, sim, -np.inf).max(axis=1)
    top = rho == rho.max()
    eta[top] = sim[top].min(axis=1)

    order = np.lexsort((np.arange(m), eta, -rho))
    ok = order[eta[order] < eta_max]
    fallback = len(ok) == 0
    chosen = order[:1] if fallback else ok[: int(num_prototypes)]
    return {
        "indices": chosen.astype(np.int64),
        "rho": rho,
        "eta": eta,
        "s_c": s_c,
        "fallback": bool(fallback),
    }


def correct_labels(
    features,
    labels,
    num_classes=None,
    samples_per_class=1280,
    num_prototypes=8,
    top_fraction=0.4,
    eta_max=0.95,
    seed=0,
    rng=None,
    batch_size=65536,
    progress=None,
):
    """One label-correction phase: prototypes per class, then ŷ for all rows.

    Args:
        features: float array (n, d) (embeddings or penultimate features)
        labels: int array (n,) of given (noisy) class indices
        num_classes (None): default ``labels.max() + 1``
        samples_per_class (1280): m, rows sampled per class (all if fewer)
        num_prototypes (8): p prototypes per class
        top_fraction (0.4), eta_max (0.95): see :func:`select_prototypes`
        seed (0): seeds the per-class sampling (ignored when ``rng`` given)
        rng (None): a ``np.random.Generator`` to draw from instead
        batch_size (65536): rows per similarity block (bounds memory)
        progress (None): ``progress(fraction, message)``

    Returns:
        a dict with
        - ``corrected``: int array (n,), ŷ
        - ``confidence``: float32 (n,), best minus second-best mean cosine
          similarity to a class's prototypes, in [0, 2]
        - ``class_similarity``: float32 (n, C), mean similarity to each
          class's prototypes (−inf for a class without samples)
        - ``prototypes``: list of C int arrays, row indices of each class's
          prototypes (empty for a class without samples)
        - ``fallback_classes``: classes where no row had η < eta_max
    """
    x = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError("features must be (n, d) and labels (n,)")
    num_classes = int(num_classes or labels.max() + 1)
    rng = rng if rng is not None else np.random.default_rng(seed)

    prototypes, fallback = [], []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if len(members) > samples_per_class:
            members = np.sort(rng.choice(members, samples_per_class, replace=False))
        if len(members) == 0:
            prototypes.append(np.zeros(0, dtype=np.int64))
            continue
        found = select_prototypes(x[members], num_prototypes, top_fraction, eta_max)
        prototypes.append(members[found["indices"]])
        if found["fallback"]:
            fallback.append(c)
        if progress is not None:
            progress(0.5 * (c + 1) / num_classes, "prototypes of class %d/%d" % (c + 1, num_classes))
    if sum(len(p) > 0 for p in prototypes) < 2:
        raise ValueError("label correction needs samples of at least 2 classes")

    proto_rows = np.concatenate(prototypes)
    proto_class = np.concatenate(
        [np.full(len(p), c, dtype=np.int64) for c, p in enumerate(prototypes)]
    )
    weights = np.zeros((len(proto_rows), num_classes), dtype=np.float32)
    counts = np.bincount(proto_class, minlength=num_classes)
    weights[np.arange(len(proto_rows)), proto_class] = 1.0 / counts[proto_class]
    proto = l2_normalise(x[proto_rows])
    missing = counts == 0

    n = len(x)
    class_sim = np.empty((n, num_classes), dtype=np.float32)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        block = l2_normalise(x[start:stop]) @ proto.T
        class_sim[start:stop] = block @ weights
        if progress is not None:
            progress(0.5 + 0.5 * stop / n, "similarity to prototypes %d/%d" % (stop, n))
    class_sim[:, missing] = -np.inf

    corrected = class_sim.argmax(axis=1)
    top2 = -np.partition(-class_sim, 1, axis=1)[:, :2]
    confidence = (top2[:, 0] - top2[:, 1]).astype(np.float32)
    return {
        "corrected": corrected,
        "confidence": confidence,
        "class_similarity": class_sim,
        "prototypes": prototypes,
        "fallback_classes": fallback,
    }
