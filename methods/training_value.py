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

No fiftyone import here; torch is imported inside the functions.
"""

import math
import time

import numpy as np

from .arrays import choose_device

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

    mean, scale = _normaliser(x, standardize)
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


def draw_subsets(y, val_mask, num_classes, train_per_class, val_per_class, seed):
    """The Monte Carlo training subset and validation subset (drawn once).

    Validation samples are never training samples. Returns two sorted index
    arrays.
    """
    rng = np.random.default_rng([int(seed), 7919])
    train, val = [], []
    for c in range(num_classes):
        members = np.flatnonzero((y == c) & ~val_mask)
        if len(members) > train_per_class:
            members = rng.choice(members, size=train_per_class, replace=False)
        train.append(members)
        members = np.flatnonzero((y == c) & val_mask)
        if len(members) > val_per_class:
            members = rng.choice(members, size=val_per_class, replace=False)
        val.append(members)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def episode_init(d, hidden, num_classes, seed, episode, num_train, mc_epochs):
    """Initial weights and visiting order of one episode (numpy, float32).

    Glorot-uniform weights and zero biases (Keras' defaults, as in the
    paper's implementation); the order is a fresh permutation per pass. Both
    the fast and the literal path use this, so they train identical
    networks for the same seed.
    """
    rng = np.random.default_rng([int(seed), int(episode), 104729])
    sizes = [d, hidden, num_classes] if hidden else [d, num_classes]
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=(fan_out, fan_in)).astype(np.float32)
        weights.append((w, np.zeros(fan_out, dtype=np.float32)))
    order = np.concatenate([rng.permutation(num_train) for _ in range(mc_epochs)])
    return weights, order


def monte_carlo_estimates(
    x_train,
    y_train,
    x_val,
    y_val,
    num_classes,
    episodes=100,
    mc_epochs=1,
    lr=0.001,
    hidden_units=100,
    seed=0,
    episode_batch=25,
    resync_every=1000,
    gram_max_bytes=1 << 30,
    device=None,
    progress=None,
    return_steps=False,
):
    """Direct training-value estimates, many episodes at once (fast path).

    Args:
        x_train, y_train: the Monte Carlo training subset (n_tr, d), (n_tr,)
        x_val, y_val: the clean validation subset
        num_classes: K
        episodes, mc_epochs, lr, hidden_units, seed: see :func:`training_value`
        episode_batch (25): episodes per batch (memory ~ 8 * E * n_val * h
            bytes)
        resync_every (1000): steps between exact recomputations of the
            validation activations
        gram_max_bytes (1 GiB): above this the validation x training Gram
            matrix is computed block-wise per group of steps instead of once
        device, progress: see :func:`training_value`
        return_steps (False): also return the (episodes, steps) improvements

    Returns:
        ``(estimates float32 (n_tr,), counts int (n_tr,))`` — the mean
        improvement in validation loss over the steps that trained on each
        sample, and how many steps that was; plus the per-step improvements
        when ``return_steps``.
    """
    import torch

    report = progress or (lambda fraction, message="": None)
    device = choose_device(device)
    dtype = torch.float32
    n_tr, d = x_train.shape
    n_v = len(x_val)
    k, h = int(num_classes), int(hidden_units)
    steps = mc_epochs * n_tr
    xt = torch.as_tensor(np.ascontiguousarray(x_train, np.float32), device=device)
    yt = torch.as_tensor(np.asarray(y_train, np.int64), device=device)
    xv = torch.as_tensor(np.ascontiguousarray(x_val, np.float32), device=device)
    yv = torch.as_tensor(np.asarray(y_val, np.int64), device=device)

    full_gram = n_tr * n_v * 4 <= gram_max_bytes
    if full_gram:  # row i: <x_val_j, x_train_i> + 1 (the bias "feature")
        gram_t = torch.addmm(
            torch.ones((), device=device, dtype=dtype), xt, xv.T
        )

    improvements = np.zeros((episodes, steps), dtype=np.float64)
    orders = np.zeros((episodes, steps), dtype=np.int64)
    total = episodes * steps
    done = 0
    for first in range(0, episodes, episode_batch):
        ep = list(range(first, min(first + episode_batch, episodes)))
        e = len(ep)
        inits = [
            episode_init(d, h, k, seed, i, n_tr, mc_epochs) for i in ep
        ]
        order = np.stack([o for _, o in inits])
        orders[first:first + e] = order
        order_t = torch.as_tensor(order, device=device)
        layers = [
            [
                torch.as_tensor(np.stack([w[j][0] for w, _ in inits]), device=device),
                torch.as_tensor(np.stack([w[j][1] for w, _ in inits]), device=device),
            ]
            for j in range(len(inits[0][0]))
        ]
        arange_e = torch.arange(e, device=device)
        yv_idx = yv.view(1, 1, n_v).expand(e, 1, n_v)
        impr = torch.zeros((e, steps), dtype=torch.float64, device=device)
        xv_t = xv.T.contiguous().expand(e, d, n_v)
        # validation activations are kept unit-major, (E, h, n_val): the
        # rank-1 update and the second-layer bmm then run over contiguous
        # rows of n_val values
        hidden_buf = torch.empty((e, h, n_v), device=device) if h else None

        def exact_first():
            w, b = layers[0]
            return torch.baddbmm(b.unsqueeze(2), w, xv_t)

        def val_ce(first_out):
            if h:
                torch.clamp(first_out, min=0.0, out=hidden_buf)
                w2, b2 = layers[1]
                z = torch.baddbmm(b2.unsqueeze(2), w2, hidden_buf)
            else:
                z = first_out
            return torch.logsumexp(z, dim=1) - z.gather(1, yv_idx).squeeze(1)

        first_out = exact_first()  # (E, h, n_v), or logits (E, K, n_v)
        ce_prev = val_ce(first_out)
        block = 256
        for t in range(steps):
            if t % block == 0 and not full_gram:
                cols = order_t[:, t:t + block]
                gram_block = torch.addmm(
                    torch.ones((), device=device, dtype=dtype),
                    xt[cols.reshape(-1)],
                    xv.T,
                ).view(e, -1, n_v)
            idx = order_t[:, t]
            x = xt[idx]  # (E, d)
            target = yt[idx]
            w1, b1 = layers[0]
            a = torch.baddbmm(b1.unsqueeze(2), w1, x.unsqueeze(2)).squeeze(2)
            if h:
                w2, b2 = layers[1]
                hid = torch.relu(a)
                z = torch.baddbmm(b2.unsqueeze(2), w2, hid.unsqueeze(2)).squeeze(2)
            else:
                z = a
            u = torch.softmax(z, dim=1)
            u[arange_e, target] -= 1.0  # d loss / d logits
            if h:
                delta = torch.bmm(u.unsqueeze(1), w2).squeeze(1) * (a > 0)
                w2.baddbmm_(u.unsqueeze(2), hid.unsqueeze(1), alpha=-lr)
                b2.sub_(u, alpha=lr)
            else:
                delta = u
            w1.baddbmm_(delta.unsqueeze(2), x.unsqueeze(1), alpha=-lr)
            b1.sub_(delta, alpha=lr)
            if (t + 1) % resync_every == 0:
                first_out = exact_first()
            else:
                g = gram_t[idx] if full_gram else gram_block[:, t % block]
                first_out.addcmul_(delta.unsqueeze(2), g.unsqueeze(1), value=-lr)
            ce = val_ce(first_out)
            impr[:, t] = (ce_prev - ce).to(torch.float64).mean(dim=1)
            ce_prev = ce
            done += e
            if t % 500 == 0:
                report(done / total, "Monte Carlo step %d/%d" % (done, total))
        improvements[first:first + e] = impr.cpu().numpy()

    sums = np.bincount(orders.ravel(), weights=improvements.ravel(), minlength=n_tr)
    counts = np.bincount(orders.ravel(), minlength=n_tr)
    estimates = (sums / np.maximum(counts, 1)).astype(np.float32)
    report(1.0, "Monte Carlo done")
    if return_steps:
        return estimates, counts, improvements
    return estimates, counts


def monte_carlo_literal(
    x_train,
    y_train,
    x_val,
    y_val,
    num_classes,
    episodes=100,
    mc_epochs=1,
    lr=0.001,
    hidden_units=100,
    seed=0,
    max_steps=None,
    return_steps=False,
):
    """The literal reference: one episode at a time, a plain PyTorch loop.

    Per step: forward the sample, ``loss.backward()``,
    ``torch.optim.SGD(lr)`` step, then the full validation loss. Same
    arguments and outputs as :func:`monte_carlo_estimates` (CPU, float32).
    ``max_steps`` truncates every episode (benchmarks time a prefix); the
    estimates then only cover the samples visited.
    """
    import torch
    import torch.nn.functional as F

    n_tr, d = x_train.shape
    k, h = int(num_classes), int(hidden_units)
    xt = torch.as_tensor(np.asarray(x_train, np.float32))
    yt = torch.as_tensor(np.asarray(y_train, np.int64))
    xv = torch.as_tensor(np.asarray(x_val, np.float32))
    yv = torch.as_tensor(np.asarray(y_val, np.int64))
    steps = mc_epochs * n_tr if max_steps is None else min(max_steps, mc_epochs * n_tr)
    improvements = np.zeros((episodes, steps))
    orders = np.zeros((episodes, steps), dtype=np.int64)
    for episode in range(episodes):
        weights, order = episode_init(d, h, k, seed, episode, n_tr, mc_epochs)
        modules = []
        for w, b in weights:
            linear = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(w))
                linear.bias.copy_(torch.from_numpy(b))
            modules += [linear, torch.nn.ReLU()]
        model = torch.nn.Sequential(*modules[:-1])
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0)
        with torch.no_grad():
            val_loss = F.cross_entropy(model(xv), yv).item()
        for t in range(steps):
            i = int(order[t])
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xt[i:i + 1]), yt[i:i + 1])
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                new_loss = F.cross_entropy(model(xv), yv).item()
            improvements[episode, t] = val_loss - new_loss
            orders[episode, t] = i
            val_loss = new_loss
    sums = np.bincount(orders.ravel(), weights=improvements.ravel(), minlength=n_tr)
    counts = np.bincount(orders.ravel(), minlength=n_tr)
    estimates = (sums / np.maximum(counts, 1)).astype(np.float32)
    if return_steps:
        return estimates, counts, improvements
    return estimates, counts


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


def _normaliser(x, standardize):
    if not standardize:
        return np.zeros(x.shape[1], np.float32), 1.0
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    sq = float(((x - mean) ** 2).sum(axis=1, dtype=np.float64).mean())
    scale = math.sqrt(sq / x.shape[1]) or 1.0
    return mean, scale
