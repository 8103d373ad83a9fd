"""kNN label disagreement: the simplest useful label-noise score.

For each sample, the fraction of its k nearest neighbours (cosine similarity
of the embeddings, the sample itself excluded) whose label differs from the
sample's own label. A mislabeled image tends to sit among images of its true
class, so its score is high. This is the baseline every other detector of the
plugin is compared against.
"""

import numpy as np

__all__ = ["knn_disagreement"]


def knn_disagreement(embeddings, labels, k=10, batch_size=65536, exact=None):
    """Scores label noise by disagreement with the k nearest neighbours.

    Args:
        embeddings: float array (n, d); rows are L2-normalised internally, so
            inner product = cosine similarity
        labels: int array (n,) of class indices
        k (10): neighbours per sample (clipped to n - 1)
        batch_size (65536): query rows per faiss search, bounds memory
        exact (None): brute-force search (True), approximate IVF search
            (False) or exact up to ``neighbours.EXACT_MAX_ROWS`` rows (None);
            see :func:`methods.neighbours.cosine_neighbours`

    Returns:
        a dict with
        - ``score``: float array (n,) in [0, 1], higher = more likely wrong
        - ``neighbour_label``: int array (n,), the majority label among the
          neighbours (a label suggestion)
        - ``neighbour_agreement``: float array (n,), the fraction of
          neighbours voting for ``neighbour_label``
        - ``search``: how the neighbours were found (exact or IVF, and for
          IVF the cells probed and the measured recall@k)
    """
    from .neighbours import cosine_neighbours

    labels = np.asarray(labels)
    n = len(labels)
    if n < 2:
        raise ValueError("kNN disagreement needs at least 2 samples, got %d" % n)
    if k < 1:
        raise ValueError("k must be >= 1")
    search = {}
    neighbours = cosine_neighbours(embeddings, k, batch_size, exact=exact, info=search)
    k = neighbours.shape[1]

    neighbour_labels = labels[neighbours]
    score = (neighbour_labels != labels[:, None]).mean(axis=1)
    num_classes = int(labels.max()) + 1
    majority = np.empty(n, dtype=np.int64)
    top = np.empty(n, dtype=np.int64)
    chunk = max(1, 10_000_000 // num_classes)  # rows whose vote table is counted at once
    for start in range(0, n, chunk):
        rows = neighbour_labels[start:start + chunk]
        cells = (np.arange(len(rows))[:, None] * num_classes + rows).ravel()
        votes = np.bincount(cells, minlength=len(rows) * num_classes).reshape(len(rows), num_classes)
        majority[start:start + chunk] = votes.argmax(axis=1)
        top[start:start + chunk] = votes.max(axis=1)
    return {
        "score": score.astype(np.float32),
        "neighbour_label": majority,
        "neighbour_agreement": (top / k).astype(np.float32),
        "search": search,
    }

