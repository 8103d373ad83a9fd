"""Training-ValueNet, steps 1-2: Monte Carlo estimates of training values.

A random subset of training samples per class (paper: 1000) and of clean
validation samples per class (paper: 100) is drawn once
(:func:`draw_subsets`). Over ``episodes`` (paper: 100) independent episodes
a small MLP classifier (features -> ``hidden_units`` (100) ReLU -> softmax,
Glorot-uniform init, :func:`episode_init`) is trained from scratch on the
subset, in a fresh random order, with batch size 1 and vanilla SGD (lr
0.001, no momentum, no weight decay) for ``mc_epochs`` (1) passes. After
every step the improvement of the mean validation cross-entropy (before
minus after the step) is recorded for the sample just trained on; a sample's
direct estimate is the mean of its recorded improvements.

Two implementations compute the same numbers (the unit tests check it):
:func:`monte_carlo_literal`, a literal port that re-evaluates the whole
network on the whole validation set after every step, and
:func:`monte_carlo_estimates`, the fast path: episodes are a batch dimension,
and a batch-1 SGD step changes the first layer by a rank-1 matrix, so the
validation pre-activations are updated through one precomputed
validation/training Gram matrix (details in :mod:`methods.training_value`).

No fiftyone import here; torch is imported inside the functions.
"""

import math

import numpy as np

from .arrays import choose_device

__all__ = ["draw_subsets", "episode_init", "monte_carlo_estimates", "monte_carlo_literal"]


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
