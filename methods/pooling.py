"""Log-linear pooling of several class-probability sources.

Given log-probabilities ``log p_m`` (n, k) from M sources (models, label
confidences, neighbours), the pool is ``log p ∝ Σ_m w_m log p_m``: a
weighted geometric mean of the sources, renormalised per row. The weights
``w_m >= 0`` minimise the log loss of the given labels (L-BFGS-B with an
analytic gradient, start at ``1 / M`` each); a source that adds nothing
gets ~0 weight, and the pool predicts the given labels at least as well
as its best source. Weights are not forced to sum to 1, so the pool can
also sharpen or flatten (a temperature). One source is returned as is,
normalised, with weight 1.

Used by :func:`methods.out_of_sample.out_of_sample_probabilities` (the
ensemble's models) and :func:`methods.noise_estimate.pool_probabilities`
(the evidence sources). No FiftyOne; scipy is imported inside.
"""

import numpy as np

from .arrays import log_softmax

__all__ = ["log_linear_pool"]


def log_linear_pool(log_probabilities, labels):
    """Log-linear pool ``log p ∝ Σ_m w_m log p_m``, ``w_m >= 0`` fitted by the
    log loss of the given labels (a useless source gets ~0 weight; the pool
    predicts the given labels at least as well as its best source).

    Args:
        log_probabilities: dict name -> float (n, k) log-probabilities
        labels: int array (n,)

    Returns:
        ``(log_pooled float64 (n, k) normalised, weights dict name -> float)``
    """
    from scipy.optimize import minimize

    names = list(log_probabilities)
    if not names:
        raise ValueError("log_linear_pool needs at least one source")
    logs = [np.asarray(log_probabilities[m], np.float64) for m in names]
    if len(logs) == 1:
        return log_softmax(logs[0]), {names[0]: 1.0}
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))

    def loss(w):
        z = log_softmax(sum(wi * lp for wi, lp in zip(w, logs)))
        soft = np.exp(z)
        grad = [-(lp[rows, labels] - (soft * lp).sum(axis=1)).mean() for lp in logs]
        return -z[rows, labels].mean(), np.array(grad)

    start = np.full(len(logs), 1.0 / len(logs))
    fit = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * len(logs))
    weights = np.clip(fit.x, 0.0, None)
    pooled = log_softmax(sum(w * lp for w, lp in zip(weights, logs)))
    return pooled, {m: float(w) for m, w in zip(names, weights)}
