"""Array helpers shared by the methods (numpy, and torch for the device).

One copy of each small operation the detectors repeat, so that they stay
numerically identical across the package:

- :func:`column_moments` / :func:`standardise`: per-column standardisation
  with float64 moments accumulated over row batches (no temporary of the size
  of ``x``), the one the linear models use (:mod:`methods.linear`,
  :mod:`methods.dupes`, :mod:`methods.out_of_sample`);
  :func:`standardise_columns` (moments of ``x`` itself) and
  :func:`standardise_split` (moments of a training half, applied to both
  halves) are the two ways it is applied;
- :func:`zscore`: the plain ``(x - mean) / max(std, floor)`` in ``x``'s own
  precision that SCAN uses after :func:`l2_normalise` (kept apart from
  :func:`standardise` because its float operations differ);
- :func:`l2_normalise`: rows scaled to unit Euclidean norm (a floor on the
  norm keeps zero rows finite). The faiss searches keep ``faiss.normalize_L2``
  (in place, on their own float32 copy) for speed;
- :func:`log_softmax`: row-wise, with the max subtracted first;
- :func:`most_probable_other`: per row, the most probable class other than
  the given label (first on ties);
- :func:`choose_device`: the torch device, CUDA when available else CPU.

No FiftyOne here; torch is imported inside :func:`choose_device`.
"""

import numpy as np

__all__ = [
    "choose_device",
    "column_moments",
    "l2_normalise",
    "log_softmax",
    "most_probable_other",
    "standardise",
    "standardise_columns",
    "standardise_split",
    "zscore",
]


def choose_device(device=None):
    """``device`` as a ``torch.device``; None (or "") = CUDA when available,
    else CPU. A name ("cpu", "cuda:1") or a ``torch.device`` passes through."""
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def column_moments(x, batch_size=65_536):
    """Mean and standard deviation of each column of ``x`` (float32 arrays).

    Two passes over row batches with float64 accumulators, so no temporary
    of the size of ``x`` is made (``x.std(axis=0)`` makes one: 1 GB for
    1M x 256 float32).
    """
    n = len(x)
    total = np.zeros(x.shape[1], np.float64)
    for start in range(0, n, batch_size):
        total += x[start:start + batch_size].sum(axis=0, dtype=np.float64)
    mean = total / max(n, 1)
    squares = np.zeros(x.shape[1], np.float64)
    for start in range(0, n, batch_size):
        centred = x[start:start + batch_size] - mean
        squares += np.einsum("ij,ij->j", centred, centred)
    return mean.astype(np.float32), np.sqrt(squares / max(n, 1)).astype(np.float32)


def standardise(x, mean, std, in_place=False):
    """``(x - mean) / (std + 1e-6)`` as float32; ``in_place=True`` overwrites
    ``x`` (when it is a float32 array the caller owns) instead of making one
    more copy."""
    out = x if in_place and isinstance(x, np.ndarray) and x.dtype == np.float32 else np.array(x, np.float32)
    out -= mean
    out /= std + np.float32(1e-6)
    return out


def standardise_columns(x, in_place=False):
    """``x`` standardised by its own column moments (:func:`column_moments`,
    :func:`standardise`). Unsupervised: no label enters, so one global
    standardisation before a cross-fit leaks nothing."""
    x = np.asarray(x)
    mean, std = column_moments(x)
    return standardise(x, mean, std, in_place=in_place)


def standardise_split(train, test, in_place=False):
    """``(train, test)`` both standardised by the moments of ``train``
    (``in_place=True`` overwrites them when they are float32 copies the
    caller owns)."""
    mean, std = column_moments(train)
    return standardise(train, mean, std, in_place=in_place), standardise(test, mean, std, in_place=in_place)


def zscore(x, floor=1e-6):
    """``(x - x.mean(0)) / max(x.std(0), floor)`` in the precision of ``x``
    (moments by numpy, one temporary of the size of ``x``)."""
    return (x - x.mean(0)) / np.maximum(x.std(0), floor)


def l2_normalise(x, eps=1e-12, dtype=None):
    """Rows (last axis) of ``x`` divided by their Euclidean norm, floored at
    ``eps``; ``dtype`` (None = keep) converts first."""
    x = np.asarray(x, dtype=dtype)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


def log_softmax(z):
    """Row-wise log-softmax of ``z`` (n, k), the row max subtracted first."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def most_probable_other(probabilities, labels, fill=-np.inf):
    """Per row, the most probable class other than the given label (the
    first such class on ties).

    The given class is set to ``fill`` before the argmax (rows whose label is
    outside ``[0, k)`` keep all classes). With ``fill=-inf`` (default) the
    given class is never returned; ``fill=0.0`` is the historical choice of
    :func:`methods.predictions.other_class_suggestion`, which differs only on
    a row whose other classes all have probability 0 (it returns class 0
    there, which may be the given one).

    Returns:
        int64 (n,)
    """
    others = np.array(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(others))
    has = (labels >= 0) & (labels < others.shape[1])
    others[rows[has], labels[has]] = fill
    return others.argmax(axis=1).astype(np.int64)
