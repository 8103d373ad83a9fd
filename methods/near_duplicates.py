"""Conflicting near-duplicates: the same image twice, with different labels.

A dataset scraped or merged from several sources holds copies of the same
image (re-encoded, resized, flipped, slightly cropped); when the copies
carry different labels, at least one label is wrong, whatever the image
shows, and training sees the same input pulled towards two classes.
cleanlab's Datalab reports ``near_duplicate`` issues: two samples are near
duplicates when their embedding distance is below ``threshold`` times the
median nearest-neighbour distance of the dataset (default 0.13). The same
rule here, on the neighbour graph the detectors already search
(:func:`methods.neighbours.cosine_neighbours`, cosine distance):

1. **Pairs.** ``i`` and its neighbour ``j`` are near-duplicates when
   ``1 - cos(x_i, x_j) <= threshold * median_i(1 - cos(x_i, x_{nn(i)}))``;
   the scale is the dataset's own typical nearest-neighbour distance, so
   the rule carries over from one embedding to another. Identical vectors
   (distance 0: exact duplicates) are always pairs.
2. **Groups.** The connected components of the pairs (union of the
   ``k`` nearest neighbours' pairs, both directions). A group's id is the
   smallest row index in it.
3. **Conflict.** A group is conflicting when its members carry two or more
   different labels.

``exact_keys`` (optional, e.g. a hash of each file's bytes) joins samples
with the same key into one group whatever their embeddings.

No FiftyOne here; scipy's connected components are imported inside.
"""

import numpy as np

__all__ = ["K", "THRESHOLD", "near_duplicate_groups"]

#: distance, relative to the median nearest-neighbour distance, below which
#: two samples are near-duplicates (cleanlab Datalab's default)
THRESHOLD = 0.13
#: neighbours examined per sample
K = 10


def near_duplicate_groups(embeddings, labels, neighbours=None, k=K, threshold=THRESHOLD,
                          exact_keys=None):
    """Groups of near-identical samples and whether their labels conflict.

    Args:
        embeddings: float (n, d)
        labels: int (n,) given class indices (-1: no label, never conflicts)
        neighbours (None): int (n, >= k) nearest neighbours (cosine, self
            excluded, nearest first), e.g. the chain's shared graph; None
            searches them
        k (10): neighbours examined per sample
        threshold (0.13): see the module docstring
        exact_keys (None): sequence (n,) of hashable keys (None: no key);
            equal keys are duplicates

    Returns:
        dict with ``group`` int (n,) (-1: in no group; else the smallest
        row of the group), ``conflict`` bool (n,) (member of a group with
        2+ labels), ``radius`` (the cosine distance below which samples
        pair), ``num_groups``, ``num_conflicting_groups``
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from .neighbours import cosine_neighbours

    x = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(x)
    if len(labels) != n:
        raise ValueError("labels (%d) and embeddings (%d) differ in length" % (len(labels), n))
    if threshold < 0:
        raise ValueError("threshold must be >= 0, got %r" % threshold)
    if neighbours is None:
        neighbours = cosine_neighbours(x, k)
    neighbours = np.asarray(neighbours)[:, :k]
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    dist = np.empty(neighbours.shape, dtype=np.float64)
    for start in range(0, n, 65536):
        rows = slice(start, start + 65536)
        dist[rows] = 1.0 - np.einsum("nd,nkd->nk", unit[rows], unit[neighbours[rows]])
    dist = np.maximum(dist, 0.0)
    radius = float(threshold * np.median(dist[:, 0]))
    close = (dist <= radius) | (dist <= 1e-6)
    src = np.repeat(np.arange(n), neighbours.shape[1])[close.ravel()]
    dst = neighbours.ravel()[close.ravel()]
    if exact_keys is not None:
        first = {}
        for i, key in enumerate(exact_keys):
            if key is None:
                continue
            j = first.setdefault(key, i)
            if j != i:
                src = np.append(src, i)
                dst = np.append(dst, j)
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    smallest = np.full(sizes.shape, n, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(n))
    group = np.where(sizes[component] > 1, smallest[component], -1)
    conflict = np.zeros(n, dtype=bool)
    grouped = np.flatnonzero(group >= 0)
    labelled = grouped[labels[grouped] >= 0]
    if len(labelled):
        lo = np.full(n, np.iinfo(np.int64).max)
        hi = np.full(n, -1)
        np.minimum.at(lo, group[labelled], labels[labelled])
        np.maximum.at(hi, group[labelled], labels[labelled])
        conflict[grouped] = lo[group[grouped]] < hi[group[grouped]]
    groups = np.unique(group[grouped])
    return dict(
        group=group,
        conflict=conflict,
        radius=radius,
        num_groups=int(len(groups)),
        num_conflicting_groups=int(len(np.unique(group[conflict]))),
    )
