"""Exact cosine k-nearest neighbours with faiss, shared by the detectors."""

import numpy as np


def cosine_neighbours(features, k, batch_size=16384):
    """The ``k`` nearest neighbours of every row by cosine similarity.

    The row itself is excluded; when exact duplicates make faiss return other
    rows before it, the last hit is dropped instead, so every row gets ``k``
    others.

    Args:
        features: float array (n, d); rows are L2-normalised internally
        k: neighbours per row (clipped to n - 1)
        batch_size (16384): query rows per faiss search, bounds memory

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
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        _, found = index.search(x[start:stop], k + 1)
        is_self = found == np.arange(start, stop)[:, None]
        is_self[~is_self.any(axis=1), -1] = True
        out[start:stop] = found[~is_self].reshape(stop - start, k)
    return out
