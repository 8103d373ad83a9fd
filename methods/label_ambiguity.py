"""Label ambiguity: how plausibly an image belongs to more than one class.

A wrong label has a right class; an *ambiguous* image does not have one
right class: two (or more) classes are plausible, and human annotators
split between them (on CIFAR-10's confirmed test-set label errors, 32 of 54
were of that kind, Northcutt et al., "Pervasive Label Errors in Test Sets",
NeurIPS 2021 Datasets track). The question a reviewer asks is "would two
people label this image the same way?".

**Score.** The image's label distribution is estimated from two
independent pieces of evidence, weighted equally:

- the *out-of-sample* class probabilities ``p`` (a model that never saw the
  sample's label, :mod:`methods.out_of_sample`; calibrated, so they say how
  often an annotator of this dataset would give each class);
- the given label itself: one annotator chose it, so it counts as one vote
  (``e_y``, the one-hot vector of the given class).

``h = (p + given_weight * e_y) / (1 + given_weight)`` (default
``given_weight=1``: the annotator's vote counts as much as the model), and

``label_ambiguity = 1 - sum_c h_c**2``

is the probability that two annotators drawing their labels independently
from ``h`` would give different classes (the Gini impurity of ``h``). It is
0 when the model and the given label agree with certainty, ``1/2`` when
they name two different classes with certainty (a sample that is either
mislabeled or genuinely two-class), at most ``1 - 1/k``.

**Why not the entropy of ``p`` alone.** The entropy measures how unsure the
model is; it ignores that a human already labelled the image. When the
given label disagrees with a confident model, annotators disagree about
that image by definition. On CIFAR-10N (three independent human labels per
image, MobileNetV2 embeddings, ``benchmarks/bench_issue_types.py``) images
on which the three annotators disagree are separated from those on which
they agree better by this score than by the entropy of ``p`` (AUROCs in
BENCHMARKS.md, given labels = one annotator's, and given labels = the
original CIFAR-10 labels).

**Wrong or ambiguous.** :func:`split_wrong_ambiguous` says, for samples the
consensus flagged as likely mislabeled, whether one other class is clearly
favoured (``wrong``: the reviewer can relabel) or the evidence is split
(``ambiguous``): the given class keeps at least ``ratio`` (default 1/2) of
the probability of the most probable other class, or no class has a
majority.

No FiftyOne here: numpy arrays in, arrays out.
"""

import numpy as np

from .arrays import most_probable_other

__all__ = [
    "GIVEN_WEIGHT",
    "MAJORITY",
    "RATIO",
    "annotator_distribution",
    "label_ambiguity",
    "split_wrong_ambiguous",
]

#: weight of the given label's one vote against the model's probabilities
GIVEN_WEIGHT = 1.0
#: a flagged label is "ambiguous" when p[given] >= RATIO * p[best other class]
RATIO = 0.5
#: ... or when no class has more than this probability
MAJORITY = 0.5


def annotator_distribution(probabilities, labels, given_weight=GIVEN_WEIGHT):
    """``h``: the out-of-sample probabilities and the given label's vote,
    averaged with weights ``1`` and ``given_weight`` (rows sum to 1).
    Samples without a label (``labels < 0``) keep ``p``."""
    p = _checked(probabilities)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(p):
        raise ValueError("labels (%d) and probabilities (%d) differ in length" % (len(labels), len(p)))
    if given_weight < 0:
        raise ValueError("given_weight must be >= 0, got %r" % given_weight)
    h = p.copy()
    has = (labels >= 0) & (labels < p.shape[1])
    h[has, labels[has]] += float(given_weight)
    h /= h.sum(axis=1, keepdims=True)
    return h


def label_ambiguity(probabilities, labels, given_weight=GIVEN_WEIGHT):
    """Probability that two annotators would label the image differently.

    Args:
        probabilities: float (n, k) out-of-sample class probabilities (rows
            are normalised here)
        labels: int (n,) given class indices (-1: no label)
        given_weight (1.0): weight of the given label's vote against the
            model's probabilities (0: the Gini impurity of ``p`` alone)

    Returns:
        float (n,) in ``[0, 1 - 1/k]``, higher = more ambiguous
    """
    h = annotator_distribution(probabilities, labels, given_weight)
    return 1.0 - np.square(h).sum(axis=1)


def split_wrong_ambiguous(probabilities, labels, ratio=RATIO, majority=MAJORITY):
    """For each sample: True where the evidence is split (``ambiguous``),
    False where one class other than the given one is clearly favoured
    (``wrong``): ambiguous when ``p[given] >= ratio * max_{c != given} p[c]``
    or ``max_c p[c] <= majority``.

    Returns:
        ``(ambiguous bool (n,), alternative int (n,))``: the most probable
        class other than the given one (the second class a reviewer may
        record)
    """
    p = _checked(probabilities)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(p))
    has = (labels >= 0) & (labels < p.shape[1])
    given = np.where(has, p[rows, np.clip(labels, 0, p.shape[1] - 1)], 0.0)
    alternative = most_probable_other(p, labels)
    best_other = p[rows, alternative]
    ambiguous = (given >= ratio * best_other) | (p.max(axis=1) <= majority)
    return ambiguous & has, alternative


def _checked(probabilities):
    p = np.array(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError("probabilities must be (n, k >= 2), got shape %s" % (p.shape,))
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probabilities must be finite and >= 0")
    total = p.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("every row of probabilities needs a positive sum")
    return p / total
