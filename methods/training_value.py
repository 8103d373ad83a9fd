"""Training-ValueNet (Smyth, Kangin & Mitchell, ICDL 2019) on feature arrays.

The training value of a sample is the expected immediate improvement in
validation loss caused by one vanilla-SGD step (batch size 1) on that sample,
at a random time step of training a small classifier from scratch on the
features. A negative value means training on the sample hurts a clean
validation set, which is what a mislabeled sample does.

Steps (see :func:`training_value`):

1. Monte Carlo estimation: a random subset of training samples per class
   (default 1000) and of the clean validation samples per class (default 100)
   is drawn once. Over ``episodes`` (default 100) independent episodes a small
   MLP classifier (features -> ``hidden_units`` ReLU -> softmax) is trained
   from scratch on the subset, in a fresh random order, with batch size 1,
   vanilla SGD (lr 0.001, no momentum, no weight decay) for ``mc_epochs``
   passes. After every step the improvement of the mean validation
   cross-entropy (before minus after the step) is recorded for the sample
   just trained on.
2. Direct estimate: the mean of a sample's recorded improvements.
3. One Training-ValueNet per class: an MLP regressor (features -> 100 ReLU ->
   dropout 0.5 -> 1, Adam, mean absolute error, batch 32, 10% early-stopping
   split) fit on the direct estimates of that class's subset samples.
4. Every sample is given the prediction of its own class's regressor.

Speed. A literal port (:func:`monte_carlo_literal`, kept as the reference)
runs one episode at a time and re-evaluates the whole network on the whole
validation set after every step: ``O(n_val * (d*h + h*K))`` per step. The
fast path (:func:`monte_carlo_estimates`) computes exactly the same numbers
differently:

- episodes are a batch dimension: every weight tensor has a leading episode
  axis and one step of ``E`` episodes is a handful of ``bmm``/``baddbmm``
  calls (float32);
- a batch-1 SGD step changes the first layer by a rank-1 matrix
  ``-lr * delta x^T``, so the validation pre-activations
  ``A = V W1^T + b1`` change by ``-lr * (V x + 1) delta^T``. ``V x + 1`` is a
  column of the validation/training Gram matrix, computed once (one GEMM)
  for the whole run. Keeping ``A`` up to date therefore costs
  ``O(n_val * h)`` instead of ``O(n_val * d * h)``; only the second layer
  (``O(n_val * h * K)``) is evaluated in full. ``A`` is recomputed from the
  weights every ``resync_every`` steps so float32 round-off cannot drift.
  With ``hidden_units=0`` (softmax regression) the logits themselves get the
  rank-1 update and a step costs ``O(n_val * K)``.

The estimated quantity is unchanged; the unit tests check fast == literal.

Layout: steps 1-2 (subsets, episodes, both Monte Carlo paths) live in
:mod:`methods.training_value_mc`, steps 3-4 (the regressors, the feature
normaliser) in :mod:`methods.value_network`; this module runs them
(:func:`training_value`) and re-exports their public functions.

No fiftyone import here; torch is imported inside the functions.
"""

import time

import numpy as np

from .arrays import choose_device
from .training_value_mc import (
    draw_subsets,
    monte_carlo_estimates,
    monte_carlo_literal,
)
from .value_network import fit_value_regressors, normaliser, predict_training_value

__all__ = [
    "DEFAULTS",
    "fit_value_regressors",
    "monte_carlo_estimates",
    "monte_carlo_literal",
    "normaliser",
    "predict_training_value",
    "training_value",
]

#: the defaults of the paper's implementation (see docs/training_value.md)
DEFAULTS = dict(
    episodes=100,
    train_per_class=1000,
    val_per_class=100,
    mc_epochs=1,
    lr=0.001,
    hidden_units=100,
    regressor_hidden=100,
    regressor_dropout=0.5,
    regressor_epochs=1000,
    regressor_patience=100,
    regressor_batch_size=32,
    regressor_lr=0.001,
    regressor_val_split=0.1,
)


def training_value(
    features,
    labels,
    val_mask,
    num_classes=None,
    episodes=100,
    train_per_class=1000,
    val_per_class=100,
    mc_epochs=1,
    lr=0.001,
    hidden_units=100,
    regressor_hidden=100,
    regressor_dropout=0.5,
    regressor_epochs=1000,
    regressor_patience=100,
    regressor_batch_size=32,
    regressor_lr=0.001,
    regressor_val_split=0.1,
    standardize=True,
    episode_batch=25,
    seed=0,
    device=None,
    progress=None,
):
    """Predicts the training value of every sample (Training-ValueNet).

    Args:
        features: float array (n, d), one feature vector per sample
        labels: int array (n,) in ``[0, num_classes)``; for validation
            samples this is their verified (clean) label
        val_mask: bool array (n,), True for the clean validation samples
            (they are scored too, but never drawn as training samples)
        num_classes (None): K; default ``labels.max() + 1``
        episodes (100): Monte Carlo episodes M
        train_per_class (1000): training subset drawn per class
        val_per_class (100): validation samples used per class
        mc_epochs (1): passes over the subset per episode
        lr (0.001): SGD learning rate (batch 1, no momentum)
        hidden_units (100): hidden ReLU units of the MC classifier
            (0 = softmax regression)
        regressor_hidden (100), regressor_dropout (0.5): Training-ValueNet
            architecture (one hidden layer)
        regressor_epochs (1000), regressor_patience (100),
        regressor_batch_size (32), regressor_lr (0.001),
        regressor_val_split (0.1): regressor training (Adam, MAE loss,
            early stopping on the held-out split, best weights kept)
        standardize (True): centre the features and scale them globally so
            the mean squared norm equals d (keeps the geometry; makes
            lr 0.001 meaningful whatever the embedding's scale)
        episode_batch (25): episodes run together as one batch
        seed (0): same seed, same result
        device (None): torch device; default CUDA when available
        progress (None): ``progress(fraction, message)`` callable

    Returns:
        a dict with ``value`` (float32 (n,), the prediction, negative =
        likely mislabeled), ``direct_estimate`` (float32 (n,), NaN for
        samples not in the Monte Carlo subset), ``subset`` (indices of the
        training subset), ``val_indices`` (validation samples used),
        ``model`` (everything :func:`predict_training_value` needs: per-class
        regressor state dicts, feature normalisation, target scale) and
        ``stats`` (timings, regressor errors).
    """
    import torch

    report = progress or (lambda fraction, message="": None)
    x = np.ascontiguousarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    val_mask = np.asarray(val_mask, dtype=bool)
    n, d = x.shape
    k = int(num_classes if num_classes is not None else y.max() + 1)
    device = choose_device(device)
    started = time.time()

    mean, scale = normaliser(x, standardize)
    xs = (x - mean) / scale

    subset, val_indices = draw_subsets(
        y, val_mask, k, train_per_class, val_per_class, seed
    )
    missing = [c for c in range(k) if not np.any(y[subset] == c)]
    if missing:
        raise ValueError(
            "classes %s have no training sample outside the validation set"
            % missing
        )
    missing = [c for c in range(k) if not np.any(y[val_indices] == c)]
    if missing:
        raise ValueError("classes %s have no validation sample" % missing)

    report(0.02, "Monte Carlo: %d episodes" % episodes)

    def mc_progress(fraction, message=""):
        report(0.02 + 0.83 * fraction, message)

    estimates, counts = monte_carlo_estimates(
        xs[subset],
        y[subset],
        xs[val_indices],
        y[val_indices],
        k,
        episodes=episodes,
        mc_epochs=mc_epochs,
        lr=lr,
        hidden_units=hidden_units,
        seed=seed,
        episode_batch=episode_batch,
        device=device,
        progress=mc_progress,
    )
    mc_seconds = time.time() - started
    report(0.86, "training %d Training-ValueNets" % k)
    regressors, target_scale, reg_stats = fit_value_regressors(
        xs[subset],
        y[subset],
        estimates,
        k,
        hidden=regressor_hidden,
        dropout=regressor_dropout,
        epochs=regressor_epochs,
        patience=regressor_patience,
        batch_size=regressor_batch_size,
        lr=regressor_lr,
        val_split=regressor_val_split,
        seed=seed,
        device=device,
    )
    model = dict(
        regressors=regressors,
        feature_mean=mean,
        feature_scale=scale,
        target_scale=target_scale,
        hidden=regressor_hidden,
        num_classes=k,
    )
    report(0.95, "predicting training values")
    value = predict_training_value(model, x, y, device=device)
    direct = np.full(n, np.nan, dtype=np.float32)
    direct[subset] = estimates
    stats = dict(
        mc_seconds=mc_seconds,
        total_seconds=time.time() - started,
        subset_size=int(len(subset)),
        val_size=int(len(val_indices)),
        steps_per_episode=int(mc_epochs * len(subset)),
        mean_visits=float(counts.mean()),
        **reg_stats,
    )
    del torch
    return dict(
        value=value,
        direct_estimate=direct,
        subset=subset,
        val_indices=val_indices,
        model=model,
        stats=stats,
    )
