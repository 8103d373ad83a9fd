"""Confident Learning: which labels are wrong, and how many.

Northcutt, Jiang, Chuang, "Confident Learning: Estimating Uncertainty in
Dataset Labels", JAIR 70 (2021). Input: for every sample its given (noisy)
label ``ỹ`` and *out-of-sample* predicted probabilities ``p̂(ỹ = j | x)``
(see :mod:`methods.out_of_sample`). The method:

1. **Per-class thresholds** (eq. 2): ``t_j`` = mean ``p̂_j(x)`` over the
   samples labelled ``j`` — the model's average self-confidence in class
   ``j``. A sample "confidently belongs" to ``j`` when ``p̂_j(x) >= t_j``;
   a per-class threshold copes with classes the model is less sure about.
2. **Confident joint** ``C[i][j]`` (eq. 1): the number of samples labelled
   ``i`` that confidently belong to ``j`` (when several ``j`` pass their
   threshold, the one with the largest ``p̂_j``). Samples passing no
   threshold are not counted. Off-diagonal cells count likely label errors.
3. **Calibration** (eq. 3): each row is rescaled so it sums to the number of
   samples labelled ``i`` (the confident joint counts only some samples),
   then the whole matrix is normalised to sum to 1: ``Q[i][j]`` estimates
   the joint distribution ``p(ỹ = i, y* = j)`` of given and true labels.
4. **Number of label issues**: ``n * (1 - trace(Q))``; per class ``i``:
   ``n * (row_i(Q).sum() - Q[i][i])``; per class pair ``(i → j)``:
   ``n * Q[i][j]``.
5. **Prune by noise rate** (section 3.2, the paper's default ranking): for
   every off-diagonal ``(i, j)``, the ``round(n * Q[i][j])`` samples labelled
   ``i`` with the largest margin ``p̂_j(x) - p̂_i(x)`` are label issues.

Defaults follow the paper: thresholds from the mean self-confidence, the
calibrated joint, prune-by-noise-rate; every class keeps at least one sample
(the paper's "never remove all of a class" rule, cleanlab's
``min_examples_per_class=1``).

:func:`anchor_transition` gives a second estimate of the noise, the whole
transition matrix from anchor points (Patrini et al. 2017), that does not
count the model's own confusion as noise (it assumes noise does not depend
on how hard a sample is), and :func:`noise_posterior` turns a transition
matrix into a per-sample probability that the given label is wrong (Bayes'
rule under the paper's class-conditional noise model, with the model's
probabilities standing in for the true-class posterior). How each behaves
on which data is measured in BENCHMARKS.md.

No FiftyOne here: numpy arrays in, arrays out.
"""

import numpy as np

__all__ = [
    "anchor_noise_rates",
    "anchor_transition",
    "calibrate_joint",
    "confident_joint",
    "confident_learning",
    "noise_posterior",
    "per_class_thresholds",
    "prune_by_noise_rate",
    "shift_to_mean",
    "uniform_noise_test",
]


def per_class_thresholds(probabilities, labels):
    """``t_j``: the mean predicted probability of class j over samples labelled j."""
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    k = p.shape[1]
    sums = np.zeros(k)
    np.add.at(sums, labels, p[np.arange(len(labels)), labels])
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        thresholds = sums / counts
    # a class with no sample can never be confidently assigned
    return np.where(counts > 0, thresholds, np.inf)


def confident_joint(probabilities, labels, thresholds=None):
    """Counts ``C[i][j]``: samples labelled i that confidently belong to j.

    Returns:
        ``(C, assigned)``: int64 (k, k) counts, and the int64 (n,) class each
        sample confidently belongs to (-1 when it passes no threshold)
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = p.shape
    if thresholds is None:
        thresholds = per_class_thresholds(p, labels)
    # t_j minus a hair so the sample(s) at the mean count (as in the paper's >=)
    above = p >= np.asarray(thresholds)[None, :] - 1e-12
    masked = np.where(above, p, -np.inf)
    assigned = masked.argmax(axis=1)
    assigned[~above.any(axis=1)] = -1
    counted = assigned >= 0
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (labels[counted], assigned[counted]), 1)
    return joint, assigned


def calibrate_joint(joint, labels, num_classes=None):
    """Calibrated confident joint and the estimated joint ``Q`` (eq. 3).

    Rows of ``joint`` are rescaled to the given class counts; a class whose
    row is empty (no sample passed a threshold) is assumed clean. Returns
    ``(calibrated_counts float (k, k), Q float (k, k) summing to 1)``.
    """
    joint = np.asarray(joint, dtype=np.float64)
    k = joint.shape[0] if num_classes is None else int(num_classes)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=k).astype(np.float64)
    rows = joint.sum(axis=1)
    calibrated = np.zeros_like(joint)
    for i in range(k):
        if rows[i] > 0:
            calibrated[i] = joint[i] / rows[i] * counts[i]
        else:
            calibrated[i, i] = counts[i]
    return calibrated, calibrated / max(calibrated.sum(), 1.0)


def confident_learning(probabilities, labels, num_classes=None, class_names=None):
    """Runs Confident Learning end to end (see the module docstring).

    Args:
        probabilities: float array (n, k) of out-of-sample probabilities
        labels: int array (n,) of the given labels
        num_classes (None): k (default ``probabilities.shape[1]``)
        class_names (None): names for the per-class/pair summaries

    Returns:
        a dict with
        - ``thresholds``: (k,) per-class thresholds ``t_j``
        - ``confident_joint``: int (k, k) ``C``
        - ``joint``: float (k, k) ``Q`` ≈ p(given = i, true = j)
        - ``transition``: float (k, k) ``T[j][i]`` ≈ p(given = i | true = j)
          (rows = true class, each sums to 1)
        - ``noise_rate``: ``1 - trace(Q)``; ``num_issues``: ``round(n *
          noise_rate)``
        - ``per_class``: {class: estimated share of its samples mislabeled}
        - ``pairs``: list of ``(given, true, count)`` off-diagonal cells with
          an estimated count >= 1, largest first
        - ``is_issue``: bool (n,), the prune-by-noise-rate label issues
        - ``margin``: float (n,), ``max_{j != ỹ} p̂_j - p̂_ỹ`` (the ranking)
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = p.shape
    k = int(num_classes or k)
    names = list(class_names) if class_names is not None else list(range(k))
    thresholds = per_class_thresholds(p, labels)
    joint_counts, _ = confident_joint(p, labels, thresholds)
    calibrated, q = calibrate_joint(joint_counts, labels, k)
    prior_true = q.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        transition = np.where(prior_true[:, None] > 0, q.T / prior_true[:, None], 0.0)
    for j in np.flatnonzero(prior_true <= 0):
        transition[j, j] = 1.0
    rate = float(1.0 - np.trace(q))
    row_mass = q.sum(axis=1)
    per_class = {
        names[i]: float(1.0 - q[i, i] / row_mass[i]) if row_mass[i] > 0 else 0.0
        for i in range(k)
    }
    pairs = [
        (names[i], names[j], int(round(n * q[i, j])))
        for i in range(k) for j in range(k)
        if i != j and round(n * q[i, j]) >= 1
    ]
    pairs.sort(key=lambda t: -t[2])
    is_issue, margin = prune_by_noise_rate(p, labels, q)
    return dict(
        thresholds=thresholds,
        confident_joint=joint_counts,
        joint=q,
        transition=transition,
        noise_rate=rate,
        num_issues=int(round(n * rate)),
        per_class=per_class,
        pairs=pairs,
        is_issue=is_issue,
        margin=margin,
    )


def prune_by_noise_rate(probabilities, labels, joint):
    """The paper's default issue finder (see module docstring, step 5).

    Returns ``(is_issue bool (n,), margin float (n,))`` where ``margin`` is
    ``max_{j != ỹ} p̂_j(x) - p̂_ỹ(x)`` (higher = more likely wrong).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = p.shape
    rows = np.arange(n)
    own = p[rows, labels]
    other = p.copy()
    other[rows, labels] = -np.inf
    margin = other.max(axis=1) - own
    is_issue = np.zeros(n, dtype=bool)
    counts = np.bincount(labels, minlength=k)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        if len(members) == 0:
            continue
        taken = np.zeros(len(members), dtype=bool)
        for j in range(k):
            num = int(round(n * joint[i, j])) if i != j else 0
            if num <= 0:
                continue
            gap = p[members, j] - own[members]
            gap[taken] = -np.inf
            order = np.argsort(-gap, kind="stable")[:num]
            taken[order] = True
        # never mark a whole class as wrong
        if taken.sum() >= counts[i]:
            keep = np.argmin(margin[members])
            taken[keep] = False
        is_issue[members[taken]] = True
    # a label the model itself predicts is never an issue (as in the paper)
    is_issue &= margin > 0
    return is_issue, margin


def noise_posterior(probabilities, labels, transition, return_share=False):
    """Probability that each given label is wrong, by Bayes' rule.

    Under class-conditional noise ``p(ỹ = i | y* = j) = T[j][i]``, with the
    out-of-sample probabilities ``p̂(x)`` standing in for the true-class
    posterior:

        p(y* = ỹ | x, ỹ) = p̂_ỹ(x) T[ỹ][ỹ] / sum_j p̂_j(x) T[j][ỹ]

    Returns ``(p_wrong float (n,), likely_true int (n,))``: the probability
    that the label is wrong and the most probable *other* true class
    (``argmax_{j != ỹ} p̂_j(x) T[j][ỹ]``: the model's belief weighted by how
    often class j is mislabeled as ỹ). With ``return_share=True`` a third
    array: that class's share of the posterior of the other classes.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    t = np.asarray(transition, dtype=np.float64)
    rows = np.arange(len(labels))
    joint_given = p * t[:, labels].T  # (n, k): p̂_j(x) T[j][ỹ]
    total = joint_given.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_clean = np.where(total > 0, joint_given[rows, labels] / total, 1.0)
    others = joint_given.copy()
    others[rows, labels] = -np.inf
    # a pair never seen in the joint still gets the model's own ranking
    others = np.where(np.isfinite(others), others + 1e-9 * p, others)
    likely_true = others.argmax(axis=1)
    p_wrong = np.clip(1.0 - p_clean, 0.0, 1.0)
    if not return_share:
        return p_wrong, likely_true
    other_total = np.where(np.isfinite(others), others, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(other_total > 0, others[rows, likely_true] / other_total, 0.0)
    return p_wrong, likely_true, share


def anchor_noise_rates(probabilities, labels, quantile=0.05, min_anchors_total=500):
    """Per-class noise estimated on each class's most confident samples.

    The rates of :func:`anchor_transition` (see there). Returns ``(rate,
    per_class)``: the estimated overall noise rate (weighted by the given
    class frequencies) and an array (k,) of per-class rates.
    """
    found = anchor_transition(probabilities, labels, quantile, min_anchors_total)
    return found["rate"], found["per_class"]


def _g_statistic(counts, rate):
    """Likelihood-ratio (G) statistic of anchor counts (rows = true class)
    against uniform noise: one rate ``rate``, errors spread evenly."""
    k = counts.shape[1]
    take = counts.sum(axis=1, keepdims=True)
    expected = np.where(np.eye(k, dtype=bool), take * (1.0 - rate), take * rate / max(k - 1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(counts / np.maximum(expected, 1e-300)), 0.0)
    return 2.0 * terms.sum(axis=-1).sum(axis=-1)


def uniform_noise_test(counts, seed=0, draws=None):
    """Monte Carlo p-value of "the noise is uniform" given anchor counts.

    H0: every class is mislabeled at the same rate and into every other class
    equally often (symmetric noise). The statistic is the G (likelihood
    ratio) statistic of the ``(k, k)`` anchor count table against H0; its
    null distribution is simulated (parametric bootstrap, ``draws`` tables)
    because the cells are far too sparse for the chi-square approximation
    at low noise. A small p-value means the noise has structure (some
    classes or class pairs more than others).
    """
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.shape[0]
    take = counts.sum(axis=1).astype(np.int64)
    rate = float(1.0 - np.trace(counts) / max(counts.sum(), 1.0))
    if k < 2 or rate <= 0.0:
        return 1.0
    observed = _g_statistic(counts, rate)
    draws = draws or max(20, min(200, 20000 // k))
    rng = np.random.default_rng(seed)
    null = np.zeros((draws, k, k))
    for j in range(k):
        row = np.full(k, rate / (k - 1))
        row[j] = 1.0 - rate
        null[:, j, :] = rng.multinomial(take[j], row, size=draws)
    null_rates = 1.0 - np.trace(null, axis1=1, axis2=2) / np.maximum(null.sum(axis=(1, 2)), 1.0)
    simulated = np.array([_g_statistic(null[b], max(null_rates[b], 1e-12)) for b in range(draws)])
    return float((1 + (simulated >= observed).sum()) / (draws + 1))


def anchor_transition(probabilities, labels, quantile=0.05, min_anchors_total=500, smoothing=1.0,
                      uniform_alpha=0.05, seed=0, shape_anchors=200):
    """The noise transition matrix from anchor points (Patrini et al. 2017).

    For class ``j``, the ``quantile * n / k`` samples (raised towards
    ``min_anchors_total / k``, at most half of an average class) with the highest
    ``p̂_j(x)`` are taken as *anchors*: almost surely of true class ``j``
    ("Making deep neural networks robust to label noise: a loss correction
    approach", CVPR 2017). Because ``p̂`` is out of sample, their own given
    labels did not pick them, so the given labels of class ``j``'s anchors
    estimate row ``j`` of ``T[j][i] = p(ỹ = i | y* = j)``: how often, and
    into which classes, class ``j`` is mislabeled. The classifier's confusion
    on hard samples is not counted (unlike Confident Learning's confident
    joint), but noise that mostly hits hard samples (as human noise does) is
    underestimated.

    Two small-count corrections, both standard:

    - each row's noise rate ``ρ_j`` is shrunk towards the mean rate by
      empirical Bayes (a beta-binomial method of moments: the spread of the
      ``ρ_j`` beyond binomial sampling noise decides how much a class keeps
      its own rate), so 0 of 250 anchors wrong does not make a class
      "never mislabeled";
    - the off-diagonal counts get ``smoothing`` (1: add-one, Laplace) pseudo
      counts per cell, so an unseen confusion is unlikely, not impossible;
      with few errors the row stays close to uniform noise.

    Then a test (:func:`uniform_noise_test`) of whether the anchors show
    any structure at all: when uniform noise is not rejected at level
    ``uniform_alpha`` (0: never test), ``transition`` is the uniform-noise
    matrix (one rate, errors spread evenly). The per-class differences are
    then sampling noise, and using them would reorder samples across
    classes at random; under uniform noise the Bayes posterior of a wrong
    label ranks exactly as the self-confidence does.

    The structure must also **replicate in the more confident half** of
    every class's anchors (the same test, same level, on those alone).
    Label noise that does not depend on the image (the class-conditional
    model the posterior assumes) is as frequent, and into the same classes,
    among the most confident anchors as among the deeper ones; the
    classifier's own confusion (a true dog among the anchors of "cat") is
    not: it concentrates in the deeper anchors and along the pairs the
    classifier confuses. A transition built from that confusion ranks
    *worse* than the self-confidence (it excuses exactly the disagreements
    uniform noise produces most visibly). Measured on CIFAR-10 with 1%
    uniform noise: at 50,000 samples the whole anchor set rejected
    uniform noise (p = 0.005) while its more confident half did not
    (p = 0.35), and the posterior lost 0.003 AUROC to the self-confidence;
    with 3% class-pair noise both halves reject (p = 0.005).

    The depth: ``quantile`` (5%) of an average class, raised on small sets
    so that there are ``min_anchors_total`` (500) anchors in all (the pooled
    rate's sampling error depends on the total; 50 per class with 10
    classes). A larger floor reaches deep into the classes on small sets
    (the former 200 per class: 40% of a class at 5,000 samples), where most
    "errors" among the anchors are the classifier's confusion: on the
    unanimous CIFAR-10N subsets (1% wrong) it estimated 4.8% at 5,000
    samples and 1.9% at 10,000, 50 per class 1.3% and 0.7%. The price: a
    rate from fewer anchors varies more (Gaussian blobs, 6,000 samples, 5
    classes, 2.8% wrong: 1.6% from 100 per class, 2.9% from 200). Once a
    structure is confirmed, its shape (the off-diagonal share of each
    class pair) is read from up to ``shape_anchors`` (200) per class: at
    40% class-pair noise on 6,000 Fashion-MNIST images the shape from 50
    per class, mostly add-one smoothing, cost the posterior 0.007 AUROC.

    Returns:
        a dict with ``transition`` float (k, k) (rows = true class, sum 1),
        ``per_class`` (k,) shrunk rates ``ρ_j``, ``raw_per_class`` (k,),
        ``rate`` (overall, weighted by the given class frequencies),
        ``num_anchors`` per class, ``shrinkage`` (0 = own rates, 1 = all
        equal), ``uniform_p_value`` (all anchors), ``uniform_p_value_top``
        (their more confident half) and ``uniform`` (the uniform-noise
        matrix was used: one of the two p-values ``>= uniform_alpha``)
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = p.shape
    # ``quantile`` of an average class, raised towards ``min_anchors_total``
    # in all (fewer make the rate a coin toss) but never beyond half of an
    # average class: deeper anchors are no longer sure of their class
    per_class_size = n / max(k, 1)
    take = max(int(round(quantile * per_class_size)), int(np.ceil(min_anchors_total / max(k, 1))))
    take = max(1, min(take, int(per_class_size // 2), n))
    # the shape of a confirmed structure (into which classes) needs more
    # errors than its rate: up to ``shape_anchors`` per class
    deep = max(take, min(int(shape_anchors), int(per_class_size // 2), n))
    counts = np.zeros((k, k))
    top_counts = np.zeros((k, k))  # the more confident half of each class's anchors
    shape_counts = np.zeros((k, k))
    for j in range(k):
        top = np.argpartition(-p[:, j], deep - 1)[:deep]
        top = top[np.argsort(-p[top, j], kind="stable")]
        counts[j] = np.bincount(labels[top[:take]], minlength=k)
        top_counts[j] = np.bincount(labels[top[: max(take // 2, 1)]], minlength=k)
        shape_counts[j] = np.bincount(labels[top], minlength=k)
    raw = 1.0 - np.diag(counts) / take
    mean = float(raw.mean())
    sampling = max(mean * (1.0 - mean) / take, 1e-12)
    between = max(float(raw.var()) - sampling, 0.0)
    shrinkage = sampling / (sampling + between)
    rates = shrinkage * mean + (1.0 - shrinkage) * raw
    transition = np.zeros((k, k))
    for j in range(k):
        off = shape_counts[j] + smoothing
        off[j] = 0.0
        transition[j] = off / off.sum() * rates[j] if k > 1 else 0.0
        transition[j, j] = 1.0 - rates[j]
    prior = np.bincount(labels, minlength=k) / max(n, 1)
    overall = float((prior * rates).sum())
    p_value = p_top = 0.0
    if uniform_alpha > 0:
        p_value = uniform_noise_test(counts, seed=seed)
        p_top = uniform_noise_test(top_counts, seed=seed) if p_value < uniform_alpha else 1.0
    uniform = uniform_alpha > 0 and max(p_value, p_top) >= uniform_alpha and k > 1
    if uniform or overall <= 0.0:
        # a rate of 0 would make every posterior 0 and erase the ranking:
        # half an error among all anchors keeps the self-confidence's order
        floor = 0.5 / max(take * k, 1)
        transition = np.full((k, k), max(overall, floor) / max(k - 1, 1))
        np.fill_diagonal(transition, 1.0 - max(overall, floor))
    return dict(
        transition=transition,
        per_class=rates,
        raw_per_class=raw,
        rate=overall,
        num_anchors=int(take),
        shrinkage=float(shrinkage),
        uniform_p_value=float(p_value),
        uniform_p_value_top=float(p_top),
        uniform=bool(uniform),
    )


def shift_to_mean(p_wrong, target_mean, tol=1e-6):
    """Shifts probabilities on the logit scale so their mean is ``target_mean``.

    A monotone recalibration (ranking unchanged): makes the per-sample
    probabilities add up to the estimated number of wrong labels.
    """
    p = np.clip(np.asarray(p_wrong, dtype=np.float64), 1e-9, 1 - 1e-9)
    target = float(np.clip(target_mean, 1e-9, 1 - 1e-9))
    logit = np.log(p) - np.log1p(-p)
    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        mean = np.mean(1.0 / (1.0 + np.exp(-(logit + mid))))
        if abs(mean - target) < tol:
            break
        if mean < target:
            lo = mid
        else:
            hi = mid
    return 1.0 / (1.0 + np.exp(-(logit + mid)))
