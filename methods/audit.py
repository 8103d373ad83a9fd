"""Audit statistics: how many wrong labels are left (no FiftyOne inside).

An audit reviews a *uniform random* sample of a collection; the share of
wrong labels in it is an unbiased estimate of the share in the whole
collection. :func:`wilson_interval` gives its 95% confidence interval (the
Wilson score interval, which stays inside [0, 1] and behaves at 0 or n
errors, unlike the normal approximation), :func:`draw_audit_sample` draws the
sample reproducibly and :func:`audit_estimate` summarises the verdicts,
overall and per class.
"""

import math

import numpy as np

__all__ = [
    "AUDIT_TYPES",
    "Z95",
    "audit_estimate",
    "draw_audit_sample",
    "type_shares",
    "wilson_interval",
]

#: two-sided 95% normal quantile
Z95 = 1.959963984540054


def wilson_interval(wrong, n, z=Z95):
    """Wilson score interval of a binomial proportion ``wrong / n``.

    Args:
        wrong: number of wrong labels found (0 <= wrong <= n)
        n: number of samples audited
        z (1.96): normal quantile (1.96 = 95% two-sided)

    Returns:
        ``(low, high)``, both in [0, 1]; ``(0.0, 1.0)`` when ``n == 0``
    """
    wrong, n = int(wrong), int(n)
    if n < 0 or wrong < 0 or wrong > n:
        raise ValueError("need 0 <= wrong <= n, got wrong=%d n=%d" % (wrong, n))
    if n == 0:
        return 0.0, 1.0
    p = wrong / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low, high = max(0.0, center - half), min(1.0, center + half)
    if wrong == 0:
        low = 0.0
    if wrong == n:
        high = 1.0
    return low, high


def draw_audit_sample(num_items, size, seed=51):
    """Indices of a uniform random sample without replacement.

    Args:
        num_items: size of the population
        size: sample size (capped at ``num_items``)
        seed (51): same seed, same sample

    Returns:
        int64 array of ``min(size, num_items)`` distinct indices, in the
        random order they were drawn (review them in that order)
    """
    if num_items < 0 or size < 0:
        raise ValueError("num_items and size must be >= 0")
    rng = np.random.default_rng(int(seed))
    size = min(int(size), int(num_items))
    return rng.permutation(int(num_items))[:size].astype(np.int64)


def audit_estimate(wrong, labels=None, population=None, min_per_class=5, z=Z95):
    """The estimated share of wrong labels from audit verdicts.

    Args:
        wrong: booleans, one per *reviewed* audit sample (True = label was
            wrong); skipped samples are left out before calling this
        labels (None): the given class of each reviewed sample, for the
            per-class estimates
        population (None): size of the audited collection; adds the
            estimated number of wrong labels (``count``, ``count_low``,
            ``count_high``)
        min_per_class (5): classes with fewer reviewed samples get no
            per-class estimate (listed under ``too_few``)
        z (1.96): normal quantile of the interval

    Returns:
        a dict: ``n``, ``wrong``, ``rate``, ``low``, ``high`` (and the counts
        when ``population`` is given), ``per_class`` ``{class: {n, wrong,
        rate, low, high}}`` and ``too_few`` ``{class: n}``
    """
    wrong = np.asarray(wrong, dtype=bool)
    n, k = int(wrong.size), int(wrong.sum())
    low, high = wilson_interval(k, n, z)
    out = dict(n=n, wrong=k, rate=(k / n) if n else None, low=low, high=high)
    if population is not None:
        out.update(
            population=int(population),
            count=int(round(out["rate"] * population)) if n else None,
            count_low=int(math.floor(low * population)),
            count_high=int(math.ceil(high * population)),
        )
    per_class, too_few = {}, {}
    if labels is not None:
        labels = np.asarray(labels, dtype=object)
        if labels.shape != wrong.shape:
            raise ValueError("labels and wrong must have the same length")
        for c in sorted({str(x) for x in labels.tolist()}):
            mask = labels.astype(str) == c
            nc, kc = int(mask.sum()), int(wrong[mask].sum())
            if nc < min_per_class:
                too_few[c] = nc
                continue
            lc, hc = wilson_interval(kc, nc, z)
            per_class[c] = dict(n=nc, wrong=kc, rate=kc / nc, low=lc, high=hc)
    out["per_class"] = per_class
    out["too_few"] = too_few
    return out


#: what an audited item can turn out to be
AUDIT_TYPES = ("right", "wrong", "ambiguous", "exclude")


def type_shares(types, z=Z95):
    """Share of each outcome among the reviewed audit items, each with its
    Wilson interval: not every bad label has a right class, so besides
    ``wrong`` (another class is right) an audit counts ``ambiguous`` (two
    classes fit) and ``exclude`` (no class fits).

    Args:
        types: one of :data:`AUDIT_TYPES` per reviewed (not skipped) item

    Returns:
        ``{type: {count, n, rate, low, high}}`` for every type (rate None
        when nothing was reviewed)
    """
    values = [str(t) for t in types]
    bad = sorted(set(values) - set(AUDIT_TYPES))
    if bad:
        raise ValueError("unknown audit outcome(s) %s; expected %s" % (bad, AUDIT_TYPES))
    n = len(values)
    out = {}
    for t in AUDIT_TYPES:
        count = values.count(t)
        low, high = wilson_interval(count, n, z)
        out[t] = dict(count=count, n=n, rate=(count / n) if n else None, low=low, high=high)
    return out
