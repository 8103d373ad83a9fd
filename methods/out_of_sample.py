"""Out-of-sample class probabilities by cross-fitting.

Every label-noise method that asks "does the model believe this label?"
needs the model's probabilities for a sample *from a model that never saw
that sample's label* — otherwise the model has memorised the wrong label and
believes it (Northcutt et al., "Confident Learning", JAIR 2021, section 4:
"out-of-sample predicted probabilities via cross-validation").

Cross-fitting: the samples are split into ``folds`` stratified folds; for
each fold a classifier is trained on the other folds (with the given, noisy
labels as targets) and predicts the held-out fold. Every sample gets exactly
one prediction from a model that did not train on it. ``rounds > 1`` repeats
this with different shuffles and averages the probabilities (less variance
from one unlucky split).

Classifiers on embeddings (``model=``):

- ``"logreg"`` (default): multinomial logistic regression on standardised
  embeddings, full-batch L-BFGS in torch (deterministic; 50,000 x 256, 5
  folds: seconds on 2 cores). The ridge penalty ``l2`` is chosen on the
  first fold from a small grid by held-out log loss unless given.
- ``"mlp"``: one hidden layer (ReLU), Adam, mini-batches, weight decay.
- ``"knn"``: the label distribution of the ``k`` nearest neighbours
  (cosine), add-one smoothed; out-of-sample by construction (a sample is not
  its own neighbour), so it needs no folds.
- ``"ensemble"``: the log-linear pool of ``logreg`` and ``knn``
  (``p ∝ p_logreg^a * p_knn^b``), with ``a, b`` fitted by log loss on the
  given labels — a two-parameter stack that cannot memorise labels.

Finally the probabilities are *temperature-scaled* (one scalar fitted by log
loss on the given labels, Guo et al. 2017), so that on average a
probability of 0.7 for the given label means the given label agrees with the
model 70% of the time. One parameter cannot memorise a label.

The classifiers are Dupes' (:mod:`methods.dupes`), so both methods train
the same models. No FiftyOne here; torch and faiss are imported inside the
functions.
"""

import numpy as np

MODELS = ("logreg", "mlp", "knn", "ensemble")

#: ridge penalties tried for ``logreg`` when ``l2`` is not given
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)


def out_of_sample_probabilities(
    embeddings,
    labels,
    num_classes=None,
    folds=5,
    rounds=1,
    model="logreg",
    l2=None,
    k=10,
    calibrate=True,
    seed=51,
    device=None,
    progress=None,
    neighbours=None,
):
    """Cross-fitted class probabilities of every sample.

    Args:
        embeddings: float array (n, d)
        labels: int array (n,) of the given (possibly noisy) class indices
        num_classes (None): number of classes (default ``labels.max() + 1``)
        folds (5): cross-fitting folds (Confident Learning's default)
        rounds (1): repetitions with different fold shuffles, averaged
        model ("logreg"): one of :data:`MODELS`
        l2 (None): ridge penalty of ``logreg``/weight decay of ``mlp``; None
            picks ``logreg``'s from :data:`L2_GRID` on the first fold
        k (10): neighbours of ``knn`` / ``ensemble``
        calibrate (True): temperature-scale the result (see module doc)
        seed (51): fold shuffles and initialisations; same seed, same result
        device (None): torch device (default CUDA when available, else CPU)
        progress (None): optional ``callable(fraction, message)``
        neighbours (None): int array (n, >= k) of each row's cosine nearest
            neighbours (self excluded, nearest first), e.g. shared with kNN
            disagreement; None computes them (``knn``/``ensemble`` only)

    Returns:
        a dict with
        - ``probabilities``: float32 (n, num_classes), rows sum to 1; row i
          is from models that never saw sample i's label
        - ``self_confidence``: float32 (n,), the probability of the given
          label (higher = cleaner)
        - ``predicted``: int64 (n,), the most probable class
        - ``accuracy``: share of samples whose given label is the predicted
          class (agreement with the noisy labels, out of sample)
        - ``log_loss``: mean held-out log loss of the given labels
        - ``l2``, ``temperature``, ``pool_weights`` (ensemble): what was used
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if model not in MODELS:
        raise ValueError("model must be one of %s, got %r" % (MODELS, model))
    if embeddings is None or len(embeddings) != n:
        raise ValueError("need one embedding per label (%d labels)" % n)
    num_classes = int(num_classes or labels.max() + 1)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError("labels must lie in [0, %d)" % num_classes)
    if folds < 2:
        raise ValueError("folds must be >= 2, got %d" % folds)
    counts = np.bincount(labels, minlength=num_classes)
    x = _standardise(np.asarray(embeddings, dtype=np.float32))
    report = progress or (lambda fraction, message="": None)
    info = {}

    if model == "knn":
        log_p = np.log(knn_probabilities(x, labels, num_classes, k, neighbours))
    else:
        log_p = np.zeros((n, num_classes), dtype=np.float64)
        fit = _fit_predict_mlp if model == "mlp" else _fit_predict_logreg
        if model in ("logreg", "ensemble") and l2 is None:
            l2 = _choose_l2(x, labels, num_classes, folds, seed, device)
        l2 = 1e-4 if l2 is None else float(l2)
        info["l2"] = l2
        steps = folds * rounds
        for r in range(rounds):
            assignment = stratified_folds(labels, folds, np.random.default_rng([int(seed), r]))
            for f in range(folds):
                report((r * folds + f) / steps, "round %d/%d, fold %d/%d" % (r + 1, rounds, f + 1, folds))
                test = assignment == f
                if not test.any():
                    continue
                train_seed = int(np.random.default_rng([int(seed), r, f]).integers(2**31))
                log_p[test] += fit(
                    x[~test], labels[~test], x[test], num_classes,
                    l2=l2, seed=train_seed, device=device,
                )
        log_p /= rounds
        if model == "ensemble":
            log_knn = np.log(knn_probabilities(x, labels, num_classes, k, neighbours))
            weights = _fit_pool([log_p, log_knn], labels)
            info["pool_weights"] = {"logreg": weights[0], "knn": weights[1]}
            log_p = weights[0] * log_p + weights[1] * log_knn
    log_p = _log_softmax(log_p)
    temperature = 1.0
    if calibrate:
        temperature = _fit_temperature(log_p, labels)
        log_p = _log_softmax(log_p / temperature)
    report(1.0, "out-of-sample probabilities done")
    probs = np.exp(log_p).astype(np.float32)
    rows = np.arange(n)
    predicted = probs.argmax(axis=1)
    info.update(
        probabilities=probs,
        self_confidence=probs[rows, labels],
        predicted=predicted,
        accuracy=float((predicted == labels).mean()),
        log_loss=float(-log_p[rows, labels].mean()),
        temperature=float(temperature),
        classes_present=int((counts > 0).sum()),
    )
    return info


def stratified_folds(labels, folds, rng):
    """Fold number (0 .. folds-1) of every sample, each class spread evenly."""
    labels = np.asarray(labels)
    assignment = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        # continue the fold rotation across classes so small classes do not
        # all land in fold 0
        offset = int(rng.integers(folds))
        assignment[members] = (np.arange(len(members)) + offset) % folds
    return assignment


def knn_probabilities(x, labels, num_classes, k=10, neighbours=None):
    """Add-one smoothed label distribution of each sample's k neighbours
    (``neighbours``: precomputed indices, see
    :func:`out_of_sample_probabilities`)."""
    if neighbours is None:
        from .neighbours import cosine_neighbours

        neighbours = cosine_neighbours(x, k)
    neighbours = np.asarray(neighbours)[:, :k]
    n = len(labels)
    votes = np.zeros((n, num_classes), dtype=np.float64)
    np.add.at(votes, (np.repeat(np.arange(n), neighbours.shape[1]), labels[neighbours].ravel()), 1.0)
    votes += 1.0 / num_classes  # add-one (in total) smoothing: no zero probability
    return votes / votes.sum(axis=1, keepdims=True)


def _standardise(x):
    # unsupervised (no label enters), so one global standardisation leaks nothing
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    return (x - mean) / std


def _fit_predict_logreg(x_train, y_train, x_test, num_classes, l2=1e-3, seed=0,
                        device=None, max_iter=100):
    """Held-out log-probabilities of a multinomial logistic regression
    (Dupes' full-batch L-BFGS classifier, :mod:`methods.dupes`)."""
    from .dupes import fit_predict_probabilities

    probs = fit_predict_probabilities(
        "logreg", x_train, y_train, x_test, num_classes,
        seed=seed, device=device, l2=l2, max_iter=max_iter,
    )
    return np.log(np.clip(probs.astype(np.float64), 1e-12, None))


def _fit_predict_mlp(x_train, y_train, x_test, num_classes, l2=1e-4, seed=0,
                     device=None):
    """Held-out log-probabilities of Dupes' one-hidden-layer MLP."""
    from .dupes import fit_predict_probabilities

    probs = fit_predict_probabilities(
        "mlp", x_train, y_train, x_test, num_classes,
        seed=seed, device=device, weight_decay=l2, epochs=20,
    )
    return np.log(np.clip(probs.astype(np.float64), 1e-12, None))


def _choose_l2(x, labels, num_classes, folds, seed, device):
    """The :data:`L2_GRID` penalty with the lowest held-out log loss (fold 0)."""
    assignment = stratified_folds(labels, folds, np.random.default_rng([int(seed), 0]))
    test = assignment == 0
    rows = np.arange(int(test.sum()))
    best, best_loss = L2_GRID[0], np.inf
    for l2 in L2_GRID:
        log_p = _fit_predict_logreg(x[~test], labels[~test], x[test], num_classes,
                                    l2=l2, device=device, max_iter=60)
        loss = -log_p[rows, labels[test]].mean()
        if loss < best_loss:
            best, best_loss = l2, loss
    return best


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _mean_nll(log_p, labels):
    return -_log_softmax(log_p)[np.arange(len(labels)), labels].mean()


def _fit_temperature(log_p, labels):
    """The temperature T minimising the log loss of softmax(log_p / T)."""
    from scipy.optimize import minimize_scalar

    fit = minimize_scalar(
        lambda log_t: _mean_nll(log_p / np.exp(log_t), labels),
        bounds=(np.log(0.05), np.log(20.0)), method="bounded",
    )
    return float(np.exp(fit.x))


def _fit_pool(log_ps, labels):
    """Non-negative exponents of a log-linear pool, by log loss."""
    from scipy.optimize import minimize

    def loss(w):
        return _mean_nll(sum(wi * lp for wi, lp in zip(w, log_ps)), labels)

    fit = minimize(loss, np.ones(len(log_ps)), method="L-BFGS-B",
                   bounds=[(0.0, None)] * len(log_ps))
    return [float(w) for w in fit.x]
