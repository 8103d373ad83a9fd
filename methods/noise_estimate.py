"""How many labels are wrong, and the probability that each one is.

The plugin's headline numbers come from here. Input: one or more matrices of
*out-of-sample* class probabilities (from ``compute_label_quality``'s
cross-fitted classifiers, Dupes' rounds, kNN label votes, ...), the given
labels and, optionally, human verdicts. Steps:

1. **Pool the evidence** (:func:`pool_probabilities`): the log-linear pool
   ``p(x) ∝ Π_m p_m(x)^w_m`` with non-negative exponents fitted by the log
   loss of the *given* labels (stacking with the noisy labels as targets).
   A useless source gets weight ~0, so the pool predicts the given labels at
   least as well as its best source; a handful of weights cannot memorise a
   label, and every source is already out of sample.
2. **Confident Learning** on the pooled probabilities
   (:mod:`methods.confident_learning`): the estimated joint of given and
   true labels, per class and per class pair.
3. **The noise rate**. With at least ``min_verified`` verified samples drawn
   at random (an audit) — or, failing that, all verified samples — the
   share found wrong, with a 95% Wilson interval: unbiased when the sample
   was random. Without verified samples, ``estimator`` says which model-based
   estimate is used:

   - ``"anchors"`` (default):
     :func:`methods.confident_learning.anchor_noise_rates`, which does not
     count the classifier's confusion as noise but underestimates noise that
     mostly hits hard samples (human noise);
   - ``"confident_learning"``: the off-diagonal count of the
     confident joint (Confident Learning's estimate of the number of label
     issues). It also counts samples the classifier confidently gets wrong
     although their label is right, so with weak embeddings it
     *overestimates* low noise rates (measured in BENCHMARKS.md).

   The default is the one that does not raise false alarms on clean data,
   where they hurt most.

   Both are always computed and recorded, so the user sees the range.
4. **Per-sample probability that the label is wrong**: ranked by the pooled
   self-confidence ``1 - p̂_ỹ(x)`` (or, ``ranking="posterior"``, by Bayes'
   rule under the estimated class-pair noise,
   :func:`methods.confident_learning.noise_posterior`), then calibrated: with 10+ verified wrong and 10+ verified right, a
   logistic (Platt) fit on the verified samples; otherwise a monotone shift
   on the logit scale so that the probabilities add up to the estimated
   number of wrong labels. A threshold of 0.5 then reads "more likely wrong
   than right".
5. **Suggestion**: the most probable class other than the given one (what
   the label should be if it is wrong), with confidence ``p(wrong) *
   p̂_j / sum_{i != ỹ} p̂_i``: the probability that the label is wrong *and*
   the true class is the suggested one.

No FiftyOne here.
"""

import numpy as np

from .confident_learning import (
    anchor_noise_rates,
    confident_learning,
    noise_posterior,
    shift_to_mean,
)

ESTIMATORS = ("anchors", "confident_learning")
RANKINGS = ("self_confidence", "posterior")


def pool_probabilities(probabilities, labels):
    """Log-linear pool of probability matrices, weights fitted on the labels.

    Args:
        probabilities: dict name -> float array (n, k), rows sum to 1
        labels: int array (n,) of given labels

    Returns:
        ``(pooled float (n, k), weights dict name -> float >= 0)``
    """
    from scipy.optimize import minimize

    names = list(probabilities)
    if not names:
        raise ValueError("pool_probabilities needs at least one matrix")
    labels = np.asarray(labels, dtype=np.int64)
    logs = [np.log(np.clip(np.asarray(probabilities[m], np.float64), 1e-6, 1.0)) for m in names]
    if len(logs) == 1:
        return _softmax(logs[0]), {names[0]: 1.0}
    rows = np.arange(len(labels))

    def loss(w):
        z = sum(wi * lp for wi, lp in zip(w, logs))
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        value = -(z[rows, labels] - log_norm).mean()
        soft = np.exp(z - log_norm[:, None])
        grad = [-(lp[rows, labels] - (soft * lp).sum(axis=1)).mean() for lp in logs]
        return value, np.array(grad)

    start = np.full(len(logs), 1.0 / len(logs))
    fit = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * len(logs))
    weights = np.clip(fit.x, 0.0, None)
    pooled = _softmax(sum(w * lp for w, lp in zip(weights, logs)))
    return pooled, {m: float(w) for m, w in zip(names, weights)}


def estimate_label_noise(
    probabilities,
    labels,
    verified=None,
    audited=None,
    estimator="anchors",
    ranking="self_confidence",
    class_names=None,
    min_verified=50,
    min_calibration=10,
):
    """The noise estimate and per-sample probabilities (module docstring).

    Args:
        probabilities: dict name -> float (n, k) out-of-sample probabilities
        labels: int array (n,) of given labels
        verified (None): int array (n,): 1 = verified wrong, 0 = verified
            right, -1 = not verified
        audited (None): bool array (n,): samples of a uniform random audit;
            their verdicts estimate the rate when at least ``min_verified``
            of them are verified
        estimator ("anchors"): one of :data:`ESTIMATORS`, used when there
            are too few verified samples
        ranking ("self_confidence"): what orders the samples before
            calibration: ``1 - p̂_ỹ(x)`` (robust; best on uniform noise) or
            ``posterior`` (Bayes under the estimated class-pair noise; better
            when errors follow class pairs, e.g. human noise)
        class_names (None): names for the per-class and pair summaries
        min_verified (50): verified samples needed for a verified rate
        min_calibration (10): verified wrong *and* right needed to calibrate
            on verdicts (Platt) instead of the estimated rate

    Returns:
        a dict with ``p_wrong`` (n,) calibrated probabilities, ``suggested``
        (n,) int and ``suggested_confidence`` (n,), ``pooled`` (n, k),
        ``pool_weights``, and ``estimate``: a JSON-ready dict with ``rate``,
        ``count``, ``source``, ``interval`` (95%, verified only),
        ``per_class``, ``pairs``, ``confident_learning`` and ``anchors``
        (each estimator's own rate), ``calibration``
    """
    if estimator not in ESTIMATORS:
        raise ValueError("estimator must be one of %s, got %r" % (ESTIMATORS, estimator))
    if ranking not in RANKINGS:
        raise ValueError("ranking must be one of %s, got %r" % (RANKINGS, ranking))
    from .audit import wilson_interval

    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    pooled, pool_weights = pool_probabilities(probabilities, labels)
    k = pooled.shape[1]
    names = list(class_names) if class_names is not None else list(range(k))
    cl = confident_learning(pooled, labels, k, names)
    anchor_rate, anchor_per_class = anchor_noise_rates(pooled, labels)
    # Confident Learning's count of issues: off-diagonal of the confident joint
    cl_rate = float(cl["confident_joint"].sum() - np.trace(cl["confident_joint"])) / max(n, 1)
    model_rates = {"confident_learning": cl_rate, "anchors": anchor_rate}

    verified = np.full(n, -1) if verified is None else np.asarray(verified)
    audited = np.zeros(n, bool) if audited is None else np.asarray(audited, bool)
    interval = None
    reviewed_audit = verified[audited & (verified >= 0)]
    reviewed_all = verified[verified >= 0]
    if len(reviewed_audit) >= min_verified:
        pool, source = reviewed_audit, "audit (%d verified at random)" % len(reviewed_audit)
    elif len(reviewed_all) >= min_verified:
        pool, source = reviewed_all, "verified (%d samples)" % len(reviewed_all)
    else:
        pool, source = None, estimator
    if pool is not None:
        wrong = int((pool == 1).sum())
        rate = wrong / len(pool)
        interval = list(wilson_interval(wrong, len(pool)))
    else:
        rate = model_rates[estimator]

    rows = np.arange(n)
    if ranking == "posterior":
        p_raw, _ = noise_posterior(pooled, labels, cl["transition"])
    else:
        p_raw = 1.0 - pooled[rows, labels]
    others = pooled.copy()
    others[rows, labels] = -1.0
    likely_true = others.argmax(axis=1)
    num_wrong, num_right = int((verified == 1).sum()), int((verified == 0).sum())
    if num_wrong >= min_calibration and num_right >= min_calibration:
        p_wrong = platt_calibrate(p_raw, verified)
        calibration = "platt on %d verified wrong, %d verified right" % (num_wrong, num_right)
    else:
        p_wrong = shift_to_mean(p_raw, rate)
        calibration = "logit shift to the estimated rate (%s)" % source
    # the per-class/pair shape of the joint, scaled to the estimated rate
    q = cl["joint"]
    cl_off = max(1.0 - float(np.trace(q)), 1e-12)
    pairs = [
        [g, t, int(round(c / (n * cl_off) * rate * n))] for g, t, c in cl["pairs"]
    ] if cl["pairs"] else []
    pairs = [p for p in pairs if p[2] >= 1]
    row_wrong = np.zeros(k)
    np.add.at(row_wrong, labels, p_wrong)
    counts = np.bincount(labels, minlength=k)
    per_class = {
        names[i]: float(row_wrong[i] / counts[i]) if counts[i] else 0.0 for i in range(k)
    }
    others = np.clip(others, 0.0, None)
    share = others[rows, likely_true] / np.clip(others.sum(axis=1), 1e-12, None)
    # P(label wrong and the true class is the suggested one)
    confidence = p_wrong * share
    estimate = dict(
        rate=float(rate),
        count=int(round(rate * n)),
        source=source,
        interval=interval,
        per_class=per_class,
        pairs=pairs,
        confident_learning=cl_rate,
        confident_learning_calibrated=float(1.0 - np.trace(q)),
        anchors=anchor_rate,
        anchors_per_class={names[i]: float(anchor_per_class[i]) for i in range(k)},
        calibration=calibration,
        num_samples=n,
    )
    return dict(
        p_wrong=p_wrong.astype(np.float64),
        suggested=likely_true.astype(np.int64),
        suggested_confidence=confidence.astype(np.float64),
        pooled=pooled,
        pool_weights=pool_weights,
        estimate=estimate,
        confident_learning=cl,
    )


def platt_calibrate(score, verified):
    """Logistic map of ``logit(score)`` fitted on the verified samples."""
    from sklearn.linear_model import LogisticRegression

    s = np.clip(np.asarray(score, np.float64), 1e-9, 1 - 1e-9)
    z = (np.log(s) - np.log1p(-s))[:, None]
    known = np.asarray(verified) >= 0
    model = LogisticRegression(C=1.0)
    model.fit(z[known], np.asarray(verified)[known] == 1)
    return model.predict_proba(z)[:, 1]


def label_probabilities(given, predicted, confidence, num_classes):
    """A probability matrix from a detector that names one class.

    The named class gets its confidence (clipped to [1/k, 0.99]), the other
    classes share the rest equally; rows without a prediction are uniform.
    """
    given = np.asarray(given)
    predicted = np.asarray(predicted)
    n, k = len(given), int(num_classes)
    conf = np.asarray(confidence, np.float64) if confidence is not None else np.full(n, 0.9)
    conf = np.where(np.isfinite(conf), conf, 0.9)
    conf = np.clip(conf, 1.0 / k, 0.99)
    out = np.repeat(((1.0 - conf) / max(k - 1, 1))[:, None], k, axis=1)
    has = (predicted >= 0) & (predicted < k)
    out[np.flatnonzero(has), predicted[has]] = conf[has]
    out[~has] = 1.0 / k
    return out


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
