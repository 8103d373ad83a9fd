"""Dupes: samples a classifier chronically assigns to one other class.

Background: "Dupes: Training Dataset Corrections via Iterative Trainings"
(WHOI plankton classifier tooling). One *round* splits every class 50:50 at
random (stratified), trains a classifier on half A and predicts half B, then
swaps, so every sample gets exactly one out-of-sample prediction per round.
After ``rounds`` rounds (paper: 10, each with a different split), a sample
predicted as the same other class ``c`` in at least ``threshold`` rounds
(paper: 10, 9 or 8) is a *dupe* whose label is probably ``c``.

Classifiers (``classifier=``):

- ``"logreg"`` (default): multinomial logistic regression on standardised
  embeddings, trained full batch with L-BFGS in torch. Chosen by
  ``benchmarks/bench_dupes.py`` (CIFAR-10N, 50k): same quality as
  scikit-learn's at 1/3 of the CPU time, and at the method's thresholds
  (8-10 of 10) a better precision/recall balance than the MLP at 1/5 of its
  CPU time (the MLP ranks slightly better and flags fewer, more precise
  samples)
- ``"sklearn_logreg"``: scikit-learn ``LogisticRegression`` (lbfgs), the
  reference implementation of the same model
- ``"mlp"``: one hidden layer (256, ReLU), Adam, mini-batches
- ``"cnn"``: fine-tunes a torchvision model (default resnet18) on the images
  (``filepaths=`` instead of embeddings); slow, meant for a GPU

No ``fiftyone`` import here; torch/sklearn are imported inside functions.
"""

import numpy as np

from .arrays import choose_device, standardise_split

__all__ = ["CLASSIFIERS", "count_dupes", "dupes", "fit_predict_probabilities", "split_halves"]

CLASSIFIERS = ("logreg", "sklearn_logreg", "mlp", "cnn")


def dupes(
    labels,
    embeddings=None,
    filepaths=None,
    num_classes=None,
    rounds=10,
    threshold=8,
    classifier="logreg",
    ignore=None,
    seed=51,
    device=None,
    progress=None,
    **classifier_options,
):
    """Counts, per sample and per other class, the rounds predicting that class.

    Args:
        labels: int array (n,) of class indices (the possibly noisy labels)
        embeddings: float array (n, d); needed unless ``classifier="cnn"``
        filepaths: image paths (n,); needed when ``classifier="cnn"``
        num_classes (None): number of classes (default ``labels.max() + 1``)
        rounds (10): number of 50:50 split rounds (2 trainings each)
        threshold (8): a sample is flagged when ``dupe_count >= threshold``
        classifier ("logreg"): one of :data:`CLASSIFIERS`
        ignore (None): bool array (n,): samples confirmed correct in an earlier
            review; still used for training and counted, never flagged
        seed (51): round ``r`` uses the split/initialisation seeds derived
            from ``(seed, r)``; same seed, same result
        device (None): torch device for the torch classifiers (default CUDA
            when available, else CPU)
        progress (None): optional ``callable(fraction, message)``
        **classifier_options: passed to the classifier, e.g. ``l2`` for
            ``logreg``; ``epochs``, ``hidden`` for ``mlp``; ``model``,
            ``weights``, ``epochs``, ``image_size``, ``batch_size``, ``lr``
            for ``cnn``

    Returns:
        a dict with
        - ``counts``: int array (n, num_classes): rounds in which the sample
          was predicted as each class (its own class included)
        - ``dupe_count``: int array (n,): max of ``counts`` over the other
          classes (0 .. rounds)
        - ``dupe_label``: int array (n,): that class (lowest index on ties),
          -1 when ``dupe_count == 0``
        - ``flagged``: bool array (n,): ``dupe_count >= threshold`` and not
          ignored
        - ``round_accuracy``: list of the out-of-sample accuracy (vs the given
          labels) of each round
        - ``probabilities``: float32 (n, num_classes), the mean over rounds of
          each sample's out-of-sample class probabilities (the same trainings,
          no extra cost; ``compute_noise_score`` pools them as evidence)
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if classifier not in CLASSIFIERS:
        raise ValueError("classifier must be one of %s, got %r" % (CLASSIFIERS, classifier))
    if rounds < 1:
        raise ValueError("rounds must be >= 1, got %d" % rounds)
    if n < 2:
        raise ValueError("Dupes needs at least 2 samples, got %d" % n)
    num_classes = int(num_classes or labels.max() + 1)
    if classifier == "cnn":
        if filepaths is None or len(filepaths) != n:
            raise ValueError("classifier='cnn' needs one file path per sample")
        features = list(filepaths)
    else:
        if embeddings is None or len(embeddings) != n:
            raise ValueError("classifier=%r needs one embedding per sample" % classifier)
        features = np.asarray(embeddings, dtype=np.float32)
    fit_predict = _CLASSIFIER_FUNCS[classifier]

    counts = np.zeros((n, num_classes), dtype=np.int64)
    probability_sum = np.zeros((n, num_classes), dtype=np.float64)
    accuracy = []
    steps = 2 * rounds
    for r in range(rounds):
        rng = np.random.default_rng([int(seed), r])
        in_a = split_halves(labels, rng)
        halves = (np.flatnonzero(in_a), np.flatnonzero(~in_a))
        predicted = np.full(n, -1, dtype=np.int64)
        for h, (train, test) in enumerate((halves, halves[::-1])):
            if progress is not None:
                progress((2 * r + h) / steps, "round %d/%d, training %d" % (r + 1, rounds, h + 1))
            if len(test) == 0:
                continue
            train_seed = int(np.random.default_rng([int(seed), r, h]).integers(2**31))
            probs = fit_predict(
                _take(features, train),
                labels[train],
                _take(features, test),
                num_classes,
                seed=train_seed,
                device=device,
                **classifier_options,
            )
            probability_sum[test] += probs
            predicted[test] = probs.argmax(axis=1)
        done = predicted >= 0
        counts[np.flatnonzero(done), predicted[done]] += 1
        accuracy.append(float((predicted[done] == labels[done]).mean()))
    if progress is not None:
        progress(1.0, "counted %d rounds" % rounds)
    result = count_dupes(counts, labels, threshold, ignore)
    result["round_accuracy"] = accuracy
    result["probabilities"] = (probability_sum / rounds).astype(np.float32)
    return result


def count_dupes(counts, labels, threshold=8, ignore=None):
    """Dupe count/label/flag from per-class prediction counts.

    Args:
        counts: int array (n, num_classes) of rounds predicting each class
        labels: int array (n,) of the samples' own classes
        threshold (8): flag when the count of one other class reaches it
        ignore (None): bool array (n,) of samples never to flag

    Returns:
        dict with ``counts`` (unchanged), ``dupe_count``, ``dupe_label``
        (-1 when the count is 0) and ``flagged`` (see :func:`dupes`)
    """
    counts = np.asarray(counts, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    other = counts.copy()
    other[np.arange(len(labels)), labels] = -1
    dupe_label = other.argmax(axis=1)  # first maximum: lowest class index
    dupe_count = np.maximum(other[np.arange(len(labels)), dupe_label], 0)
    dupe_label = np.where(dupe_count > 0, dupe_label, -1)
    flagged = dupe_count >= threshold
    if ignore is not None:
        flagged &= ~np.asarray(ignore, dtype=bool)
    return {
        "counts": counts,
        "dupe_count": dupe_count,
        "dupe_label": dupe_label,
        "flagged": flagged,
    }


def split_halves(labels, rng):
    """Stratified random 50:50 split: a bool mask of half A.

    Every class is shuffled and its first ``ceil(m / 2)`` or ``floor(m / 2)``
    members (chosen at random for odd ``m``) go to half A.
    """
    labels = np.asarray(labels)
    in_a = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        take = len(members) // 2 + (len(members) % 2) * int(rng.integers(2))
        in_a[members[:take]] = True
    return in_a


def _take(features, rows):
    # a fresh copy of the rows: the classifiers standardise both halves in
    # place (methods.arrays.standardise_split by the training half's moments)
    if isinstance(features, list):
        return [features[i] for i in rows]
    return features[rows]


def _fit_predict_logreg(x_train, y_train, x_test, num_classes, seed=0, device=None,
                        l2=1e-2, max_iter=50):
    """Multinomial logistic regression, full-batch L-BFGS (deterministic;
    :func:`methods.linear.fit_logreg`)."""
    from .linear import fit_logreg, logreg_log_proba

    x_train, x_test = standardise_split(x_train, x_test, in_place=True)
    params = fit_logreg(x_train, y_train, num_classes, l2=l2, max_iter=max_iter, device=device)
    return np.exp(logreg_log_proba(x_test, params)).astype(np.float32)


def _fit_predict_sklearn_logreg(x_train, y_train, x_test, num_classes, seed=0,
                                device=None, C=0.1, max_iter=200):
    """scikit-learn LogisticRegression (lbfgs, multinomial) on standardised x."""
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = standardise_split(x_train, x_test, in_place=True)
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    model.fit(x_train, y_train)
    probs = np.zeros((len(x_test), num_classes), dtype=np.float32)
    probs[:, model.classes_] = model.predict_proba(x_test)
    return probs


def _fit_predict_mlp(x_train, y_train, x_test, num_classes, seed=0, device=None,
                     hidden=256, epochs=15, batch_size=256, lr=1e-3,
                     weight_decay=1e-4, sample_weight=None):
    """One-hidden-layer MLP trained with Adam on mini-batches
    (``sample_weight``: per-sample weights of the log loss)."""
    import torch

    dev = choose_device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train, x_test = standardise_split(x_train, x_test, in_place=True)
    x = torch.as_tensor(x_train)
    y = torch.as_tensor(y_train)
    sw = None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight, np.float32))
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(hidden, num_classes),
    ).to(dev)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(x[rows].to(dev)), y[rows].to(dev),
                reduction="mean" if sw is None else "none",
            )
            if sw is not None:
                batch_w = sw[rows].to(dev)
                loss = (loss * batch_w).sum() / batch_w.sum().clamp_min(1e-12)
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(x_test, device=dev))
    return torch.softmax(logits, dim=1).cpu().numpy()


def _fit_predict_cnn(paths_train, y_train, paths_test, num_classes, seed=0,
                     device=None, model="resnet18", weights="DEFAULT", epochs=3,
                     image_size=224, batch_size=64, lr=1e-3, num_workers=0):
    """Fine-tunes a torchvision classifier on image files, predicts others.

    ``weights``: ``"DEFAULT"`` (torchvision's ImageNet weights, downloaded
    once), a local ``state_dict`` path (loaded with ``weights_only=True``; the
    classifier layer is replaced anyway), or ``None`` (random init).
    """
    import torch
    import torchvision

    from PIL import Image

    dev = choose_device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    builder = getattr(torchvision.models, model)
    if weights == "DEFAULT":
        net = builder(weights=torchvision.models.get_model_weights(model).DEFAULT)
    else:
        net = builder(weights=None)
        if weights:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    _replace_head(net, num_classes)
    net = net.to(dev)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def load(path):
        with Image.open(path) as img:
            img = img.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            pixels = torch.as_tensor(np.asarray(img, dtype=np.float32) / 255.0)
        return (pixels.permute(2, 0, 1) - mean) / std

    class Files(torch.utils.data.Dataset):
        def __init__(self, paths, targets, flip):
            self.paths, self.targets, self.flip = paths, targets, flip

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, i):
            x = load(self.paths[i])
            if self.flip and torch.rand(1).item() < 0.5:
                x = x.flip(2)
            return x, int(self.targets[i])

    train_loader = torch.utils.data.DataLoader(
        Files(paths_train, y_train, True), batch_size=batch_size, shuffle=True,
        generator=generator, num_workers=num_workers,
    )
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    net.train()
    for _ in range(epochs):
        for x, y in train_loader:
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x.to(dev)), y.to(dev))
            loss.backward()
            optimiser.step()
    net.eval()
    test_loader = torch.utils.data.DataLoader(
        Files(paths_test, np.zeros(len(paths_test), np.int64), False),
        batch_size=batch_size, shuffle=False, num_workers=num_workers,
    )
    predicted = []
    with torch.no_grad():
        for x, _ in test_loader:
            predicted.append(torch.softmax(net(x.to(dev)), dim=1).cpu().numpy())
    return np.concatenate(predicted)


def _replace_head(net, num_classes):
    import torch

    if hasattr(net, "fc"):
        net.fc = torch.nn.Linear(net.fc.in_features, num_classes)
    elif hasattr(net, "classifier"):
        last = net.classifier[-1]
        net.classifier[-1] = torch.nn.Linear(last.in_features, num_classes)
    else:
        raise ValueError("Cannot replace the classifier layer of this model")


def fit_predict_probabilities(classifier, train, y_train, test, num_classes, **options):
    """Trains one of :data:`CLASSIFIERS` on ``train`` and returns the class
    probabilities (float32, (len(test), num_classes)) of ``test``; shared
    with :mod:`methods.out_of_sample`. Embedding arrays ``train`` and
    ``test`` are standardised in place (1M rows: 1 GB less memory): pass
    row selections (``x[rows]`` copies), not arrays you keep."""
    return _CLASSIFIER_FUNCS[classifier](train, y_train, test, num_classes, **options)


_CLASSIFIER_FUNCS = {
    "logreg": _fit_predict_logreg,
    "sklearn_logreg": _fit_predict_sklearn_logreg,
    "mlp": _fit_predict_mlp,
    "cnn": _fit_predict_cnn,
}
