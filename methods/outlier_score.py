"""Outlier score: how far an image is from *every* class of the dataset.

Some flagged images have no right class at all: a photo of something the
label set does not cover, a blank frame, a box around background. cleanlab's
Datalab reports them as ``outlier`` issues from the average distance to the
k nearest neighbours. A plain kNN distance misses outliers that come in
groups (a batch of images from another source are each other's nearest
neighbours), so here the question is asked of each *class* instead:

1. **Space.** The embeddings are centred and projected on their first
   ``dims`` principal axes (default 64), so that the covariance below is
   well estimated; in the *cosine* geometry each embedding is first scaled
   to unit length (only its direction counts), in the *euclidean* one it is
   taken as given. Both are scored (see "Two geometries" below).
2. **Class models.** Each class ``c`` (by the given labels) is a Gaussian
   with its own mean and the pooled within-class covariance (linear
   discriminant analysis' model), shrunk towards a multiple of the identity
   (Ledoit-Wolf). The fit is made robust to the very samples we look for:
   a first fit on all samples, then the ``trim`` share (default 10%) of
   each class farthest from its mean is left out and the model refitted
   (one concentration step of the minimum covariance determinant).
3. **Distance to each class, relative to the data as a whole** (the
   relative Mahalanobis distance of Ren et al., "A simple fix to
   Mahalanobis distance for improving near-OOD detection", 2021):
   ``r_c(x) = d_c(x) - d_0(x)``, with ``d_c`` the Mahalanobis distance of
   ``x`` to class ``c`` and ``d_0`` its distance to one background
   Gaussian fitted to all the samples (Ledoit-Wolf). Directions along
   which every class varies alike (lighting, background, the axes that
   make *all* images differ) count in both terms and cancel; what remains
   is how much farther from class ``c`` the image is than its place in the
   whole data explains. The paper subtracts *squared* distances; here the
   distances themselves, whose difference has a lighter upper tail, so the
   fixed cut below holds its false-alarm rate better (measured on the
   four planted sets of the benchmark, AUROC within 0.001: 0.7-2.9% of
   the real images past 3 with squared distances, 0.2-1.6% without).
4. **In units of the class's own spread**: ``z_c(x) = (r_c(x) - median_c) /
   s_c`` over the class's own samples, ``s_c`` the upper semi-interquartile
   range ``(Q3_c - median_c) / 0.6745`` (Kimber's scale for skewed data:
   the upper tail is what is tested, and ``r_c`` is right-skewed; for a
   normal it equals the standard deviation; with the median absolute
   deviation instead, 0.3-2.3% of the real images pass 3 where this
   gives 0.2-1.6%). Robust: a few outliers labelled ``c`` do not move
   it. 0 = as typical as the class's median sample.
5. **Score** of one geometry: ``z(x) = min_c z_c(x)``, the distance to the
   *nearest* class in those units. A mislabeled image is close to its true
   class, so it scores low; only an image far from every class scores high.
6. **Both geometries** (``metric="both"``, the default): ``z_max`` = the
   larger of the cosine and the Euclidean ``z``; as two tests are made, it
   is put back on the scale of one with Sidak's correction: ``p = 1 - (1 -
   q)^2`` with ``q`` the normal upper tail of ``z_max``, and
   ``outlier_score = Phi^-1(1 - p)``. So ``outlier_score > 3`` keeps the
   false-alarm rate of a single test (0.13% under the normal model; Sidak
   is conservative when the two tests agree, as they mostly do).

**Outlier or not.** :data:`Z_OUTLIER` (3.0): under a normal model of
``r_c``, a sample is that far beyond its nearest class's median with
probability 0.13%. Images of the dataset's own classes rarely pass it;
measured false positive rates and the AUROC on planted outliers are in
BENCHMARKS.md (``benchmarks/bench_issue_types.py``).

**Two geometries.** Which one tells an image of no class from the classes
depends on the network. In a *supervised* network's features the angle
carries the class and the length mostly how strongly the network responds:
images unlike its training data get short vectors, which sit near the
middle of the classes in Euclidean geometry and look typical; OOD detection
on such features normalises them first (Sun et al., "Out-of-distribution
detection with deep nearest neighbors", ICML 2022), and cleanlab's Datalab
measures outlier distances with the cosine metric. In other features (a
self-supervised network's, a random network's) the length is the signal.
Measured (``bench_issue_types.py``, BENCHMARKS.md; AUROC of 200 Fashion-MNIST
images planted among 10,000 CIFAR-10 images): a small CNN trained with
labels, cosine 0.998 vs Euclidean 0.797; the same CNN trained
self-supervised (SimCLR), 0.990 vs 0.999; a random-weight resnet18, 0.135
vs 0.957; both combined, 0.998, 0.997, 0.936. On ImageNet MobileNetV2
features with one CIFAR-10 class left out of the label set (near
out-of-distribution), 0.719 / 0.709 / 0.718 (0.596 without step 3).
No statistic of the data picked the right geometry reliably
(the held-out accuracy of the class model differed by < 2 points), so both
are asked and combined; ``metric="cosine"`` or ``"euclidean"`` runs one.

No FiftyOne here; sklearn's Ledoit-Wolf shrinkage is imported inside.
"""

import numpy as np

from .arrays import l2_normalise

__all__ = ["DIMS", "METRICS", "QUARTILE_TO_SIGMA", "TRIM", "Z_OUTLIER", "outlier_score", "sidak_combined"]

#: outlier_score above which a sample is an outlier (robust z units)
Z_OUTLIER = 3.0
#: principal axes kept
DIMS = 64
#: share of each class left out of the refit
TRIM = 0.1
#: the upper quartile of a standard normal (its semi-interquartile range)
QUARTILE_TO_SIGMA = 0.6745
#: geometries: "both" (the default: cosine and euclidean, Sidak-combined),
#: "cosine" (unit-length embeddings) or "euclidean" (as given)
METRICS = ("both", "cosine", "euclidean")


def outlier_score(embeddings, labels, num_classes=None, dims=DIMS, trim=TRIM, metric="both"):
    """Distance to the nearest class, in robust standard deviations.

    Args:
        embeddings: float (n, d)
        labels: int (n,) given class indices (-1: no label; scored, not fitted)
        num_classes (None): k (default ``labels.max() + 1``)
        dims (64): principal axes kept (at most ``d`` and ``n - 1``)
        trim (0.1): share of each class's farthest samples left out of the
            refit (0: no refit)
        metric ("both"): ``"both"`` (the two geometries, combined),
            ``"cosine"`` (directions only: each embedding scaled to unit
            length first) or ``"euclidean"`` (as given); see the module
            docstring

    Returns:
        dict with ``score`` float (n,) (higher = farther from every class),
        ``nearest_class`` int (n,) (the class the image is closest to, in
        the geometry that gave the larger ``z``), ``distance`` float (n, k)
        Mahalanobis distances to each class in that geometry (unfitted
        classes: inf), ``geometry`` (n,) str (``"cosine"`` or
        ``"euclidean"``: the geometry behind each score), ``z`` dict of
        each geometry's scores

    Raises:
        ValueError: fewer than 3 samples, non-finite embeddings, no class
            with 2+ samples, an unknown metric
    """
    x = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(x)
    if x.ndim != 2 or n < 3:
        raise ValueError("embeddings must be (n >= 3, d), got shape %s" % (x.shape,))
    if len(labels) != n:
        raise ValueError("labels (%d) and embeddings (%d) differ in length" % (len(labels), n))
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or inf")
    if not 0 <= trim < 1:
        raise ValueError("trim must be in [0, 1), got %r" % trim)
    if metric not in METRICS:
        raise ValueError("metric must be one of %s, got %r" % (", ".join(METRICS), metric))
    k = int(num_classes or labels.max() + 1)
    counts = np.bincount(labels[labels >= 0], minlength=k)
    if not (counts >= 2).any():
        raise ValueError("outlier_score needs a class with at least 2 samples")
    geometries = ("cosine", "euclidean") if metric == "both" else (metric,)
    # cosine: an all-zero row stays at the origin, away from every class
    each = {g: _one_geometry(l2_normalise(x) if g == "cosine" else x, labels, k, dims, trim)
            for g in geometries}
    if metric != "both":
        found = each[metric]
        return dict(found, geometry=np.full(n, metric), z={metric: found["score"]})
    cos, euc = each["cosine"], each["euclidean"]
    pick = euc["score"] > cos["score"]
    distance = cos.pop("distance")  # (n, k): filled in place, no third copy
    distance[pick] = euc.pop("distance")[pick]
    return dict(
        score=sidak_combined(np.where(pick, euc["score"], cos["score"]), 2),
        nearest_class=np.where(pick, euc["nearest_class"], cos["nearest_class"]),
        distance=distance,
        geometry=np.where(pick, "euclidean", "cosine"),
        z={g: f["score"] for g, f in each.items()},
    )


def sidak_combined(z_max, tests):
    """The largest of ``tests`` z-scores put back on the scale of one test:
    ``Phi^-1(1 - p)`` with ``p = 1 - (1 - q)^tests``, ``q`` the normal upper
    tail of ``z_max`` (where that under- or overflows, ``z_max`` itself)."""
    from scipy.stats import norm

    z_max = np.asarray(z_max, dtype=np.float64)
    q = norm.sf(z_max)
    p = -np.expm1(tests * np.log1p(-np.minimum(q, 1 - 1e-16)))
    with np.errstate(over="ignore", divide="ignore"):
        z = norm.isf(p)
    return np.where(np.isfinite(z) & (q > 0) & (q < 1), z, z_max)


def _one_geometry(x, labels, k, dims, trim):
    """Steps 1-5 on ``x`` as given (see the module docstring)."""
    from sklearn.covariance import ledoit_wolf

    n = len(x)
    z = _project(x, dims)
    fitted = np.bincount(labels[labels >= 0], minlength=k) >= 2
    keep = labels >= 0
    for step in range(2 if trim > 0 else 1):
        means = np.zeros((k, z.shape[1]))
        for c in np.flatnonzero(fitted):
            means[c] = z[keep & (labels == c)].mean(axis=0)
        resid = z[keep] - means[labels[keep]]
        cov = ledoit_wolf(resid, assume_centered=True)[0]
        precision = np.linalg.pinv(cov, hermitian=True)
        dist = _mahalanobis(z, means, precision, fitted)
        if step == 0 and trim > 0:  # leave out each class's farthest share
            keep = np.zeros(n, dtype=bool)
            for c in np.flatnonzero(fitted):
                rows = np.flatnonzero(labels == c)
                own = dist[rows, c]
                cut = np.quantile(own, 1.0 - trim)
                kept = rows[own <= cut]
                keep[kept if len(kept) >= 2 else rows] = True
    # step 3: relative to the background Gaussian of all the data (Ren et al.)
    background = ledoit_wolf(z)[0]
    d0 = _mahalanobis(z, z.mean(axis=0, keepdims=True), np.linalg.pinv(background, hermitian=True),
                      np.ones(1, dtype=bool))[:, 0]
    zc = dist - d0[:, None]  # r_c, turned into z_c column by column (one (n, k) array)
    for c in np.flatnonzero(fitted):  # step 4: in units of the class's upper spread
        own = zc[labels == c, c]
        med = np.median(own)
        spread = (np.quantile(own, 0.75) - med) / QUARTILE_TO_SIGMA
        zc[:, c] = (zc[:, c] - med) / max(spread, 1e-12)
    zc[:, ~fitted] = np.inf
    nearest = zc.argmin(axis=1)
    return dict(score=zc[np.arange(n), nearest], nearest_class=nearest, distance=dist)


def _project(x, dims):
    centred = x - x.mean(axis=0)
    dims = int(min(dims, x.shape[1], len(x) - 1))
    cov = centred.T @ centred / max(len(x) - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:dims]
    return centred @ vectors[:, order]


def _mahalanobis(z, means, precision, fitted, batch=65536):
    """Distances of every row of ``z`` to every fitted mean under one
    shared ``precision``: whitened once (``precision = W W^T``), then
    ``|zW|^2 - 2 zW (mW)^T + |mW|^2``, one matrix product per block instead
    of one quadratic form per class (unfitted means: inf)."""
    values, vectors = np.linalg.eigh(precision)
    white = vectors * np.sqrt(np.maximum(values, 0.0))
    rows = np.flatnonzero(fitted)
    centres = means[rows] @ white
    centre_sq = (centres ** 2).sum(axis=1)
    dist = np.full((len(z), len(means)), np.inf)
    for start in range(0, len(z), batch):
        block = z[start:start + batch] @ white
        sq = (block ** 2).sum(axis=1, keepdims=True) - 2.0 * block @ centres.T + centre_sq
        dist[start:start + batch, rows] = np.sqrt(np.maximum(sq, 0.0))
    return dist
