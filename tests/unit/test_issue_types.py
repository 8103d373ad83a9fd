"""Unit tests of the issue-type methods: ambiguity, outliers, near-duplicates,
overlapping classes and the per-sample assignment (injected structure with
known answers; each test fails if the method loses its signal)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from methods.issue_types import assign_issue_types, issue_counts
from methods.label_ambiguity import label_ambiguity, split_wrong_ambiguous
from methods.near_duplicates import near_duplicate_groups
from methods.outlier_score import outlier_score, sidak_combined
from methods.overlapping_classes import describe_pair, overlapping_classes


def _blobs(n_per=150, k=4, d=16, spread=0.35, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    y = np.repeat(np.arange(k), n_per)
    x = centres[y] + rng.normal(scale=spread * 3, size=(len(y), d))
    return x, y, centres, rng


def test_ambiguity_values_mean_what_they_say():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    y = np.array([0, 0, 0, 0])
    a = label_ambiguity(p, y)
    assert a[0] == pytest.approx(0.0)           # model and annotator agree
    assert a[1] == pytest.approx(0.5)           # certain, but different classes
    assert a[2] == pytest.approx(1 - (0.75**2 + 0.25**2))
    assert a[3] > a[0] and np.all(a <= 1 - 1 / 3 + 1e-12)
    # given_weight=0: the Gini impurity of p alone
    assert label_ambiguity(p, y, given_weight=0)[2] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        label_ambiguity(np.array([[0.5, np.nan]]), [0])


def test_ambiguity_tracks_simulated_annotator_disagreement():
    """Images with a true two-class mixture: three simulated annotators
    disagree more often; the score separates them better than chance and
    at least as well as the entropy of the probabilities."""
    rng = np.random.default_rng(1)
    n, k = 3000, 5
    mixed = rng.random(n) < 0.3
    true = rng.integers(0, k, n)
    other = (true + rng.integers(1, k, n)) % k
    h = np.full((n, k), 0.02)
    h[np.arange(n), true] += 0.9
    h[mixed, true[mixed]] -= 0.45
    h[mixed, other[mixed]] += 0.45
    h /= h.sum(1, keepdims=True)
    votes = np.stack([[rng.choice(k, p=row) for row in h] for _ in range(3)], 1)
    disagree = ~((votes[:, 0] == votes[:, 1]) & (votes[:, 1] == votes[:, 2]))
    # the model sees a noisy version of h; the given label is annotator 1
    p = np.clip(h + rng.normal(scale=0.05, size=h.shape), 1e-3, None)
    p /= p.sum(1, keepdims=True)
    score = roc_auc_score(disagree, label_ambiguity(p, votes[:, 0]))
    entropy = roc_auc_score(disagree, -(p * np.log(p)).sum(1))
    assert score > 0.7
    assert score >= entropy


def test_split_wrong_ambiguous():
    p = np.array([[0.05, 0.9, 0.05], [0.35, 0.6, 0.05], [0.4, 0.3, 0.3]])
    amb, alt = split_wrong_ambiguous(p, np.array([0, 0, 1]))
    assert amb.tolist() == [False, True, True]
    assert alt.tolist() == [1, 1, 0]


def test_outlier_score_finds_planted_far_points_and_ignores_mislabels():
    x, y, centres, rng = _blobs()
    flip = rng.choice(len(y), 30, replace=False)   # mislabeled but typical
    y_noisy = y.copy()
    y_noisy[flip] = (y[flip] + 1) % 4
    far = rng.normal(size=(20, x.shape[1])) * 3 + 25   # a group, far from all
    xs = np.vstack([x, far])
    ys = np.concatenate([y_noisy, rng.integers(0, 4, 20)])
    found = outlier_score(xs, ys, num_classes=4)
    s = found["score"]
    is_out = np.r_[np.zeros(len(y), bool), np.ones(20, bool)]
    assert roc_auc_score(is_out, s) > 0.99
    assert (s[is_out] > 3).mean() >= 0.9
    assert (s[~is_out] > 3).mean() <= 0.02
    # the mislabeled samples are close to their true class, not outliers
    assert (s[flip] > 3).mean() <= 0.05
    assert (found["nearest_class"][flip] == y[flip]).mean() > 0.9
    with pytest.raises(ValueError):
        outlier_score(xs[:2], ys[:2])


def test_outlier_score_cosine_reads_directions_only():
    """The cosine geometry ignores each embedding's length: rescaling rows
    leaves its scores unchanged; the Euclidean geometry's do change, and it
    finds the far group."""
    x, y, _, rng = _blobs()
    far = rng.normal(size=(20, x.shape[1])) * 3 + 25
    xs = np.vstack([x, far])
    ys = np.concatenate([y, rng.integers(0, 4, 20)])
    is_out = np.r_[np.zeros(len(y), bool), np.ones(20, bool)]
    scale = rng.uniform(0.1, 10.0, size=(len(xs), 1))
    cos = outlier_score(xs, ys, num_classes=4, metric="cosine")["score"]
    np.testing.assert_allclose(
        outlier_score(xs * scale, ys, num_classes=4, metric="cosine")["score"], cos,
        rtol=1e-6, atol=1e-6)
    euc = outlier_score(xs, ys, num_classes=4, metric="euclidean")["score"]
    assert roc_auc_score(is_out, euc) > 0.99
    assert not np.allclose(
        outlier_score(xs * scale, ys, num_classes=4, metric="euclidean")["score"], euc)
    with pytest.raises(ValueError, match="metric"):
        outlier_score(xs, ys, metric="manhattan")


def test_outlier_score_both_geometries_catch_what_either_sees():
    """Outliers of length only (class directions, 6x longer: what a random
    network's features do with foreign images) and of direction only (usual
    length, a direction of no class). The cosine geometry cannot see the
    first kind; the default combines both geometries and finds both kinds,
    at the false-alarm rate of one test."""
    rng = np.random.default_rng(1)
    d, k, n_per = 24, 4, 250
    directions = np.linalg.qr(rng.normal(size=(d, d)))[0][:k + 1]   # orthonormal
    y = np.repeat(np.arange(k), n_per)
    length = rng.lognormal(np.log(10), 0.1, size=len(y))[:, None]
    x = (directions[y] + rng.normal(scale=0.15, size=(len(y), d))) * length
    long = (directions[rng.integers(0, k, 15)] + rng.normal(scale=0.15, size=(15, d))) * 60
    other = (directions[k] + rng.normal(scale=0.15, size=(15, d))) * 10
    xs = np.vstack([x, long, other])
    ys = np.concatenate([y, rng.integers(0, k, 30)])
    kind = np.array(["real"] * len(y) + ["long"] * 15 + ["other"] * 15)

    def marked(metric):
        found = outlier_score(xs, ys, num_classes=k, metric=metric)
        return {what: (found["score"][kind == what] > 3).mean() for what in ("real", "long", "other")}, found

    cos, _ = marked("cosine")
    euc, _ = marked("euclidean")
    both, found = marked("both")
    assert cos["long"] <= 0.1 and cos["other"] >= 0.9      # length is invisible to cosine
    assert euc["long"] >= 0.9                               # Euclidean sees the length
    assert both["long"] >= 0.9 and both["other"] >= 0.9
    assert both["real"] <= 0.01
    assert set(found["geometry"][kind == "long"]) == {"euclidean"}
    np.testing.assert_allclose(found["score"], sidak_combined(
        np.maximum(found["z"]["cosine"], found["z"]["euclidean"]), 2))
    # Sidak: the larger of two z-scores, on the scale of one test
    assert sidak_combined(np.array([3.2052]), 2)[0] == pytest.approx(3.0, abs=1e-3)
    assert sidak_combined(np.array([np.inf, -60.0]), 2).tolist() == [np.inf, -60.0]


def test_near_duplicates_groups_conflicts_and_exact_copies():
    x, y, _, rng = _blobs(n_per=100)
    src = rng.choice(len(y), 12, replace=False)
    copies = x[src] + rng.normal(scale=1e-3, size=(12, x.shape[1]))
    copy_labels = (y[src] + 1) % 4
    copy_labels[:4] = y[src[:4]]          # 4 agreeing copies: groups, no conflict
    exact = x[src[:2]]                    # exact copies under another label
    xs = np.vstack([x, copies, exact])
    ys = np.concatenate([y, copy_labels, (y[src[:2]] + 2) % 4])
    found = near_duplicate_groups(xs, ys)
    g, c = found["group"], found["conflict"]
    n = len(y)
    for j, s in enumerate(src):
        assert g[n + j] >= 0 and g[n + j] == g[s]
    assert c[n + 4:n + 12].all() and c[src[4:]].all()
    assert c[n + 12:].all()               # exact copies conflict too
    assert not c[src[2:4]].any() and not c[n + 2:n + 4].any()
    others = np.setdiff1d(np.arange(n), src)
    assert (g[others] < 0).mean() > 0.98  # unrelated samples stay alone
    # exact keys (e.g. file hashes) join samples whatever their embeddings
    keys = [None] * len(ys)
    keys[0], keys[5] = "h", "h"
    joined = near_duplicate_groups(xs, ys, exact_keys=keys, threshold=0.0)
    assert joined["group"][0] == joined["group"][5] == 0


def test_overlapping_classes_ranks_the_confused_pair_first():
    rng = np.random.default_rng(2)
    n, k = 2000, 4
    y = rng.integers(0, k, n)
    p = np.full((n, k), 0.03)
    p[np.arange(n), y] = 0.91
    swap = rng.random(n) < 0.15
    pair = swap & (y < 2)             # classes 0 and 1 swap in both directions
    p[pair] = 0.03
    p[pair, 1 - y[pair]] = 0.91
    pairs = overlapping_classes(p, y, class_names=["cat", "dog", "car", "ship"])
    assert pairs[0]["classes"] == ["cat", "dog"]
    assert 0.08 < pairs[0]["share"] < 0.22
    assert all(q["share"] < 0.01 for q in pairs[1:])
    assert describe_pair(pairs[0]).startswith("cat <-> dog: ")


def test_assign_issue_types_precedence():
    flagged = np.array([1, 1, 0, 1, 0, 0], bool)
    split = np.array([0, 1, 0, 0, 0, 0], bool)
    out = np.array([0, 0, 5, 5, 0, 0.0])
    conflict = np.array([0, 0, 0, 1, 1, 0], bool)
    types, reasons = assign_issue_types(flagged, split, out, 3.0, conflict)
    assert types.tolist() == ["wrong", "ambiguous", "outlier", "duplicate_conflict",
                              "duplicate_conflict", ""]
    assert reasons[2].startswith("outlier_score > 3")
    assert issue_counts(types) == {"wrong": 1, "ambiguous": 1, "outlier": 1, "duplicate_conflict": 2}
    with pytest.raises(ValueError):
        assign_issue_types(flagged, split[:3])
