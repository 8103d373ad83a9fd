"""Cosine k-nearest neighbours with faiss, shared by the detectors.

Exact (brute force) search up to :data:`EXACT_MAX_ROWS` rows. Above that an
inverted-file index (IVF, Jégou et al. 2011): k-means splits the rows into
``nlist`` cells and each query scans only the ``nprobe`` cells nearest to
it, so the cost grows like ``n**1.5`` instead of ``n**2`` (1M rows: minutes
instead of hours on 2 cores), at the price of missing some true
neighbours; the vectors in the cells are stored as 8-bit scalars (SQ8),
which only pick twice as many candidates as needed: those are re-scored
exactly (:class:`Reranked`). How many cells to probe is not guessed: with ``nprobe="auto"``
the smallest of :data:`NPROBE_STEPS` whose recall@k, measured against exact
search on :data:`RECALL_QUERIES` random rows of the data at hand, reaches
``target_recall`` (0.95) is used, and the measured recall is reported
(``info``). ``benchmarks/bench_neighbours.py`` measures the faiss choices
(flat, IVF-flat, IVF-SQ8, HNSW) side by side.

Inside :func:`shared_neighbours` each distinct matrix is searched once: kNN
disagreement, the label-quality kNN votes and SCAN's neighbour mining of one
``find_label_issues`` run share one graph.
"""

import contextlib
import contextvars
import hashlib
import math

import numpy as np

__all__ = [
    "EXACT_MAX_ROWS",
    "NPROBE_STEPS",
    "RECALL_QUERIES",
    "Reranked",
    "TARGET_RECALL",
    "cosine_neighbours",
    "recall_at_k",
    "shared_neighbours",
    "without_self",
]

#: above this many rows :func:`cosine_neighbours` searches an IVF index by default
EXACT_MAX_ROWS = 100_000
#: recall@k the automatic ``nprobe`` aims for
TARGET_RECALL = 0.95
#: ``nprobe`` values tried, in order, by ``nprobe="auto"``
NPROBE_STEPS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
#: query rows on which ``nprobe="auto"`` measures recall against exact search
RECALL_QUERIES = 1000

_SHARED = contextvars.ContextVar("label_noise_shared_neighbours", default=None)


@contextlib.contextmanager
def shared_neighbours(k=0):
    """A scope in which :func:`cosine_neighbours` searches each matrix once.

    The first search of a matrix asks for ``max(k, its own k)`` neighbours;
    later searches of the same values (compared by a digest of the bytes,
    so a copy hits the cache) with the same search settings get the first
    columns of that graph. For exact search and for IVF with a given
    ``nprobe`` the first ``k`` of a ``k' > k`` search are the ``k`` search's
    answer, so sharing changes no result. Private to the calling thread/task.
    """
    token = _SHARED.set({"k": int(k), "graphs": {}})
    try:
        yield
    finally:
        _SHARED.reset(token)


def cosine_neighbours(
    features, k, batch_size=16384, exact=None, nprobe="auto", seed=0,
    target_recall=TARGET_RECALL, info=None,
):
    """The ``k`` nearest neighbours of every row by cosine similarity.

    The row itself is excluded; when exact duplicates make faiss return other
    rows before it, the last hit is dropped instead, so every row gets ``k``
    others.

    Args:
        features: float array (n, d); rows are L2-normalised internally
        k: neighbours per row (clipped to n - 1)
        batch_size (16384): query rows per faiss search, bounds memory
        exact (None): True: brute-force search; False: IVF-SQ8 index with
            ``round(2 * sqrt(n))`` cells trained by k-means on at most
            ``64 * cells`` rows; None: exact up to :data:`EXACT_MAX_ROWS` rows
        nprobe ("auto"): IVF cells scanned per query, or "auto": the smallest
            of :data:`NPROBE_STEPS` reaching ``target_recall`` on
            :data:`RECALL_QUERIES` rows (the largest step if none does)
        seed (0): IVF only: k-means initialisation, training subset and the
            recall queries
        target_recall (0.95): recall@k that ``nprobe="auto"`` aims for
        info (None): a dict filled with how the search ran: ``method``,
            ``k`` (the depth searched: in :func:`shared_neighbours` the
            graph's, which may exceed the ``k`` asked for), and for IVF
            ``nlist``, ``nprobe``, ``recall_at_k`` (measured on
            ``recall_queries`` rows; None when ``nprobe`` was given)

    Returns:
        int64 array (n, min(k, n - 1)) of row indices, nearest first

    Raises:
        ValueError: fewer than 2 rows or k < 1
    """
    n = len(features)
    k = int(min(k, n - 1))
    if k < 1:
        raise ValueError("nearest neighbours need at least 2 samples and k >= 1 (got %d samples)" % n)
    if exact is None:
        exact = n <= EXACT_MAX_ROWS
    shared = _SHARED.get()
    if shared is None:
        return _search(features, k, batch_size, exact, nprobe, seed, target_recall, info)
    key = (_digest(features), bool(exact), str(nprobe), int(seed), float(target_recall))
    cached = shared["graphs"].get(key)
    if cached is None or cached[0].shape[1] < k:
        found_info = {}
        wanted = int(min(max(k, shared["k"]), n - 1))
        graph = _search(features, wanted, batch_size, exact, nprobe, seed, target_recall, found_info)
        cached = shared["graphs"][key] = (graph, found_info)
    if info is not None:
        info.update(cached[1], shared=True)
    return np.ascontiguousarray(cached[0][:, :k])


def _digest(features):
    x = np.ascontiguousarray(features)
    return (x.shape, str(x.dtype), hashlib.blake2b(memoryview(x).cast("B"), digest_size=16).hexdigest())


def _search(features, k, batch_size, exact, nprobe, seed, target_recall, info):
    import faiss

    x = np.ascontiguousarray(features, dtype=np.float32).copy()
    n = len(x)
    faiss.normalize_L2(x)
    details = {"method": "exact" if exact else "ivf", "k": int(k)}
    if exact:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
    else:
        index = Reranked(_ivf_index(x, seed), x)
        if nprobe == "auto":
            nprobe, recall, queries = _auto_nprobe(index, x, k, seed, target_recall)
        else:
            nprobe, recall, queries = min(int(nprobe), index.nlist), None, 0
        index.nprobe = nprobe
        details.update(nlist=int(index.nlist), nprobe=int(nprobe), recall_at_k=recall,
                       recall_queries=queries, target_recall=float(target_recall))
    if info is not None:
        info.update(details)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        out[start:stop] = without_self(index, x[start:stop], np.arange(start, stop), k)
    return out


class Reranked:
    """An approximate index whose answers are re-ranked by exact scores.

    ``search(q, k)`` asks ``index`` for ``factor * k`` candidates (scored
    on 8-bit codes), scores them exactly against the full vectors ``x`` and
    keeps the best ``k``: the codes only choose candidates, so quantisation
    does not reorder the neighbours. ``nprobe``/``nlist`` are the index's.
    """

    #: query rows re-scored at once (bounds the gathered candidate vectors)
    CHUNK = 2048

    def __init__(self, index, x, factor=2):
        self.index, self.x, self.factor = index, x, int(factor)

    @property
    def nlist(self):
        return self.index.nlist

    @property
    def nprobe(self):
        return self.index.nprobe

    @nprobe.setter
    def nprobe(self, value):
        self.index.nprobe = value

    def search(self, queries, k):
        _, candidates = self.index.search(queries, self.factor * k)
        found = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        for s in range(0, len(queries), self.CHUNK):
            cand = candidates[s:s + self.CHUNK]
            exact = np.einsum("bd,bcd->bc", queries[s:s + self.CHUNK], self.x[np.maximum(cand, 0)])
            exact[cand < 0] = -np.inf
            best = np.argsort(-exact, axis=1, kind="stable")[:, :k]
            found[s:s + self.CHUNK] = np.take_along_axis(cand, best, axis=1)
            scores[s:s + self.CHUNK] = np.take_along_axis(exact, best, axis=1)
        return scores, found


def without_self(index, queries, rows, k):
    """Top ``k`` of ``queries`` (rows ``rows`` of the index), self excluded."""
    _, found = index.search(queries, k + 1)
    short = np.flatnonzero((found < 0).any(axis=1))
    if len(short) and hasattr(index, "nlist"):  # IVF: the probed cells held < k + 1 rows: probe all
        index.nprobe, probe = index.nlist, index.nprobe
        found[short] = index.search(queries[short], k + 1)[1]
        index.nprobe = probe
    is_self = found == rows[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return found[~is_self].reshape(len(rows), k)


def _auto_nprobe(index, x, k, seed, target_recall):
    """``(nprobe, recall@k, queries)``: the smallest step reaching the target
    on random rows, recall measured against brute force over all rows."""
    import faiss

    n = len(x)
    rows = np.sort(np.random.default_rng([int(seed), 1]).choice(n, min(RECALL_QUERIES, n), replace=False))
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    truth = without_self(flat, x[rows], rows, k)
    del flat
    steps = [p for p in NPROBE_STEPS if p < index.nlist] + [min(NPROBE_STEPS[-1], index.nlist)]
    recall = 0.0
    for nprobe in sorted(set(steps)):
        index.nprobe = nprobe
        found = without_self(index, x[rows], rows, k)
        recall = recall_at_k(found, truth)
        if recall >= target_recall:
            break
    return int(nprobe), round(float(recall), 4), len(rows)


def recall_at_k(found, truth):
    """Mean fraction of each row's true ``k`` neighbours that were found."""
    found, truth = np.asarray(found), np.asarray(truth)
    hits = [len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(found, truth)]
    return float(np.mean(hits) / truth.shape[1])


def _ivf_index(x, seed):
    """IVF over ``2 sqrt(n)`` cells, vectors stored as 8-bit scalars (SQ8).

    SQ8 scans a cell about twice as fast as full floats (200,000 rows,
    nprobe 32: 22.7 s at recall 0.982 vs 46.8 s at 0.991;
    ``bench_neighbours.py``); :class:`Reranked` gives back the recall the
    codes lose. HNSW was as fast at 200k but its multi-threaded build is
    not deterministic; IVF-PQ lost too much recall (0.85).
    """
    import faiss

    n, d = x.shape
    nlist = max(1, min(int(round(2 * math.sqrt(n))), n // 39))
    train = x
    if n > 64 * nlist:
        rows = np.random.default_rng(seed).choice(n, 64 * nlist, replace=False)
        train = x[np.sort(rows)]
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.seed = int(seed)
    index.train(train)
    index.add(x)
    return index
