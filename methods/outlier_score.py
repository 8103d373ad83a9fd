"""Outlier score: how far an image is from *every* class of the dataset.

Some flagged images have no right class at all: a photo of something the
label set does not cover, a blank frame, a box around background. cleanlab's
Datalab reports them as ``outlier`` issues from the average distance to the
k nearest neighbours. A plain kNN distance misses outliers that come in
groups (a batch of images from another source are each other's nearest
neighbours), so here the question is asked of each *class* instead:

1. **Space.** Embeddings are centred and projected on their first ``dims``
   principal axes (default 64), so that the covariance below is well
   estimated.
2. **Class models.** Each class ``c`` (by the given labels) is a Gaussian
   with its own mean and the pooled within-class covariance (linear
   discriminant analysis' model), shrunk towards a multiple of the identity
   (Ledoit-Wolf). The fit is made robust to the very samples we look for:
   a first fit on all samples, then the ``trim`` share (default 10%) of
   each class farthest from its mean is left out and the model refitted
   (one concentration step of the minimum covariance determinant).
3. **Distance to each class**, relative to that class: ``d_c(x)`` is the
   Mahalanobis distance of ``x`` to class ``c``; ``z_c(x) = (log d_c(x) -
   median_c) / (1.4826 * MAD_c)``, with the median and median absolute
   deviation of ``log d_c`` over the class's own samples (robust: a few
   outliers labelled ``c`` do not move them). ``z`` is in units of the
   class's typical spread: 0 = as typical as the class's median sample.
4. **Score**: ``outlier_score = min_c z_c(x)``, the distance to the
   *nearest* class in those units. A mislabeled image is close to its true
   class, so it scores low; only an image far from every class scores high.

**Outlier or not.** :data:`Z_OUTLIER` (3.0): under a normal model of
``log d``, a sample is that far beyond its nearest class's median with
probability 0.13%. Images of the dataset's own classes rarely pass it;
measured false positive rates and the AUROC on planted outliers are in
BENCHMARKS.md (``benchmarks/bench_issue_types.py``).

No FiftyOne here; sklearn's Ledoit-Wolf shrinkage is imported inside.
"""

import numpy as np

__all__ = ["DIMS", "MAD_TO_SIGMA", "TRIM", "Z_OUTLIER", "outlier_score"]

#: outlier_score above which a sample is an outlier (robust z units)
Z_OUTLIER = 3.0
#: principal axes kept
DIMS = 64
#: share of each class left out of the refit
TRIM = 0.1
MAD_TO_SIGMA = 1.4826


def outlier_score(embeddings, labels, num_classes=None, dims=DIMS, trim=TRIM):
    """Distance to the nearest class, in robust standard deviations.

    Args:
        embeddings: float (n, d)
        labels: int (n,) given class indices (-1: no label; scored, not fitted)
        num_classes (None): k (default ``labels.max() + 1``)
        dims (64): principal axes kept (at most ``d`` and ``n - 1``)
        trim (0.1): share of each class's farthest samples left out of the
            refit (0: no refit)

    Returns:
        dict with ``score`` float (n,) (higher = farther from every class),
        ``nearest_class`` int (n,) (the class the image is closest to),
        ``distance`` float (n, k) Mahalanobis distances to each class
        (unfitted classes: inf)

    Raises:
        ValueError: fewer than 3 samples, non-finite embeddings, no class
            with 2+ samples
    """
    from sklearn.covariance import ledoit_wolf

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
    k = int(num_classes or labels.max() + 1)
    z = _project(x, dims)
    counts = np.bincount(labels[labels >= 0], minlength=k)
    fitted = counts >= 2
    if not fitted.any():
        raise ValueError("outlier_score needs a class with at least 2 samples")
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
    log_d = np.log(np.maximum(dist, 1e-12))
    zc = np.full((n, k), np.inf)
    for c in np.flatnonzero(fitted):
        own = log_d[labels == c, c]
        med = np.median(own)
        mad = MAD_TO_SIGMA * np.median(np.abs(own - med))
        zc[:, c] = (log_d[:, c] - med) / max(mad, 1e-12)
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
    k = len(means)
    dist = np.full((len(z), k), np.inf)
    for start in range(0, len(z), batch):
        block = z[start:start + batch]
        for c in np.flatnonzero(fitted):
            diff = block - means[c]
            dist[start:start + batch, c] = np.sqrt(
                np.maximum(((diff @ precision) * diff).sum(axis=1), 0.0)
            )
    return dist
