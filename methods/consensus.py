"""Consensus of several label-noise detectors: one score, one suggestion.

Every detector of the plugin writes its own evidence on a different scale:
``knn_disagreement`` is a fraction (higher = noisier), ``training_value`` a
signed value (higher = cleaner), ``cleannet_similarity`` a cosine
(higher = cleaner), ``dupe_count`` a count, ``corrected_label`` and
``scan_label`` a predicted class with a confidence. This module puts them on
one scale and combines them:

1. *Orientation*: each input is turned so that higher = more likely
   mislabeled (scores that say "cleaner" are negated; a predicted class
   becomes a signed confidence, see :func:`label_agreement_score`).
2. *Rank normalisation* (:func:`normalise`): within the samples of each
   given class, the oriented score is replaced by its rank, scaled to [0, 1]
   (ties share their average rank), so scales, offsets and class-dependent
   biases of the detectors disappear. Pure per-class ranks also erase which
   classes are noisier (on CIFAR-10N this costs ~0.007 AUROC), so the
   default ``blend`` averages the per-class rank with the global rank;
   ``per_class`` and ``global`` are available, and ``auto`` picks the mode
   that best separates the verified samples when there are some.
3. *Weights*: with verified samples (some known mislabeled, some known
   correct), a logistic regression with non-negative weights on the
   normalised scores learns how much each detector is worth
   (:func:`learn_weights`); otherwise every input gets the same weight.
4. ``noise_score`` = weighted mean of the available normalised scores of a
   sample (a missing input is left out of that sample's mean), in [0, 1].
5. ``suggested_label`` = weighted vote of the inputs that propose a class,
   each vote weighted by the input's weight times its own confidence; the
   suggestion's confidence is the winner's share of the votes.
6. This rank consensus is the ``score_mode="rank"`` option of
   ``compute_noise_score`` and the way inputs without class probabilities
   (Training-ValueNet, CleanNet, custom scores) enter once verified samples
   can weigh them; the default score is the calibrated probability of
   :mod:`methods.noise_estimate`.

No FiftyOne here: plain numpy arrays in, arrays out (scipy, for the bounded
fit, is imported only when weights are learned).
"""

import numpy as np

__all__ = [
    "NORMALISATIONS",
    "auroc",
    "cross_validated_auc",
    "label_agreement_score",
    "learn_weights",
    "noise_consensus",
    "normalise",
    "rank_normalise",
]


def label_agreement_score(given, predicted, confidence=None):
    """Turns a predicted class into an oriented noise score.

    Args:
        given: int array (n,), the sample's current label
        predicted: int array (n,), the detector's class (-1 = no prediction)
        confidence: float array (n,) or None (= 1), the detector's confidence
            (a probability or a margin); NaN counts as 1

    Returns:
        float array (n,): ``+confidence`` where the detector disagrees with
        the given label, ``-confidence`` where it agrees, NaN where it made no
        prediction. Higher = more likely mislabeled.
    """
    given = np.asarray(given)
    predicted = np.asarray(predicted)
    if confidence is None:
        conf = np.ones(len(given), dtype=np.float64)
    else:
        conf = np.asarray(confidence, dtype=np.float64).copy()
        conf[~np.isfinite(conf)] = 1.0
    score = np.where(predicted != given, conf, -conf).astype(np.float64)
    score[predicted < 0] = np.nan
    return score


def rank_normalise(score, labels, per_class=True):
    """Per-class rank of each score, scaled to [0, 1].

    Args:
        score: float array (n,), oriented (higher = noisier); NaN = missing
        labels: int array (n,), the class used for grouping
        per_class (True): rank within each class; False ranks all together

    Returns:
        float array (n,) in [0, 1] (NaN where ``score`` is NaN). The lowest
        score of a class maps to 0, the highest to 1, ties get their average
        rank; a class with a single scored sample gets 0.5.
    """
    score = np.asarray(score, dtype=np.float64)
    labels = np.asarray(labels)
    out = np.full(len(score), np.nan)
    groups = np.unique(labels) if per_class else [None]
    for c in groups:
        member = np.isfinite(score) if c is None else (labels == c) & np.isfinite(score)
        idx = np.flatnonzero(member)
        if len(idx) == 0:
            continue
        if len(idx) == 1:
            out[idx] = 0.5
            continue
        values, inverse, counts = np.unique(
            score[idx], return_inverse=True, return_counts=True
        )
        # average 0-based rank of each distinct value
        ends = np.cumsum(counts)
        avg_rank = ends - (counts + 1) / 2.0
        out[idx] = avg_rank[inverse] / (len(idx) - 1)
    return out


def learn_weights(features, is_noisy, seed=51, l2=1e-2):
    """Non-negative logistic-regression weights from verified samples.

    Args:
        features: float array (m, p) of normalised scores (no NaN)
        is_noisy: bool array (m,), True = verified mislabeled
        seed (51): seeds the starting point (the fit is deterministic for a
            seed)
        l2 (1e-2): ridge penalty on the weights

    Returns:
        (weights float array (p,) >= 0, bias float)
    """
    from scipy.optimize import minimize

    x = np.asarray(features, dtype=np.float64)
    y = np.where(np.asarray(is_noisy, dtype=bool), 1.0, -1.0)
    m, p = x.shape
    # balance the two classes so a few wrong samples are not drowned
    pos = y > 0
    sample_w = np.where(pos, 0.5 / max(pos.sum(), 1), 0.5 / max((~pos).sum(), 1))

    def loss(theta):
        w, b = theta[:p], theta[p]
        z = y * (x @ w + b)
        # log(1 + exp(-z)), stable
        lz = np.logaddexp(0.0, -z)
        sig = np.exp(-np.logaddexp(0.0, z))  # = 1 / (1 + exp(z))
        value = np.sum(sample_w * lz) + l2 * np.dot(w, w)
        g = -sample_w * y * sig
        grad = np.concatenate([x.T @ g + 2 * l2 * w, [g.sum()]])
        return value, grad

    rng = np.random.default_rng(seed)
    theta0 = np.concatenate([rng.uniform(0.5, 1.5, p), [-0.5 * p]])
    bounds = [(0.0, None)] * p + [(None, None)]
    fit = minimize(loss, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    return np.clip(fit.x[:p], 0.0, None), float(fit.x[p])


NORMALISATIONS = ("auto", "blend", "per_class", "global")


def normalise(score, labels, mode="blend"):
    """Rank-normalises one oriented score to [0, 1] (higher = noisier).

    Modes: ``per_class`` (:func:`rank_normalise` within each given class:
    only the ordering inside a class counts), ``global`` (one ranking of all
    samples: keeps which classes are noisier), ``blend`` (the mean of the
    two; the default, robust to class-dependent detector biases while keeping
    the class-level signal).
    """
    if mode == "per_class":
        return rank_normalise(score, labels, per_class=True)
    if mode == "global":
        return rank_normalise(score, labels, per_class=False)
    if mode == "blend":
        return 0.5 * (
            rank_normalise(score, labels, per_class=True)
            + rank_normalise(score, labels, per_class=False)
        )
    raise ValueError(
        "normalisation must be one of %s, got %r" % (NORMALISATIONS, mode)
    )


def noise_consensus(
    scores,
    labels,
    suggestions=None,
    verified=None,
    normalisation="auto",
    min_verified=10,
    seed=51,
    baseline=None,
    folds=5,
):
    """Combines oriented detector scores into one noise score and suggestion.

    Args:
        scores: dict input name -> float array (n,), already oriented so that
            higher = more likely mislabeled (see :func:`label_agreement_score`
            for predicted classes); NaN = no value for that sample
        labels: int array (n,), the given (possibly wrong) class of each
            sample
        suggestions (None): dict input name -> (int array (n,) of proposed
            classes, -1 = none; float array (n,) of confidences or None).
            The name should be one of ``scores`` (its vote is weighted by
            that input's weight); other names get the mean weight
        verified (None): int array (n,): 1 = verified mislabeled,
            0 = verified correct, -1 = not verified
        normalisation ("auto"): ``per_class``, ``global``, ``blend`` (see
            :func:`normalise`) or ``auto``: with enough verified samples, the
            one whose combined score separates them best, else ``blend``
        min_verified (10): weights are learned only with at least this many
            verified samples of each kind (mislabeled and correct), else equal
        seed (51): seed of the weight fit (and of the cross-validation folds)
        baseline (None): name of one input that is already a complete score
            (the consensus' calibrated probabilities). Learned weights are
            kept only if their ``folds``-fold cross-validated AUROC on the
            verified samples beats this input's AUROC on them; otherwise the
            baseline alone is returned (``baseline_kept``). In-sample, a
            weight fit always looks at least as good as any one input, so
            only held-out verdicts can say whether mixing in the weaker
            inputs helps
        folds (5): folds of that cross-validation

    Returns:
        a dict with
        - ``noise_score``: float array (n,) in [0, 1], higher = noisier (NaN
          for a sample no input scored)
        - ``normalised``: dict name -> the rank-normalised scores
        - ``normalisation``: the mode used
        - ``weights``: dict name -> weight (they sum to 1)
        - ``weights_source``: ``"verified ..."`` or ``"equal ..."`` (and why)
        - ``suggested_label``: int array (n,), -1 where no input proposed one
        - ``suggested_confidence``: float array (n,) in [0, 1]
        - ``verified_auc``: dict name -> AUROC of each normalised input and of
          ``noise_score`` on the verified samples (in-sample), when there are
          both kinds
    """
    if not scores:
        raise ValueError("noise_consensus needs at least one input score")
    if normalisation not in NORMALISATIONS:
        raise ValueError(
            "normalisation must be one of %s, got %r" % (NORMALISATIONS, normalisation)
        )
    labels = np.asarray(labels)
    n = len(labels)
    names = list(scores)
    raw = {}
    for name in names:
        s = np.asarray(scores[name], dtype=np.float64)
        if s.shape != (n,):
            raise ValueError(
                "score '%s' has shape %s, expected (%d,)" % (name, s.shape, n)
            )
        raw[name] = s

    num_wrong = num_right = 0
    can_learn = False
    if verified is not None:
        verified = np.asarray(verified)
        num_wrong = int((verified == 1).sum())
        num_right = int((verified == 0).sum())
        can_learn = num_wrong >= min_verified and num_right >= min_verified

    if normalisation == "auto":
        modes = ("blend", "per_class", "global") if can_learn else ("blend",)
    else:
        modes = (normalisation,)
    best = None
    for mode in modes:
        candidate = _combine(raw, names, labels, mode, verified, can_learn, seed)
        if best is None or candidate["auc"] > best["auc"] + 1e-9:
            best = candidate
    weights = best["weights"]
    if can_learn and best["learned"]:
        source = "verified (%d mislabeled, %d correct)" % (num_wrong, num_right)
    elif can_learn:
        source = "equal (no input separates the verified samples)"
    elif num_wrong or num_right:
        source = (
            "equal (only %d verified mislabeled and %d verified correct; "
            "%d of each are needed to learn weights)"
            % (num_wrong, num_right, min_verified)
        )
    else:
        source = "equal (no verified samples)"

    baseline_kept = False
    cv_auc = None
    if can_learn and best["learned"] and baseline in names:
        known = verified >= 0
        truth = verified[known] == 1
        matrix = np.column_stack([best["normalised"][k][known] for k in names])
        cv_auc = cross_validated_auc(matrix, truth, folds=folds, seed=seed)
        base = raw[baseline][known]
        ok = np.isfinite(base)
        base_auc = auroc(truth[ok], base[ok])
        if not cv_auc > base_auc:
            baseline_kept = True
            weights = np.array([1.0 if k == baseline else 0.0 for k in names])
            best = dict(best, noise=normalise(raw[baseline], labels, best["mode"]), weights=weights)
            source = (
                "%s alone: learned weights of every input reached a cross-validated AUROC "
                "of %.3f on the verified samples (%d mislabeled, %d correct), %s alone %.3f"
                % (baseline, cv_auc, num_wrong, num_right, baseline, base_auc)
            )

    verified_auc = {}
    if verified is not None and num_wrong and num_right:
        known = verified >= 0
        truth = verified[known] == 1
        for name in names:
            col = best["normalised"][name][known]
            ok = np.isfinite(col)
            verified_auc[name] = auroc(truth[ok], col[ok])
        col = best["noise"][known]
        ok = np.isfinite(col)
        verified_auc["noise_score"] = auroc(truth[ok], col[ok])

    suggested, confidence = _vote(suggestions or {}, dict(zip(names, weights)), n)
    return {
        "noise_score": best["noise"].astype(np.float32),
        "normalised": best["normalised"],
        "normalisation": best["mode"],
        "weights": {k: float(w) for k, w in zip(names, weights)},
        "weights_source": source,
        "suggested_label": suggested,
        "suggested_confidence": confidence,
        "verified_auc": verified_auc,
        "cross_validated_auc": cv_auc,
        "baseline_kept": baseline_kept,
    }


def cross_validated_auc(features, is_noisy, folds=5, seed=51):
    """AUROC of :func:`learn_weights`' combination on held-out verdicts.

    The verified samples are split into ``folds`` stratified folds; weights
    learned on the other folds score each held-out fold (the weighted mean
    of the normalised inputs, missing inputs left out), and the AUROC is
    taken over all held-out scores.

    Args:
        features: float array (m, p) of normalised scores (NaN = missing)
        is_noisy: bool array (m,), True = verified mislabeled
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(is_noisy, dtype=bool)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for cls in (True, False):
        rows = rng.permutation(np.flatnonzero(y == cls))
        fold[rows] = np.arange(len(rows)) % folds
    present = np.isfinite(x)
    filled = np.where(present, x, 0.5)
    out = np.full(len(y), np.nan)
    for f in range(folds):
        test = fold == f
        train = ~test
        if not test.any() or y[train].all() or not y[train].any():
            continue
        w, _ = learn_weights(filled[train], y[train], seed=seed)
        if w.sum() <= 1e-9:
            w = np.ones_like(w)
        out[test] = _weighted_mean(x[test], present[test], w)
    ok = np.isfinite(out)
    return auroc(y[ok], out[ok])


def _weighted_mean(matrix, present, weights):
    """Per row, the ``weights``-weighted mean of the present inputs (a
    missing input is left out); NaN where the present ones weigh 0."""
    wmat = np.where(present, weights[None, :], 0.0)
    total = wmat.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(present, matrix, 0.0) * wmat).sum(axis=1) / total


def _combine(raw, names, labels, mode, verified, can_learn, seed):
    normalised = {k: normalise(raw[k], labels, mode) for k in names}
    matrix = np.column_stack([normalised[k] for k in names])  # (n, p)
    present = np.isfinite(matrix)
    weights = np.ones(len(names)) / len(names)
    learned = False
    if can_learn:
        known = verified >= 0
        feats = np.where(present[known], matrix[known], 0.5)
        w, _ = learn_weights(feats, verified[known] == 1, seed=seed)
        if w.sum() > 1e-9:
            weights = w / w.sum()
            learned = True

    noise = _weighted_mean(matrix, present, weights)
    # a sample scored only by zero-weight inputs: plain mean of what it has
    fallback = ~np.isfinite(noise) & present.any(axis=1)
    if fallback.any():
        noise[fallback] = np.nanmean(
            np.where(present[fallback], matrix[fallback], np.nan), axis=1
        )
    noise[~present.any(axis=1)] = np.nan
    noise = np.clip(noise, 0.0, 1.0)

    auc = -np.inf
    if can_learn:
        known = verified >= 0
        ok = np.isfinite(noise[known])
        auc = auroc(verified[known][ok] == 1, noise[known][ok])
    return dict(
        mode=mode, normalised=normalised, weights=weights, learned=learned,
        noise=noise, auc=auc,
    )


def _vote(suggestions, weights, n):
    suggested = np.full(n, -1, dtype=np.int64)
    confidence = np.zeros(n, dtype=np.float32)
    if not suggestions:
        return suggested, confidence
    mean_w = float(np.mean(list(weights.values()))) if weights else 1.0
    num_classes = 1 + max(
        int(np.max(np.asarray(c), initial=-1)) for c, _ in suggestions.values()
    )
    if num_classes <= 0:
        return suggested, confidence
    votes = np.zeros((n, num_classes), dtype=np.float64)
    rows = np.arange(n)
    for name, (classes, conf) in suggestions.items():
        classes = np.asarray(classes, dtype=np.int64)
        if conf is None:
            conf = np.ones(n)
        conf = np.asarray(conf, dtype=np.float64)
        conf = np.where(np.isfinite(conf), np.clip(conf, 0.0, None), 1.0)
        # a proposal with zero confidence still counts a little
        strength = weights.get(name, mean_w) * np.maximum(conf, 1e-3)
        ok = classes >= 0
        np.add.at(votes, (rows[ok], classes[ok]), strength[ok])
    total = votes.sum(axis=1)
    has = total > 0
    suggested[has] = votes[has].argmax(axis=1)
    confidence[has] = (votes[has].max(axis=1) / total[has]).astype(np.float32)
    return suggested, confidence


def auroc(truth, score):
    """Mann-Whitney AUROC (ties count half); NaN if one class is absent."""
    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    pos, neg = truth.sum(), (~truth).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rank_normalise(score, np.zeros(len(score)), per_class=False)
    ranks = ranks * (len(score) - 1) + 1  # 1-based average ranks
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg))
