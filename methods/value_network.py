"""Training-ValueNet, steps 3-4: the per-class value regressors.

One Training-ValueNet per class (Smyth, Kangin & Mitchell, ICDL 2019): an
MLP regressor (features -> 100 ReLU -> dropout 0.5 -> 1) trained with Adam
(lr 0.001), mean absolute error, batch 32 and a 10% early-stopping split
(patience 100, at most 1000 epochs) on the Monte Carlo estimates of its
class's subset samples (:func:`fit_value_regressors`, the K regressors
trained side by side as a batch dimension). Every sample is then given the
prediction of its own class's regressor (:func:`predict_training_value`), on
features normalised by :func:`normaliser` (the mean and one global scale).

No fiftyone import here; torch is imported inside the functions.
"""

import math

import numpy as np

from .arrays import choose_device

__all__ = ["fit_value_regressors", "normaliser", "predict_training_value"]


def fit_value_regressors(
    x,
    y,
    targets,
    num_classes,
    hidden=100,
    dropout=0.5,
    epochs=1000,
    patience=100,
    batch_size=32,
    lr=0.001,
    val_split=0.1,
    seed=0,
    device=None,
):
    """Trains one Training-ValueNet (MLP regressor) per class, all at once.

    The K regressors are independent (disjoint parameters, per-parameter
    Adam), trained side by side as a batch dimension. Targets are divided by
    their standard deviation (sign-preserving) for conditioning.

    Returns:
        ``(state_dicts, target_scale, stats)``: a list of K
        ``nn.Sequential(Linear, ReLU, Dropout, Linear)`` state dicts (keys
        ``0.weight``, ``0.bias``, ``3.weight``, ``3.bias``), the scale to
        multiply predictions by, and per-class held-out MAE / epochs.
    """
    import torch

    device = choose_device(device)
    rng = np.random.default_rng([int(seed), 15485863])
    gen = torch.Generator().manual_seed(int(seed) + 1)
    targets = np.asarray(targets, dtype=np.float64)
    target_scale = float(targets.std()) or 1.0
    t_all = torch.as_tensor((targets / target_scale).astype(np.float32), device=device)
    x_all = torch.as_tensor(np.asarray(x, np.float32), device=device)
    k, d = int(num_classes), x_all.shape[1]

    train_idx, val_idx = [], []
    for c in range(k):
        members = rng.permutation(np.flatnonzero(y == c))
        n_val = int(round(val_split * len(members))) if len(members) >= 10 else 0
        val_idx.append(members[:n_val] if n_val else members)
        train_idx.append(members[n_val:])

    limit1 = math.sqrt(6.0 / (d + hidden))
    limit2 = math.sqrt(6.0 / (hidden + 1))
    w1 = ((torch.rand(k, hidden, d, generator=gen) * 2 - 1) * limit1).to(device)
    w2 = ((torch.rand(k, 1, hidden, generator=gen) * 2 - 1) * limit2).to(device)
    b1 = torch.zeros(k, hidden, device=device)
    b2 = torch.zeros(k, 1, device=device)
    params = [w1, b1, w2, b2]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)

    def forward(xb, train):
        hid = torch.relu(torch.baddbmm(b1.unsqueeze(1), xb, w1.transpose(1, 2)))
        if train and dropout > 0:
            keep = torch.rand(hid.shape, generator=gen).to(device) >= dropout
            hid = hid * keep / (1.0 - dropout)
        return torch.baddbmm(b2.unsqueeze(1), hid, w2.transpose(1, 2)).squeeze(2)

    # validation batches padded to equal length with a weight mask
    v_len = max(len(v) for v in val_idx)
    v_pad = np.stack([np.resize(v, v_len) for v in val_idx])
    v_w = np.stack([np.arange(v_len) < len(v) for v in val_idx]).astype(np.float32)
    v_pad_t = torch.as_tensor(v_pad, device=device)
    v_w_t = torch.as_tensor(v_w, device=device)

    def val_mae():
        with torch.no_grad():
            out = forward(x_all[v_pad_t], train=False)
            err = (out - t_all[v_pad_t]).abs() * v_w_t
            return (err.sum(1) / v_w_t.sum(1)).cpu().numpy()

    best = val_mae()
    best_state = [p.detach().clone() for p in params]
    best_epoch = np.zeros(k, dtype=np.int64)
    waited = np.zeros(k, dtype=np.int64)
    n_max = max(len(t) for t in train_idx)
    per_epoch = max(1, math.ceil(n_max / batch_size))
    epoch = 0
    for epoch in range(1, epochs + 1):
        perms = [rng.permutation(t) for t in train_idx]
        for j in range(per_epoch):
            pos = np.arange(j * batch_size, (j + 1) * batch_size)
            batch = np.stack([p[pos % len(p)] for p in perms])
            batch_t = torch.as_tensor(batch, device=device)
            out = forward(x_all[batch_t], train=True)
            loss = (out - t_all[batch_t]).abs().mean(1).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        current = val_mae()
        improved = current < best
        if improved.any():
            mask = torch.as_tensor(improved, device=device)
            with torch.no_grad():
                for saved, p in zip(best_state, params):
                    saved[mask] = p.detach()[mask]
            best = np.where(improved, current, best)
            best_epoch[improved] = epoch
        waited = np.where(improved, 0, waited + 1)
        if (waited >= patience).all():
            break
    states = [
        {
            "0.weight": best_state[0][c].cpu().clone(),
            "0.bias": best_state[1][c].cpu().clone(),
            "3.weight": best_state[2][c].cpu().clone(),
            "3.bias": best_state[3][c].cpu().clone(),
        }
        for c in range(k)
    ]
    stats = dict(
        regressor_val_mae=(best * target_scale).tolist(),
        regressor_best_epoch=best_epoch.tolist(),
        regressor_epochs_run=int(epoch),
    )
    return states, target_scale, stats


def predict_training_value(model, features, labels, device=None):
    """Scores samples with saved per-class Training-ValueNets.

    Args:
        model: the ``model`` dict of :func:`training_value` (or the same
            entries decoded from a run record)
        features: float array (n, d), raw (un-normalised) features
        labels: int array (n,) of class indices

    Returns:
        float32 array (n,) of predicted training values
    """
    import torch

    device = choose_device(device)
    x = (np.asarray(features, np.float32) - np.asarray(model["feature_mean"], np.float32)) / np.float32(
        model["feature_scale"]
    )
    y = np.asarray(labels, dtype=np.int64)
    out = np.zeros(len(x), dtype=np.float32)
    with torch.no_grad():
        for c, state in enumerate(model["regressors"]):
            rows = np.flatnonzero(y == c)
            if not len(rows):
                continue
            xb = torch.as_tensor(x[rows], device=device)
            w1, b1 = state["0.weight"].to(device), state["0.bias"].to(device)
            w2, b2 = state["3.weight"].to(device), state["3.bias"].to(device)
            pred = torch.relu(xb @ w1.T + b1) @ w2.T + b2
            out[rows] = pred.squeeze(1).cpu().numpy()
    return out * np.float32(model["target_scale"])


def normaliser(x, standardize):
    """``(mean, scale)`` with which features enter the networks as
    ``(x - mean) / scale``: the column means and one global scale (the root
    mean squared deviation over all columns; 1 if it is 0). ``standardize``
    False gives ``(0, 1)``."""
    if not standardize:
        return np.zeros(x.shape[1], np.float32), 1.0
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    sq = float(((x - mean) ** 2).sum(axis=1, dtype=np.float64).mean())
    scale = math.sqrt(sq / x.shape[1]) or 1.0
    return mean, scale
