"""Cosine k-nearest neighbours with faiss, shared by the detectors.

Exact (brute force) search up to :data:`EXACT_MAX_ROWS` rows; above that an
inverted-file index (IVF) whose cost grows like ``n**1.5`` instead of
``n**2`` (1M rows: minutes instead of hours on 2 cores), at the price of
missing a few true neighbours (measured in ``benchmarks/bench_scale.py``).
"""

import math

import numpy as np

#: above this many rows :func:`cosine_neighbours` searches an IVF index by default
EXACT_MAX_ROWS = 200_000


def cosine_neighbours(features, k, batch_size=16384, exact=None, nprobe=32, seed=0):
    """The ``k`` nearest neighbours of every row by cosine similarity.

    The row itself is excluded; when exact duplicates make faiss return other
    rows before it, the last hit is dropped instead, so every row gets ``k``
    others.

    Args:
        features: float array (n, d); rows are L2-normalised internally
        k: neighbours per row (clipped to n - 1)
        batch_size (16384): query rows per faiss search, bounds memory
        exact (None): True: brute-force search; False: IVF index with
            ``round(2 * sqrt(n))`` lists trained by k-means on at most
            ``64 * lists`` rows; None: exact up to :data:`EXACT_MAX_ROWS` rows
        nprobe (32): IVF lists visited per query (more: slower, fewer misses)
        seed (0): IVF only: k-means initialisation and training subset

    Returns:
        int64 array (n, min(k, n - 1)) of row indices, nearest first

    Raises:
        ValueError: fewer than 2 rows or k < 1
    """
    import faiss

    x = np.ascontiguousarray(features, dtype=np.float32).copy()
    n = len(x)
    k = int(min(k, n - 1))
    if k < 1:
        raise ValueError("nearest neighbours need at least 2 samples and k >= 1 (got %d samples)" % n)
    faiss.normalize_L2(x)
    if exact is None:
        exact = n <= EXACT_MAX_ROWS
    if exact:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
    else:
        index = _ivf_index(x, seed)
        index.nprobe = min(int(nprobe), index.nlist)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        _, found = index.search(x[start:stop], k + 1)
        short = np.flatnonzero((found < 0).any(axis=1))
        if len(short):  # the probed lists held fewer than k + 1 rows: probe all
            index.nprobe, probe = index.nlist, index.nprobe
            found[short] = index.search(x[start + short], k + 1)[1]
            index.nprobe = probe
        is_self = found == np.arange(start, stop)[:, None]
        is_self[~is_self.any(axis=1), -1] = True
        out[start:stop] = found[~is_self].reshape(stop - start, k)
    return out


def _ivf_index(x, seed):
    import faiss

    n, d = x.shape
    nlist = max(1, min(int(round(2 * math.sqrt(n))), n // 39))
    train = x
    if n > 64 * nlist:
        rows = np.random.default_rng(seed).choice(n, 64 * nlist, replace=False)
        train = x[np.sort(rows)]
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = int(seed)
    index.train(train)
    index.add(x)
    return index
