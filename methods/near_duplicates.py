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

**Pixel check** (``thumbnails`` given; the plugin's default). Datalab's
radius misses most transformed copies: a flipped, cropped or re-encoded
copy usually has its source as its *nearest* neighbour, but at about the
dataset's typical nearest-neighbour distance, not a tenth of it (measured
in ``benchmarks/bench_issue_types.py``: 0-61% of planted copies within the
radius, depending on the embedding). With pixels, the embedding only
proposes and the pixels decide (retrieve, then verify):

1. **Candidates**: each sample's ``candidate_depth`` (3) nearest neighbours
   (and Datalab's pairs), nearest first, at most ``max_pixel_pairs``
   (20,000) pairs: the budget bounds the images read and the time (about
   3 ms a pair on 2 cores, plus reading the images); on a large dataset it
   is the closest pairs that are checked (the run says how far it reached).
   No distance limit by default: the copies' sources sit at 0.2-2 times the
   median nearest-neighbour distance (``candidate_radius``, in those units,
   sets one).
2. **Verification**: :func:`methods.aligned_correlation.aligned_correlation`
   of the two thumbnails (best correlation over flips and crops of up to a
   quarter of the side) ``>= pixel_threshold`` (0.95). Every pair needs it,
   including those inside Datalab's radius (similar photos are no copies).
3. **Distinctiveness** (Lowe's ratio test, on pixels): a copy agrees with
   its source far better than with an ordinary neighbour; different
   images that merely share a layout (garment silhouettes on black, small
   planes in an empty sky) agree with many images about equally. A
   matched pair is kept when its Fisher z, ``atanh(r)``, exceeds that of
   each image with its last listed neighbour (the ``k``-th) by at least
   ``distinct_margin`` (1.0; e.g. a pair at r = 0.95 needs both references
   below r = 0.68). Measured (benchmark, four embeddings): planted copies
   passed by 1.1-4.8, pairs of different Fashion-MNIST silhouettes by
   -0.2-1.4; groups joining different Fashion-MNIST images went from 9-15
   to 0-2, no copy lost. Groups of more than ``k`` copies of one image
   lose pairs to it (identical embeddings still pair).
4. Pairs with an image that cannot be read or is constant (no pixel
   evidence) and identical embeddings keep the embedding rule above.

No FiftyOne here; scipy's connected components are imported inside.
"""

import numpy as np

__all__ = [
    "CANDIDATE_DEPTH",
    "CANDIDATE_RADIUS",
    "DISTINCT_MARGIN",
    "K",
    "MAX_PIXEL_PAIRS",
    "PIXEL_THRESHOLD",
    "THRESHOLD",
    "candidate_pairs",
    "near_duplicate_groups",
]

#: distance, relative to the median nearest-neighbour distance, below which
#: two samples are near-duplicates (cleanlab Datalab's default)
THRESHOLD = 0.13
#: neighbours examined per sample
K = 10
#: pixel check: aligned thumbnail correlation at or above which a candidate pair is a copy
PIXEL_THRESHOLD = 0.95
#: pixel check: candidates lie within this many median nearest-neighbour
#: distances (None: no limit, the budget decides)
CANDIDATE_RADIUS = None
#: pixel check: nearest neighbours of each sample that may be candidates
CANDIDATE_DEPTH = 3
#: pixel check: most candidate pairs verified (nearest first)
MAX_PIXEL_PAIRS = 20_000
#: pixel check: Fisher-z margin by which a pair must agree better than each
#: image agrees with its last listed neighbour
DISTINCT_MARGIN = 1.0


def candidate_pairs(relative, neighbours, radius=CANDIDATE_RADIUS, depth=CANDIDATE_DEPTH,
                    max_pairs=MAX_PIXEL_PAIRS, include=None):
    """Unordered candidate pairs for the pixel check, nearest first.

    Args:
        relative: float (n, k) distance to each neighbour over the median
            nearest-neighbour distance
        neighbours: int (n, k) neighbour rows
        radius, depth, max_pairs: see the module docstring
        include (None): bool (n, k) pairs that are candidates at any depth
            (the embedding rule's pairs)

    Returns:
        ``(pairs, truncated, reach)``: int (p, 2) with ``pairs[:, 0] <
        pairs[:, 1]``, whether ``max_pairs`` cut the list, and the relative
        distance of the farthest pair kept (0 when none)
    """
    relative = np.asarray(relative)
    neighbours = np.asarray(neighbours)
    keep = np.broadcast_to((np.arange(relative.shape[1]) < depth)[None, :], relative.shape).copy()
    if radius is not None:
        keep &= relative <= radius
    if include is not None:
        keep |= np.asarray(include, dtype=bool)
    src = np.repeat(np.arange(len(neighbours)), neighbours.shape[1])[keep.ravel()]
    dst = neighbours[keep]
    rel = relative[keep]
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    order = np.lexsort((hi, lo, rel))
    lo, hi, rel = lo[order], hi[order], rel[order]
    _, first = np.unique(lo.astype(np.int64) * len(neighbours) + hi, return_index=True)
    first = np.sort(first)
    pairs = np.stack([lo[first], hi[first]], axis=1).astype(np.int64)[:max_pairs]
    reach = float(rel[first][:max_pairs][-1]) if len(pairs) else 0.0
    return pairs, bool(len(first) > max_pairs), reach


def near_duplicate_groups(embeddings, labels, neighbours=None, k=K, threshold=THRESHOLD,
                          exact_keys=None, thumbnails=None, pixel_threshold=PIXEL_THRESHOLD,
                          candidate_radius=CANDIDATE_RADIUS, candidate_depth=CANDIDATE_DEPTH,
                          max_pixel_pairs=MAX_PIXEL_PAIRS, distinct_margin=DISTINCT_MARGIN,
                          device="cpu"):
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
        thumbnails (None): the pixel check (module docstring): a callable
            ``rows -> (images, readable)``: uint8 (len(rows), h, w, c) and
            bool (len(rows),) (False: the image could not be read); None:
            the embedding rule alone
        pixel_threshold (0.95), candidate_radius (None), candidate_depth
            (3), max_pixel_pairs (20,000), distinct_margin (1.0; None: no
            distinctiveness test): the pixel check's settings
        device ("cpu"): torch device of the pixel check

    Returns:
        dict with ``group`` int (n,) (-1: in no group; else the smallest
        row of the group), ``conflict`` bool (n,) (member of a group with
        2+ labels), ``radius`` (the cosine distance below which samples
        pair by the embedding rule), ``num_groups``,
        ``num_conflicting_groups``, ``check`` ("pixels" or "embeddings"),
        and with pixels ``candidate_reach`` (cosine distance of the
        farthest pair checked),
        ``pixel_pairs_checked``, ``pixel_pairs_matched``,
        ``pixel_pairs_not_distinct`` (above the threshold, failed step 3),
        ``pixel_pairs_unverifiable`` (judged by the embedding rule),
        ``candidates_truncated``
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
    median = float(np.median(dist[:, 0]))
    radius = float(threshold * median)
    close = (dist <= radius) | (dist <= 1e-6)
    extra = dict(check="embeddings")
    if thumbnails is None:
        src = np.repeat(np.arange(n), neighbours.shape[1])[close.ravel()]
        dst = neighbours.ravel()[close.ravel()]
    else:
        src, dst, extra = _pixel_pairs(
            dist, median, neighbours, close, thumbnails, pixel_threshold, candidate_radius,
            candidate_depth, max_pixel_pairs, device, distinct_margin)
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
        **extra,
    )


def _read_once(thumbnails):
    """``thumbnails`` that reads each row at most once (the verification and
    the distinctiveness test ask for many of the same rows), its answer checked."""
    got = {}

    def read(rows):
        rows = np.asarray(rows, dtype=np.int64)
        new = np.array(sorted(set(rows.tolist()) - got.keys()), dtype=np.int64)
        if len(new):
            images, readable = thumbnails(new)
            images, readable = np.asarray(images), np.asarray(readable, dtype=bool)
            if len(images) != len(new) or len(readable) != len(new):
                raise ValueError("thumbnails returned %d images and %d flags for %d rows"
                                 % (len(images), len(readable), len(new)))
            got.update(zip(new.tolist(), zip(images, readable)))
        if not len(rows):
            return np.zeros((0, 1, 1, 3), dtype=np.uint8), np.zeros(0, dtype=bool)
        return (np.stack([got[r][0] for r in rows.tolist()]),
                np.array([got[r][1] for r in rows.tolist()], dtype=bool))

    return read


def _distinct(pairs, score, neighbours, thumbnails, margin, device):
    """Whether each matched pair agrees ``margin`` (Fisher z) better than
    either image agrees with its last listed neighbour (module docstring)."""
    from .aligned_correlation import aligned_correlation

    ref = neighbours[:, -1]
    items = np.unique(pairs)
    rows = np.unique(np.concatenate([items, ref[items]]))
    images, readable = thumbnails(rows)
    at = np.searchsorted(rows, items)
    at_ref = np.searchsorted(rows, ref[items])
    ok = readable[at] & readable[at_ref]
    ref_score = np.full(len(items), -1.0)
    if ok.any():
        ref_score[ok] = aligned_correlation(images[at[ok]], images[at_ref[ok]], device=device)
    ref_score = np.nan_to_num(ref_score, nan=-1.0)
    worst = np.maximum(ref_score[np.searchsorted(items, pairs[:, 0])],
                       ref_score[np.searchsorted(items, pairs[:, 1])])

    def fisher(r):
        return np.arctanh(np.clip(r, -0.9999, 0.9999))

    return fisher(score) - fisher(worst) >= margin


def _pixel_pairs(dist, median, neighbours, close, thumbnails, pixel_threshold, candidate_radius,
                 candidate_depth, max_pixel_pairs, device, distinct_margin):
    """The pixel check's pairs ``(src, dst, extra)`` (module docstring)."""
    from .aligned_correlation import aligned_correlation

    relative = dist / max(median, 1e-12)
    pairs, truncated, reach = candidate_pairs(relative, neighbours, candidate_radius,
                                              candidate_depth, max_pixel_pairs, include=close)
    thumbnails = _read_once(thumbnails)
    rows = np.unique(pairs)
    images, readable = thumbnails(rows)
    where = np.searchsorted(rows, pairs)
    both = readable[where].all(axis=1)
    score = np.full(len(pairs), np.nan)
    if both.any():
        score[both] = aligned_correlation(images[where[both, 0]], images[where[both, 1]],
                                          device=device)
    matched = score >= pixel_threshold
    distinct = np.ones(len(pairs), dtype=bool)
    if distinct_margin is not None and matched.any():
        distinct[matched] = _distinct(pairs[matched], score[matched], neighbours, thumbnails,
                                      distinct_margin, device)
    matched &= distinct
    # no pixel evidence (unreadable or constant images): the embedding rule
    unverifiable = np.isnan(score)
    # the embedding rule decides where the pixels could not: pairs beyond
    # the budget, pairs without pixel evidence; identical embeddings always pair
    n = len(neighbours)
    src_n = np.repeat(np.arange(n), neighbours.shape[1])
    lo = np.minimum(src_n, neighbours.ravel())
    hi = np.maximum(src_n, neighbours.ravel())
    verified = pairs[~unverifiable]
    decided = np.isin(lo * n + hi, verified[:, 0] * n + verified[:, 1])
    keep = (close.ravel() & ~decided) | (dist <= 1e-6).ravel()
    src = np.concatenate([src_n[keep], pairs[matched, 0]])
    dst = np.concatenate([neighbours.ravel()[keep], pairs[matched, 1]])
    return src, dst, dict(
        check="pixels",
        candidate_reach=float(reach * median),
        pixel_pairs_checked=int(len(pairs) - unverifiable.sum()),
        pixel_pairs_matched=int(matched.sum()),
        pixel_pairs_not_distinct=int((~distinct).sum()),
        pixel_pairs_unverifiable=int(unverifiable.sum()),
        candidates_truncated=truncated,
    )
