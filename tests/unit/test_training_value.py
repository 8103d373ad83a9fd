"""Training-ValueNet on arrays: fast path == literal reference, regressors,
and negative values on injected label noise."""

import numpy as np
import pytest

from conftest import blobs
from methods.training_value import (
    fit_value_regressors,
    monte_carlo_estimates,
    monte_carlo_literal,
    predict_training_value,
    training_value,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is much faster (and not flaky) on a
    loaded 2-core machine."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _problem(seed=1, per_class=30, dim=8, num_classes=3):
    x, y, noisy = blobs(num_classes=num_classes, per_class=per_class, dim=dim, noise_rate=0.2, seed=seed)
    centres = np.stack([x[y == c].mean(0) for c in range(num_classes)])
    rng = np.random.default_rng(seed + 100)
    yv = np.repeat(np.arange(num_classes), 8)
    xv = centres[yv] + 0.35 * rng.normal(size=(len(yv), dim)) / np.sqrt(dim)
    return 3 * x, y, noisy, (3 * xv).astype(np.float32), yv


@pytest.mark.parametrize("hidden, mc_epochs", [(16, 1), (0, 2)])
def test_fast_equals_literal_same_seed(hidden, mc_epochs):
    x, y, noisy, xv, yv = _problem()
    kwargs = dict(episodes=3, hidden_units=hidden, seed=3, mc_epochs=mc_epochs, lr=0.01)
    fast, counts, fast_steps = monte_carlo_estimates(
        x, noisy, xv, yv, 3, episode_batch=3, resync_every=40, return_steps=True, **kwargs
    )
    lit, lit_counts, lit_steps = monte_carlo_literal(x, noisy, xv, yv, 3, return_steps=True, **kwargs)
    assert (counts == lit_counts).all() and counts.sum() == 3 * mc_epochs * len(x)
    # every single step's improvement agrees (float32 round-off only) ...
    scale = np.abs(lit_steps).mean()
    assert np.abs(fast_steps - lit_steps).max() < 2e-3 * scale + 1e-6
    # ... and so do the direct estimates
    assert np.abs(fast - lit).max() < 1e-3 * lit.std() + 1e-6
    # a different seed is a different estimate (the check is not vacuous)
    other, _ = monte_carlo_estimates(x, noisy, xv, yv, 3, episode_batch=3, **dict(kwargs, seed=4))
    assert np.abs(other - lit).max() > 0.05 * lit.std()


def test_blockwise_gram_matches_full_gram():
    x, y, noisy, xv, yv = _problem()
    kwargs = dict(episodes=4, hidden_units=8, seed=0, episode_batch=4)
    full, _ = monte_carlo_estimates(x, noisy, xv, yv, 3, **kwargs)
    block, _ = monte_carlo_estimates(x, noisy, xv, yv, 3, gram_max_bytes=0, **kwargs)
    np.testing.assert_allclose(full, block, atol=1e-3 * full.std())


def test_regressors_learn_a_function_per_class():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = np.repeat([0, 1], 300)
    # class 0: value = x0, class 1: value = -x1 (different functions)
    t = np.where(y == 0, x[:, 0], -x[:, 1]) * 1e-4
    states, scale, stats = fit_value_regressors(
        x, y, t, 2, hidden=32, dropout=0.1, epochs=150, patience=20, seed=0
    )
    model = dict(regressors=states, feature_mean=np.zeros(6), feature_scale=1.0, target_scale=scale, hidden=32)
    pred = predict_training_value(model, x, y)
    for c in (0, 1):
        r = np.corrcoef(pred[y == c], t[y == c])[0, 1]
        assert r > 0.9, (c, r)
    assert set(states[0]) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    assert len(stats["regressor_val_mae"]) == 2


def test_negative_values_concentrate_on_injected_noise():
    x, y, noisy = blobs(num_classes=3, per_class=120, dim=12, noise_rate=0.2, seed=5, spread=0.5)
    # first 20 per class (by true label) are the verified validation set
    val = np.zeros(len(y), bool)
    for c in range(3):
        val[np.flatnonzero(y == c)[:20]] = True
    labels = np.where(val, y, noisy)
    is_noisy = (labels != y) & ~val
    out = training_value(
        x, labels, val, episodes=6, train_per_class=60, val_per_class=20,
        hidden_units=16, regressor_hidden=32, regressor_epochs=150,
        regressor_patience=20, seed=0, device="cpu",
    )
    from sklearn.metrics import roc_auc_score

    value = out["value"]
    assert value.shape == (len(y),) and np.isfinite(value).all()
    auroc = roc_auc_score(is_noisy[~val], -value[~val])
    assert auroc > 0.85, auroc  # chance is 0.5
    direct = out["direct_estimate"]
    drawn = ~np.isnan(direct)
    assert drawn.sum() == 180 and not drawn[val].any()
    assert (direct[drawn & is_noisy] < 0).mean() > 0.7
    assert (direct[drawn & ~is_noisy & ~val] > 0).mean() > 0.7
    # samples never drawn are predicted by the regressors, also well
    assert roc_auc_score(is_noisy[~drawn & ~val], -value[~drawn & ~val]) > 0.8
    # deterministic for a seed
    again = training_value(
        x, labels, val, episodes=6, train_per_class=60, val_per_class=20,
        hidden_units=16, regressor_hidden=32, regressor_epochs=150,
        regressor_patience=20, seed=0, device="cpu",
    )
    np.testing.assert_array_equal(again["value"], value)
