"""One issue type per sample: why a sample needs a reviewer's attention.

The consensus says *how likely* a label is wrong (``noise_score``); a
reviewer also needs to know *what kind* of problem to expect, because the
fix differs: relabel it, mark it as ambiguous (two classes fit), exclude it
(no class fits), or resolve a pair of copies that disagree. This module
combines the evidence of the other methods into one string per sample,
first match wins:

1. ``duplicate_conflict``: the sample is in a group of near-identical
   samples whose labels differ (:mod:`methods.near_duplicates`): whatever
   the image shows, one of the copies is mislabeled;
2. ``outlier``: the image is far from every class (:mod:`methods.outlier_score`,
   ``outlier_score > z_outlier``): no class of the dataset may fit;
3. ``wrong``: flagged as likely mislabeled by the consensus
   (``noise_flagged``) and one other class is clearly favoured
   (:func:`methods.label_ambiguity.split_wrong_ambiguous`);
4. ``ambiguous``: flagged, and the evidence is split between the given
   class and another (or no class has a majority);
5. ``""``: none of the above.

``noise_flagged`` keeps its meaning (likely wrong label); ``outlier`` and
``duplicate_conflict`` may also apply to unflagged samples.

No FiftyOne here.
"""

import numpy as np

__all__ = ["ISSUE_TYPES", "assign_issue_types", "issue_counts"]

ISSUE_TYPES = ("wrong", "ambiguous", "outlier", "duplicate_conflict")


def assign_issue_types(flagged, ambiguous=None, outlier_score=None, z_outlier=None,
                       duplicate_conflict=None):
    """The issue type of every sample (see the module docstring).

    Args:
        flagged: bool (n,) likely mislabeled (the consensus' flag)
        ambiguous (None): bool (n,) split evidence (flagged samples only
            are concerned); None: every flagged sample is ``wrong``
        outlier_score (None): float (n,); None: no outliers
        z_outlier (None): threshold of ``outlier_score`` (default
            :data:`methods.outlier_score.Z_OUTLIER`)
        duplicate_conflict (None): bool (n,)

    Returns:
        ``(types, reasons)``: object array (n,) of strings, and per sample
        the rule that decided (``"duplicate group with 2+ labels"``, ...)
    """
    from .outlier_score import Z_OUTLIER

    flagged = np.asarray(flagged, dtype=bool)
    n = len(flagged)

    def mask(values):
        if values is None:
            return np.zeros(n, dtype=bool)
        values = np.asarray(values, dtype=bool)
        if len(values) != n:
            raise ValueError("every input must have %d entries, got %d" % (n, len(values)))
        return values

    cut = Z_OUTLIER if z_outlier is None else float(z_outlier)
    if outlier_score is None:
        is_outlier = np.zeros(n, dtype=bool)
    else:
        score = np.asarray(outlier_score, dtype=np.float64)
        if len(score) != n:
            raise ValueError("every input must have %d entries, got %d" % (n, len(score)))
        is_outlier = np.nan_to_num(score, nan=-np.inf) > cut
    conflict = mask(duplicate_conflict)
    split = mask(ambiguous)
    types = np.full(n, "", dtype=object)
    reasons = np.full(n, "", dtype=object)
    rules = (
        (flagged & split, "ambiguous", "flagged; given class keeps much of the evidence"),
        (flagged & ~split, "wrong", "flagged; another class clearly favoured"),
        (is_outlier, "outlier", "outlier_score > %.2f (far from every class)" % cut),
        (conflict, "duplicate_conflict", "near-duplicate group with 2+ labels"),
    )
    for rows, name, why in rules:  # later rules override earlier ones
        types[rows] = name
        reasons[rows] = why
    return types, reasons


def issue_counts(types):
    """``{type: count}`` for every type of :data:`ISSUE_TYPES` (0 included)."""
    values = np.asarray(types, dtype=object)
    return {t: int((values == t).sum()) for t in ISSUE_TYPES}
