"""How many labels are wrong, and the probability that each one is.

The plugin's headline numbers come from here. Input: one or more matrices of
*out-of-sample* class probabilities (from ``compute_label_quality``'s
cross-fitted classifiers, Dupes' rounds, kNN label votes, ...), the given
labels and, optionally, human verdicts. Steps:

1. **Pool the evidence** (:func:`pool_probabilities`): the log-linear pool
   ``p(x) ∝ Π_m p_m(x)^w_m`` with non-negative exponents fitted by the log
   loss of the *given* labels (stacking with the noisy labels as targets;
   every source is already out of sample). The pool is kept only if it
   predicts held-out given labels better than its best single source (2-fold
   cross-fitted weights); otherwise that source alone is used. When a
   ``primary`` source (``compute_label_quality``'s cross-fitted
   probabilities) is given, it is used alone: on the benchmark sets the
   pool beat it on held-out log loss yet ranked the wrong labels worse on
   11 of 13 sets (Dupes' rounds and kNN votes are partly the same model).
2. **Confident Learning** on the pooled probabilities
   (:mod:`methods.confident_learning`): the estimated joint of given and
   true labels, per class and per class pair.
3. **Per-sample probability that the label is wrong**: samples are ranked
   by Bayes' rule under class-conditional noise,
   ``p(y* ≠ ỹ | x, ỹ) = 1 - p̂_ỹ(x) T[ỹ][ỹ] / Σ_j p̂_j(x) T[j][ỹ]``, with the
   transition matrix ``T`` of the anchor points
   (:func:`methods.confident_learning.anchor_transition`): a disagreement
   along a pair that is often confused in the labels (cat → dog) is more
   likely a label error than one the labels never make, and a class whose
   labels are rarely wrong needs stronger evidence. When the anchors show
   no class structure (a Monte Carlo G-test of uniform noise,
   :func:`methods.confident_learning.uniform_noise_test`), or a structure
   that does not replicate in the more confident half of the anchors (the
   classifier's own confusion, not the labelling process), ``T`` is the
   uniform-noise matrix and the posterior ranks as the self-confidence.
   A transition learnt from the classifier's confusion ranks worse than
   the self-confidence (CIFAR-10, 10,000 images, 1% uniform noise: AUROC
   0.963 vs 0.971 before this check; a real test set of the same size lost
   0.715 vs 0.782), while true class-pair noise keeps the posterior's gain
   (3% pair noise on 50,000: 0.940 vs 0.912). The held-out likelihood of
   the given labels does not tell the two apart: it prefers the anchors'
   transition in both cases, because the classifier's confusion is real
   disagreement between images and their labels.
   (``ranking="self_confidence"`` ranks by ``1 - p̂_ỹ(x)`` alone.) Then
   calibrated:

   - with 10+ verified wrong and 10+ verified right samples, a logistic
     (Platt) map of the score fitted on the verdicts. Reviewers verify the
     highest scores first, so verdicts are not a random sample; but they are
     selected *on the score*, and ``p(wrong | score)`` is what Platt fits, so
     the selection does not bias it;
   - otherwise a monotone shift on the logit scale so that the
     probabilities add up to the estimated number of wrong labels.

   A threshold of 0.5 then reads "more likely wrong than right".
4. **The noise rate**, first of:

   - an **audit** (a uniform random sample reviewed, ``audited``) with at
     least ``min_verified`` verdicts: the share found wrong, with a 95%
     Wilson interval (unbiased: the sample was random);
   - **verdicts** enough to calibrate (step 3): the mean calibrated
     probability over all samples, with a 95% bootstrap interval over the
     verdicts;
   - a **model-based estimate**, ``estimator``:

     - ``"anchors"`` (default,
       :func:`methods.confident_learning.anchor_transition`): the share
       mislabeled among each class's most confident samples. It does not
       count the classifier's confusion as noise (no false alarms on clean
       data, where they hurt most) but underestimates noise that mostly
       hits hard samples, as human noise does;
     - ``"confident_learning"``: the off-diagonal count of the confident
       joint (Confident Learning's number of label issues). It also counts
       samples the classifier confidently gets wrong although their label is
       right, so with weak embeddings it *overestimates* low noise rates.

     Both are always computed and recorded: the truth is usually between
     them, and an audit of ~100 samples settles it.
5. **Suggestion**: the most probable true class other than the given one
   under the same posterior (``argmax_{j ≠ ỹ} p̂_j(x) T[j][ỹ]``: what the
   label should be if it is wrong), with confidence ``p(wrong)`` times that
   class's share of the other classes' posterior: the probability that the
   label is wrong *and* the true class is the suggested one.

No FiftyOne here.
"""

import numpy as np

from .confident_learning import (
    anchor_transition,
    confident_learning,
    noise_posterior,
    shift_to_mean,
)
from .pooling import log_linear_pool

__all__ = [
    "ESTIMATORS",
    "RANKINGS",
    "estimate_label_noise",
    "label_probabilities",
    "model_noise_rates",
    "model_wrong_probability",
    "platt_calibrate",
    "pool_probabilities",
]

ESTIMATORS = ("anchors", "confident_learning")
RANKINGS = ("posterior", "self_confidence")


def pool_probabilities(probabilities, labels, seed=0):
    """Log-linear pool of probability matrices, weights fitted on the labels
    (:func:`methods.pooling.log_linear_pool`), kept only when it beats
    the best single source on held-out given labels (module doc, step 1).

    Args:
        probabilities: dict name -> float array (n, k), rows sum to 1
        labels: int array (n,) of given labels
        seed (0): the 2-fold split of the comparison

    Returns:
        ``(pooled float (n, k), weights dict name -> float >= 0)``; a source
        left out has weight 0
    """
    if not probabilities:
        raise ValueError("pool_probabilities needs at least one matrix")
    labels = np.asarray(labels, dtype=np.int64)
    logs = {
        m: np.log(np.clip(np.asarray(p, np.float64), 1e-6, 1.0)) for m, p in probabilities.items()
    }
    log_pooled, weights = log_linear_pool(logs, labels)
    if len(logs) > 1:
        best = _best_single_source(logs, labels, seed)
        if best is not None:
            log_pooled, weight = log_linear_pool({best: logs[best]}, labels)
            weights = {m: (weights[m] if m == best else 0.0) for m in logs}
    return np.exp(log_pooled), weights


def _best_single_source(logs, labels, seed):
    """The source whose held-out log loss beats the pool's, or None.

    Both are scored with 2-fold cross-fitting: the pool weights (and a
    single source's scale) are fitted on one half and scored on the other.
    """
    rng = np.random.default_rng(seed)
    half = rng.random(len(labels)) < 0.5
    names = list(logs)
    losses = dict.fromkeys(names + [None], 0.0)
    for fit_rows in (half, ~half):
        test = ~fit_rows
        rows = np.arange(int(test.sum()))
        for name in names + [None]:
            sources = logs if name is None else {name: logs[name]}
            _, w = log_linear_pool({m: v[fit_rows] for m, v in sources.items()}, labels[fit_rows])
            z = sum(w[m] * sources[m][test] for m in sources)
            z = z - z.max(axis=1, keepdims=True)
            z = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            losses[name] -= z[rows, labels[test]].sum()
    best = min(names, key=losses.get)
    return best if losses[best] <= losses[None] else None


def model_wrong_probability(probabilities, labels, estimator="anchors"):
    """Probability that each label is wrong, from the model alone (no verdicts).

    The anchors' Bayes posterior shifted on the logit scale to the
    ``estimator``'s noise rate (module doc, steps 3-4), as
    :func:`estimate_label_noise` computes it without verdicts. Returns
    ``(p_wrong float (n,), rate)``.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    anchors = anchor_transition(p, labels)
    rate = anchors["rate"] if estimator == "anchors" else model_noise_rates(p, labels)[0][estimator]
    posterior, _ = noise_posterior(p, labels, anchors["transition"])
    return shift_to_mean(posterior, rate), rate


def model_noise_rates(probabilities, labels, cl=None):
    """``({estimator: rate}, anchors)`` for :data:`ESTIMATORS`; ``anchors``
    is :func:`methods.confident_learning.anchor_transition`'s result."""
    p = np.asarray(probabilities, dtype=np.float64)
    if cl is None:
        cl = confident_learning(p, labels)
    joint = cl["confident_joint"]
    anchors = anchor_transition(p, labels)
    cl_rate = float(joint.sum() - np.trace(joint)) / max(len(labels), 1)
    return {"anchors": anchors["rate"], "confident_learning": cl_rate}, anchors


def estimate_label_noise(
    probabilities,
    labels,
    verified=None,
    audited=None,
    estimator="anchors",
    ranking="posterior",
    class_names=None,
    min_verified=50,
    min_calibration=10,
    score=None,
    seed=0,
    original_verdicts=None,
    num_fixed=0,
    primary=None,
    original_labels=None,
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
            are neither audit nor enough verdicts
        ranking ("posterior"): what orders the samples before
            calibration: ``posterior`` (Bayes' rule under the anchors'
            transition matrix) or ``self_confidence`` (``1 - p̂_ỹ(x)``)
        class_names (None): names for the per-class and pair summaries
        min_verified (50): audit verdicts needed for an audited rate
        min_calibration (10): verified wrong *and* right needed to calibrate
            on verdicts (Platt) instead of the estimated rate
        score (None): float (n,) to rank by instead of ``ranking`` (higher =
            more likely wrong; e.g. a consensus whose weights were learned
            from verdicts); calibrated the same way
        seed (0): the pool comparison's split and the bootstrap
        original_verdicts (None): like ``verified`` but on the labels as
            they were when reviewed (a label judged wrong and then corrected
            is 1 here, 0 in ``verified``); the audit's rate is read from
            these (default ``verified``)
        num_fixed (0): labels judged wrong and corrected since; subtracted
            from the audit's estimated count (what is still wrong)
        original_labels (None): int array (n,): ``labels`` with the
            ``num_fixed`` corrected labels put back to their class before
            the correction. The model-based estimators (Confident Learning,
            the anchors' transition matrix) run on these: reviewers correct
            the most confident disagreements first, which are exactly the
            anchors, so on the corrected labels the anchors would lose most
            of their evidence of noise and the estimate would fall by far
            more than the labels fixed. On the original labels they measure
            the labelling process; the labels put back are then
            subtracted from their counts (what is still wrong)
        primary (None): name (or list of names) of the sources holding
            out-of-sample class probabilities (``compute_label_quality``'s
            cross-fitted ones, a user's model predictions, ``pred_field``);
            when present, they are pooled among themselves
            (:func:`pool_probabilities`: weights by held-out log loss of
            the given labels, the best single source when the pool does
            not beat it) and the others are not pooled in: on the benchmark
            sets, pooling Dupes' rounds, kNN votes and Deep Self-Learning's
            predictions into it lowered AUROC on 11 of 13 sets even where it
            lowered the held-out log loss

    Returns:
        a dict with ``p_wrong`` (n,) calibrated probabilities, ``suggested``
        (n,) int and ``suggested_confidence`` (n,), ``pooled`` (n, k),
        ``pool_weights``, ``confident_learning`` (the full result), and
        ``estimate``: a JSON-ready dict with ``rate``, ``count``, ``source``,
        ``interval`` (95%, from verdicts only), ``per_class``, ``pairs``,
        ``confident_learning`` and ``anchors`` (each model estimator's own
        rate), ``calibration``
    """
    if estimator not in ESTIMATORS:
        raise ValueError("estimator must be one of %s, got %r" % (ESTIMATORS, estimator))
    if ranking not in RANKINGS:
        raise ValueError("ranking must be one of %s, got %r" % (RANKINGS, ranking))
    from .audit import wilson_interval

    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    rows = np.arange(n)
    kept = [m for m in ([primary] if isinstance(primary, str) else primary or ()) if m in probabilities]
    if len(kept) == 1:
        pooled = np.asarray(probabilities[kept[0]], dtype=np.float64)
        pooled = pooled / pooled.sum(axis=1, keepdims=True)
        pool_weights = {kept[0]: 1.0}
    else:  # several primary sources (label quality + a user's models) pool among themselves
        pooled, pool_weights = pool_probabilities(
            {m: probabilities[m] for m in kept} if kept else probabilities, labels, seed=seed)
    k = pooled.shape[1]
    names = list(class_names) if class_names is not None else list(range(k))
    before = labels if original_labels is None else np.asarray(original_labels, np.int64)
    cl = confident_learning(pooled, before, k, names)
    model_rates, anchors = model_noise_rates(pooled, before, cl)
    put_back = int((before != labels).sum())  # the fixed labels the models measured
    model_rates = {
        name: max(rate * n - put_back, 0.0) / max(n, 1) for name, rate in model_rates.items()
    }
    posterior, likely_true, share = noise_posterior(
        pooled, labels, anchors["transition"], return_share=True
    )
    if score is not None:
        p_raw = np.clip(np.asarray(score, np.float64), 0.0, 1.0)
    elif ranking == "posterior":
        p_raw = posterior
    else:
        p_raw = 1.0 - pooled[rows, labels]

    verified = np.full(n, -1) if verified is None else np.asarray(verified)
    audited = np.zeros(n, bool) if audited is None else np.asarray(audited, bool)
    original = verified if original_verdicts is None else np.asarray(original_verdicts)
    audit_verdicts = original[audited & (original >= 0)]
    num_wrong, num_right = int((verified == 1).sum()), int((verified == 0).sum())
    platt = num_wrong >= min_calibration and num_right >= min_calibration
    interval = None
    if len(audit_verdicts) >= min_verified:
        wrong = int((audit_verdicts == 1).sum())
        # the audit measures the labels as reviewed; what is still wrong
        # is that many minus the ones corrected since
        still = lambda share: max(share * n - num_fixed, 0.0) / max(n, 1)  # noqa: E731
        rate = still(wrong / len(audit_verdicts))
        interval = [still(b) for b in wilson_interval(wrong, len(audit_verdicts))]
        source = "audit (%d verified at random%s)" % (
            len(audit_verdicts), ", %d corrected since" % num_fixed if num_fixed else "")
    elif platt:
        rate, interval = None, list(_bootstrap_rate(p_raw, verified, seed))
        source = "verdicts (%d wrong, %d right; calibrated)" % (num_wrong, num_right)
    else:
        rate, source = model_rates[estimator], estimator

    if platt:
        p_wrong = platt_calibrate(p_raw, verified)
        calibration = "platt on %d verified wrong, %d verified right" % (num_wrong, num_right)
        if rate is None:
            rate = float(p_wrong.mean())
        else:  # the audit's unbiased rate, the verdicts' shape
            p_wrong = shift_to_mean(p_wrong, rate)
            calibration += ", shifted to the audited rate"
    else:
        p_wrong = shift_to_mean(p_raw, rate)
        calibration = "logit shift to the estimated rate (%s)" % source

    # the per-class/pair shape of the joint, scaled to the estimated rate
    q = cl["joint"]
    cl_off = max(1.0 - float(np.trace(q)), 1e-12)
    pairs = [[g, t, int(round(c / (n * cl_off) * rate * n))] for g, t, c in cl["pairs"]]
    pairs = [p for p in pairs if p[2] >= 1]
    row_wrong = np.zeros(k)
    np.add.at(row_wrong, labels, p_wrong)
    counts = np.bincount(labels, minlength=k)
    per_class = {
        names[i]: float(row_wrong[i] / counts[i]) if counts[i] else 0.0 for i in range(k)
    }
    # P(label wrong and the true class is the suggested one)
    confidence = p_wrong * share
    estimate = dict(
        rate=float(rate),
        count=int(round(rate * n)),
        source=source,
        interval=interval,
        per_class=per_class,
        pairs=pairs,
        confident_learning=model_rates["confident_learning"],
        confident_learning_calibrated=float(1.0 - np.trace(q)),
        anchors=model_rates["anchors"],
        anchors_per_class={names[i]: float(anchors["per_class"][i]) for i in range(k)},
        uniform_noise_p_value=anchors.get("uniform_p_value"),
        uniform_noise_p_value_top=anchors.get("uniform_p_value_top"),
        num_anchors=anchors.get("num_anchors"),
        transition="uniform noise (no class structure that replicates in the anchors' "
        "more confident half)" if anchors.get("uniform") else "class-conditional (anchors)",
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


def _bootstrap_rate(score, verified, seed, draws=200):
    """95% interval of the mean Platt-calibrated probability, resampling
    the verdicts (the calibration's only source of uncertainty here)."""
    verified = np.asarray(verified)
    known = np.flatnonzero(verified >= 0)
    rng = np.random.default_rng(seed)
    # the mean over at most 100,000 scores (its own sampling error is ~0.1%)
    population = np.asarray(score)
    if len(population) > 100_000:
        population = population[rng.choice(len(population), 100_000, replace=False)]
    means = []
    for _ in range(draws):
        pick = known[rng.integers(0, len(known), len(known))]
        if (verified[pick] == 1).any() and (verified[pick] == 0).any():
            fitted = platt_calibrate(
                np.concatenate([score[pick], population]),
                np.concatenate([verified[pick], np.full(len(population), -1)]),
            )
            means.append(fitted[len(pick):].mean())
    if not means:
        return 0.0, 1.0
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def platt_calibrate(score, verified):
    """Logistic map of ``logit(score)`` fitted on the verified samples."""
    from sklearn.linear_model import LogisticRegression

    s = np.clip(np.asarray(score, np.float64), 1e-9, 1 - 1e-9)
    z = (np.log(s) - np.log1p(-s))[:, None]
    known = np.asarray(verified) >= 0
    model = LogisticRegression(C=1.0)
    model.fit(z[known], np.asarray(verified)[known] == 1)
    return model.predict_proba(z)[:, 1]


def label_probabilities(given, predicted, confidence, num_classes, given_share=None):
    """A probability matrix from a detector that names one class.

    The named class gets its confidence (clipped to [1/k, 0.99]), the other
    classes share the rest equally; rows without a prediction are uniform.
    ``given_share`` (float (n,), optional): the detector's own share for the
    *given* class, e.g. the fraction of a sample's neighbours that carry its
    label (kNN disagreement's ``1 - score``); it then sets that entry too
    (floored at half a share of the rest, so it is never zero), and the
    remaining classes share what is left.
    """
    given = np.asarray(given)
    predicted = np.asarray(predicted)
    n, k = len(given), int(num_classes)
    conf = np.asarray(confidence, np.float64) if confidence is not None else np.full(n, 0.9)
    conf = np.where(np.isfinite(conf), conf, 0.9)
    conf = np.clip(conf, 1.0 / k, 0.99)
    out = np.repeat(((1.0 - conf) / max(k - 1, 1))[:, None], k, axis=1)
    has = (predicted >= 0) & (predicted < k)
    rows = np.flatnonzero(has)
    out[rows, predicted[has]] = conf[has]
    if given_share is not None and k > 2:
        share = np.asarray(given_share, np.float64)
        other = has & (predicted != given) & np.isfinite(share)
        rows = np.flatnonzero(other)
        rest = 1.0 - conf[other]
        own = np.clip(share[other], 0.5 * rest / (k - 1), rest)
        spread = (rest - own) / (k - 2)
        out[rows] = spread[:, None]
        out[rows, predicted[other]] = conf[other]
        out[rows, given[other]] = own
    out[~has] = 1.0 / k
    return out / out.sum(axis=1, keepdims=True)
