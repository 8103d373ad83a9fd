"""Overlapping classes: the class pairs a dataset does not keep apart.

Idea of cleanlab's ``find_overlapping_classes`` (Northcutt et al.,
"Confident Learning", JAIR 2021, section 6: classes to merge), written here
from the paper's quantities: the *estimated joint* ``Q[i][j] ≈ p(given = i,
true = j)`` of Confident Learning (:mod:`methods.confident_learning`, from
out-of-sample probabilities) counts, for every ordered pair, the samples
labelled ``i`` that belong to ``j``. Two classes overlap when samples move
between them in *both* directions: ``Q[i][j] + Q[j][i]``. Divided by the
two classes' share of the data, it is the share of their samples that
could be either (``"cat <-> dog: 3.1% of their samples could be either"``):

``share(i, j) = n * (Q[i][j] + Q[j][i]) / (n_i + n_j)``

where ``n_i`` counts the samples labelled ``i``. A pair with a high share
is a candidate to merge, to define more sharply in the labelling
instructions, or to review together. cleanlab ranks by the joint alone;
the share divides by the pair's size, so that two small classes that are
always confused rank above two large classes that are rarely confused.

No FiftyOne here.
"""

import numpy as np

__all__ = ["describe_pair", "overlapping_classes"]


def overlapping_classes(probabilities, labels, class_names=None, min_count=1, top=None):
    """The class pairs whose samples are most often split between the two.

    Args:
        probabilities: float (n, k) out-of-sample probabilities
        labels: int (n,) given class indices
        class_names (None): names (default the indices)
        min_count (1): leave out pairs with fewer estimated samples
        top (None): keep the first ``top`` pairs

    Returns:
        list of dicts, largest ``share`` first: ``classes`` (two names),
        ``count`` (estimated samples of one labelled as the other, both
        directions), ``share`` (of the two classes' samples), ``joint``
        (``Q[i][j] + Q[j][i]``, share of the whole dataset)
    """
    from .confident_learning import calibrate_joint, confident_joint, per_class_thresholds

    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n, k = p.shape
    names = list(class_names) if class_names is not None else list(range(k))
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    joint, _ = confident_joint(p, labels, per_class_thresholds(p, labels))
    _, q = calibrate_joint(joint, labels, k)
    pairs = []
    for i in range(k):
        for j in range(i + 1, k):
            both = q[i, j] + q[j, i]
            count = n * both
            if count < min_count or counts[i] + counts[j] == 0:
                continue
            pairs.append(dict(
                classes=[names[i], names[j]],
                count=int(round(count)),
                share=float(count / (counts[i] + counts[j])),
                joint=float(both),
            ))
    pairs.sort(key=lambda d: (-d["share"], -d["count"]))
    return pairs[:top] if top else pairs


def describe_pair(pair):
    """``"cat <-> dog: 3.1% of their samples could be either"``."""
    a, b = pair["classes"]
    return "%s <-> %s: %.1f%% of their samples could be either" % (a, b, 100 * pair["share"])
