"""Out-of-sample class probabilities by cross-fitting, re-weighted once.

Every label-noise method that asks "does the model believe this label?"
needs the model's probabilities for a sample *from a model that never saw
that sample's label*: otherwise the model has memorised the wrong label and
believes it (Northcutt et al., "Confident Learning", JAIR 2021, section 4:
"out-of-sample predicted probabilities via cross-validation").

**Cross-fitting.** The samples are split into ``folds`` stratified folds;
for each fold a classifier is trained on the other folds (with the given,
noisy labels as targets) and predicts the held-out fold, so every sample
gets exactly one prediction from a model that did not train on it.
``rounds > 1`` repeats this with other shuffles and averages the
log-probabilities (less variance from one unlucky split).

**Classifiers** (``model=``):

- ``"ensemble"`` (default): logistic regression and kNN label votes, pooled
  log-linearly (``p ∝ p_logreg^a · p_knn^b``, ``a, b >= 0`` fitted by the
  log loss of the given labels: a two-parameter stack that cannot memorise
  labels). The two err differently (a global linear boundary vs local
  neighbourhoods), so the pool ranks label errors better than either.
- ``"logreg"``: multinomial logistic regression on standardised embeddings
  (:mod:`methods.linear`, full-batch L-BFGS, deterministic); the ridge
  penalty ``l2`` is picked on the first fold from :data:`L2_GRID` by
  held-out log loss unless given.
- ``"mlp"``: one hidden layer (ReLU), Adam, mini-batches (slower; an option
  for embeddings where a linear boundary is too weak).
- ``"knn"``: the add-one smoothed label distribution of the ``k`` nearest
  neighbours (cosine similarity of the embeddings); out of sample by
  construction (a sample is not its own neighbour), so it needs no folds.
  ``k`` is picked from :data:`K_GRID` by the log loss of the given labels
  unless given.

**Re-weighting** (``reweight=1``, the default): noisy labels pull a
classifier towards them, which hides exactly the errors we look for. After
the first pass every sample gets the weight ``1 - p(wrong)``, its label's
probability of being right as the consensus would estimate it from this pass
without verdicts (:func:`methods.noise_estimate.model_wrong_probability`),
and the classifiers are fitted again, on the same folds, with those sample
weights (weighted log loss; weighted kNN votes). Likely mislabeled samples
then barely teach the model their wrong label: the training-on-cleaned-data
step of Confident Learning, done softly so that no threshold is needed.
(Weighting by the raw self-confidence ``p̂(ỹ | x)`` instead would also
down-weight the many hard but correct samples of a weak embedding, which
costs precision at low noise.) Human verdicts (``known``) override the
weights: a label verified right always counts fully, one verified wrong
never. The held-out sample's own label still never enters its own
prediction.

**Calibration.** The final probabilities are temperature-scaled (one scalar
fitted by log loss on the given labels, Guo et al. 2017), so that a
probability of 0.7 for the given label means the given label agrees with the
model 70% of the time. One parameter cannot memorise a label.

No FiftyOne here; torch and faiss are imported inside the functions.
"""

import numpy as np

from .arrays import log_softmax, standardise_columns
from .pooling import log_linear_pool

__all__ = [
    "K_GRID",
    "L2_GRID",
    "MODELS",
    "choose_k",
    "knn_probabilities",
    "out_of_sample_probabilities",
    "stratified_folds",
]

MODELS = ("ensemble", "logreg", "mlp", "knn")

#: ridge penalties tried for ``logreg`` when ``l2`` is not given
L2_GRID = (1e-1, 1e-2, 1e-3, 1e-4)

#: neighbour counts tried for the kNN votes when ``k`` is not given
K_GRID = (10, 20, 40)


def out_of_sample_probabilities(
    embeddings,
    labels,
    num_classes=None,
    folds=5,
    rounds=1,
    model="ensemble",
    l2=None,
    k=None,
    reweight=1,
    calibrate=True,
    seed=51,
    device=None,
    progress=None,
    neighbours=None,
    known=None,
    overwrite_embeddings=False,
):
    """Cross-fitted class probabilities of every sample (see module doc).

    Args:
        embeddings: float array (n, d)
        labels: int array (n,) of the given (possibly noisy) class indices
        num_classes (None): number of classes (default ``labels.max() + 1``)
        folds (5): cross-fitting folds (Confident Learning's default)
        rounds (1): repetitions with different fold shuffles, averaged
        model ("ensemble"): one of :data:`MODELS`
        l2 (None): ridge penalty of ``logreg``/weight decay of ``mlp``; None
            picks ``logreg``'s from :data:`L2_GRID` on the first fold
        k (None): neighbours of the kNN votes; None picks from :data:`K_GRID`
        reweight (1): extra passes fitted with the previous pass's
            probability of each sample's own label as its weight (0: none)
        calibrate (True): temperature-scale the result
        seed (51): fold shuffles and initialisations; same seed, same result
        device (None): torch device (default CUDA when available, else CPU)
        progress (None): optional ``callable(fraction, message)``
        neighbours (None): int array (n, >= k) of each row's cosine nearest
            neighbours (self excluded, nearest first), e.g. shared with kNN
            disagreement; None computes them (``knn``/``ensemble`` only)
        known (None): int array (n,) of human verdicts on the labels as
            given: 0 = verified right (trained on with full weight in every
            pass), 1 = verified wrong (never trained on), -1 = unknown. A
            verdict still never enters its own sample's prediction.
        overwrite_embeddings (False): standardise a float32 ``embeddings``
            array in place instead of in a copy (1M x 256: 1 GB less memory;
            the caller must not need the values afterwards)

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
        - ``l2``, ``k``, ``temperature``, ``pool_weights`` (ensemble),
          ``passes`` (log loss and accuracy after each pass): what was used
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
    if reweight < 0:
        raise ValueError("reweight must be >= 0, got %d" % reweight)
    report = progress or (lambda fraction, message="": None)
    rows = np.arange(n)
    info = {}
    assignments = [
        stratified_folds(labels, folds, np.random.default_rng([int(seed), r]))
        for r in range(rounds)
    ]
    use_fits = model in ("logreg", "ensemble", "mlp")
    use_knn = model in ("knn", "ensemble")
    passes = 1 + int(reweight)
    fit_steps = passes * folds * rounds if use_fits else 0
    done = [0]

    def step(message):
        report(done[0] / max(fit_steps + 2, 1), message)
        done[0] += 1

    if use_knn:
        step("nearest neighbours")
        if neighbours is None:
            from .neighbours import cosine_neighbours

            # on the embeddings as given (before standardising): the graph
            # kNN disagreement and SCAN search too, so a pipeline computes it once
            neighbours = cosine_neighbours(
                embeddings, min(max(K_GRID) if k is None else int(k), n - 1)
            )
        neighbours = np.asarray(neighbours)
        k = choose_k(labels, neighbours, num_classes) if k is None else min(int(k), neighbours.shape[1])
        info["k"] = int(k)
    x = standardise_columns(embeddings, in_place=overwrite_embeddings)
    if model in ("logreg", "ensemble"):
        if l2 is None:
            step("choosing the ridge penalty")
            l2 = _choose_l2(x, labels, num_classes, assignments[0], device)
        info["l2"] = float(l2)
    elif model == "mlp":
        info["l2"] = l2 = 1e-4 if l2 is None else float(l2)

    fixed = None
    if known is not None and (np.asarray(known) >= 0).any():
        known = np.asarray(known)
        fixed = np.where(known == 0, 1.0, np.where(known == 1, 0.0, np.nan))
        info["num_known"] = int((known >= 0).sum())
    weights = None if fixed is None else np.where(np.isnan(fixed), 1.0, fixed)
    warm = {}
    info["passes"] = []
    for p in range(passes):
        sources = {}
        if use_fits:
            sources[model if model != "ensemble" else "logreg"] = _cross_fit(
                x, labels, num_classes, assignments, model, l2, weights, warm, seed, device,
                lambda m, p=p: step("pass %d/%d, %s" % (p + 1, passes, m)),
            )
        if use_knn:
            sources["knn"] = np.log(knn_probabilities(None, labels, num_classes, k, neighbours, weights))
        log_p, pool_weights = log_linear_pool(sources, labels)
        if len(sources) > 1:
            info["pool_weights"] = pool_weights
        temperature = _fit_temperature(log_p, labels) if calibrate else 1.0
        log_p = log_softmax(log_p / temperature)
        if p + 1 < passes:
            from .noise_estimate import model_wrong_probability

            p_wrong, _ = model_wrong_probability(np.exp(log_p), labels)
            weights = 1.0 - p_wrong
            if fixed is not None:
                weights = np.where(np.isnan(fixed), weights, fixed)
        info["passes"].append(dict(
            log_loss=float(-log_p[rows, labels].mean()),
            accuracy=float((log_p.argmax(axis=1) == labels).mean()),
        ))
    report(1.0, "out-of-sample probabilities done")
    probs = np.exp(log_p).astype(np.float32)
    predicted = probs.argmax(axis=1)
    counts = np.bincount(labels, minlength=num_classes)
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


def knn_probabilities(x, labels, num_classes, k=10, neighbours=None, weights=None):
    """Smoothed (weighted) label distribution of each sample's k neighbours.

    Args:
        x: float array (n, d); only used when ``neighbours`` is None
        labels: int array (n,)
        num_classes: number of classes
        k (10): neighbours that vote
        neighbours (None): precomputed int (n, >= k) neighbour indices
        weights (None): float (n,) vote weight of each sample as a neighbour

    Returns:
        float (n, num_classes): votes plus one vote spread over the classes
        (no zero probability), normalised
    """
    if neighbours is None:
        from .neighbours import cosine_neighbours

        neighbours = cosine_neighbours(x, k)
    neighbours = np.asarray(neighbours)[:, :k]
    labels = np.asarray(labels)
    n = len(labels)
    vote = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    votes = np.zeros((n, num_classes), dtype=np.float64)
    np.add.at(
        votes,
        (np.repeat(np.arange(n), neighbours.shape[1]), labels[neighbours].ravel()),
        vote[neighbours].ravel(),
    )
    votes += 1.0 / num_classes  # one vote in total, spread: no zero probability
    return votes / votes.sum(axis=1, keepdims=True)


def choose_k(labels, neighbours, num_classes, grid=K_GRID):
    """The ``k`` of :data:`K_GRID` (capped by the neighbours available)
    whose votes give the given labels the lowest log loss. Votes are out of
    sample (no sample votes for itself), so this cannot reward memorising."""
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    available = np.asarray(neighbours).shape[1]
    candidates = sorted({min(int(k), available) for k in grid})
    losses = {
        k: -np.log(knn_probabilities(None, labels, num_classes, k, neighbours)[rows, labels]).mean()
        for k in candidates
    }
    return min(losses, key=losses.get)


def _cross_fit(x, labels, num_classes, assignments, model, l2, weights, warm, seed,
               device, step):
    """Held-out log-probabilities of ``model`` averaged over the rounds.

    ``warm`` maps (round, fold) to the previous pass's logistic-regression
    parameters and is updated, so a re-weighted pass starts from them.
    """
    log_p = np.zeros((len(labels), num_classes), dtype=np.float64)
    folds = int(assignments[0].max()) + 1
    for r, assignment in enumerate(assignments):
        for f in range(folds):
            step("round %d/%d, fold %d/%d" % (r + 1, len(assignments), f + 1, folds))
            test = assignment == f
            if not test.any():
                continue
            train = ~test
            w = None if weights is None else weights[train]
            if model == "mlp":
                from .dupes import fit_predict_probabilities

                probs = fit_predict_probabilities(
                    "mlp", x[train], labels[train], x[test], num_classes,
                    seed=int(np.random.default_rng([int(seed), r, f]).integers(2**31)),
                    device=device, weight_decay=l2, epochs=20, sample_weight=w,
                )
                log_p[test] += np.log(np.clip(probs.astype(np.float64), 1e-12, None))
                continue
            from .linear import fit_logreg, logreg_log_proba

            params = fit_logreg(
                x[train], labels[train], num_classes, l2=l2, sample_weight=w,
                init=warm.get((r, f)), max_iter=100 if (r, f) not in warm else 50,
                device=device,
            )
            warm[(r, f)] = params
            log_p[test] += logreg_log_proba(x[test], params)
    return log_p / len(assignments)


def _choose_l2(x, labels, num_classes, assignment, device):
    """The :data:`L2_GRID` penalty with the lowest held-out log loss on fold 0
    (walked from strong to weak, each fit warm-started from the last)."""
    from .linear import fit_logreg, logreg_log_proba

    test = assignment == 0
    rows = np.arange(int(test.sum()))
    best, best_loss, params = L2_GRID[0], np.inf, None
    for l2 in L2_GRID:
        params = fit_logreg(x[~test], labels[~test], num_classes, l2=l2, max_iter=40,
                            init=params, device=device)
        loss = -logreg_log_proba(x[test], params)[rows, labels[test]].mean()
        if loss < best_loss:
            best, best_loss = l2, loss
    return best


def _mean_nll(log_p, labels):
    return -log_softmax(log_p)[np.arange(len(labels)), labels].mean()


def _fit_temperature(log_p, labels):
    """The temperature T minimising the log loss of softmax(log_p / T)."""
    from scipy.optimize import minimize_scalar

    fit = minimize_scalar(
        lambda log_t: _mean_nll(log_p / np.exp(log_t), labels),
        bounds=(np.log(0.05), np.log(20.0)), method="bounded",
    )
    return float(np.exp(fit.x))
