"""Unit tests of the issue-type methods: ambiguity, outliers, near-duplicates,
overlapping classes and the per-sample assignment (injected structure with
known answers; each test fails if the method loses its signal)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import moved, textures
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


# ------------------------------------------------ near-duplicates: the pixel check


def _copy(image, kind, rng):
    import io

    from PIL import Image, ImageOps

    img = Image.fromarray(image)
    if kind == "flip":
        img = ImageOps.mirror(img)
    elif kind == "crop":
        x0, y0 = rng.integers(0, 5, size=2)
        img = img.crop((x0, y0, x0 + 28, y0 + 28)).resize((32, 32), Image.BILINEAR)
    else:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=40)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(img)


def test_aligned_correlation_sees_copies_through_flips_crops_and_jpeg():
    from PIL import Image

    from methods.aligned_correlation import aligned_correlation
    from methods.near_duplicates import PIXEL_THRESHOLD

    images = textures(30)
    rng = np.random.default_rng(1)
    for kind in ("flip", "crop", "jpeg"):
        copies = np.stack([_copy(im, kind, rng) for im in images])
        assert aligned_correlation(images, copies).min() >= PIXEL_THRESHOLD, kind
        assert aligned_correlation(copies, images).min() >= PIXEL_THRESHOLD, kind  # either order
    unrelated = aligned_correlation(images, np.roll(images, 1, axis=0))
    assert unrelated.max() < 0.8
    # a crop beyond the searched scales (half the side) is not a copy
    half = np.stack([np.asarray(Image.fromarray(im[:16, :16]).resize((32, 32))) for im in images])
    assert np.median(aligned_correlation(images, half)) < PIXEL_THRESHOLD
    constant = np.full_like(images[:2], 128)
    assert np.isnan(aligned_correlation(images[:2], constant)).all()
    with pytest.raises(ValueError, match="one shape"):
        aligned_correlation(images[:2], images[:3])


def test_near_duplicates_pixel_check_finds_far_copies_and_rejects_look_alikes():
    x, y, _, rng = _blobs(n_per=60)
    n = len(y)
    images = textures(n + 3, seed=2)
    src = rng.choice(n, 9, replace=False)
    kinds = ["flip", "crop", "jpeg"] * 3
    copies = moved(x, src, 0.4, rng)   # beyond Datalab's 0.13 radius
    copy_images = np.stack([_copy(images[s], k, rng) for s, k in zip(src, kinds)])
    look = rng.choice(np.setdiff1d(np.arange(n), src), 3, replace=False)
    look_x = moved(x, look, 0.05, rng)  # inside Datalab's radius, another image
    xs = np.vstack([x, copies, look_x])
    ys = np.concatenate([y, (y[src] + 1) % 4, (y[look] + 1) % 4])
    all_images = np.concatenate([images[:n], copy_images, images[n:n + 3]])
    readable = np.ones(len(ys), dtype=bool)
    asked = []

    def thumbnails(rows):
        asked.append(len(rows))
        return all_images[rows], readable[rows]

    copy_rows, look_rows = n + np.arange(9), n + 9 + np.arange(3)
    by_embedding = near_duplicate_groups(xs, ys)
    assert by_embedding["check"] == "embeddings"
    assert not by_embedding["conflict"][copy_rows].any()     # too far for Datalab's radius
    assert by_embedding["conflict"][look_rows].all()         # look-alike embeddings pair
    found = near_duplicate_groups(xs, ys, thumbnails=thumbnails)
    g, c = found["group"], found["conflict"]
    assert found["check"] == "pixels" and found["pixel_pairs_matched"] >= 9
    assert all(g[n + j] >= 0 and g[n + j] == g[s] for j, s in enumerate(src))
    assert c[copy_rows].all()
    assert (g[look_rows] < 0).all()                          # the pixels differ
    others = np.setdiff1d(np.arange(n), np.concatenate([src, look]))
    assert (g[others] < 0).all()
    assert sum(asked) <= len(ys)                             # each image read at most once
    # no pixel evidence (unreadable images): the embedding rule decides those pairs
    readable[look_rows] = False
    fallback = near_duplicate_groups(xs, ys, thumbnails=thumbnails)
    assert fallback["conflict"][look_rows].all() and fallback["pixel_pairs_unverifiable"] >= 3
    assert fallback["conflict"][copy_rows].all()
    # the budget: nearest pairs first
    asked.clear()
    few = near_duplicate_groups(xs, ys, thumbnails=thumbnails, max_pixel_pairs=5)
    assert few["candidates_truncated"] and few["pixel_pairs_checked"] + few["pixel_pairs_unverifiable"] == 5
    assert asked[0] <= 10                                    # candidates only are read


def test_near_duplicates_pixel_check_needs_a_distinctive_match():
    """Images sharing one layout (like garment silhouettes on black) agree
    with each other above the threshold; only a true copy among them agrees
    distinctly better than with its other neighbours."""
    x, y, _, rng = _blobs(n_per=60)
    n = len(y)
    base = textures(1, seed=5)[0].astype(np.float64)
    variations = textures(15, seed=6).astype(np.float64)
    layout = np.clip(base + 0.2 * (variations - variations.mean()), 0, 255).astype(np.uint8)
    copy_of_first = layout[0, :, ::-1]                    # a flipped copy of one of them
    centre = rng.choice(n)
    cluster = moved(x, np.full(15, centre), 0.3, rng)    # all close in the embedding
    xs = np.vstack([x, cluster])
    xs = np.vstack([xs, moved(xs, [n], 0.1, rng)])       # the copy: next to the first
    ys = np.concatenate([y, rng.integers(0, 4, 15), [(y[centre] + 1) % 4]])
    images = np.concatenate([textures(n, seed=7), layout, copy_of_first[None]])
    first, copy = n, n + 15
    from methods.aligned_correlation import aligned_correlation
    shared = aligned_correlation(layout[:5], layout[5:10])
    assert (shared >= 0.95).all()                         # the layout alone passes the threshold

    def thumbnails(rows):
        return images[rows], np.ones(len(rows), dtype=bool)

    plain = near_duplicate_groups(xs, ys, thumbnails=thumbnails, distinct_margin=None)
    assert (plain["group"][n:n + 15] >= 0).sum() >= 10    # without the test: one big false group
    found = near_duplicate_groups(xs, ys, thumbnails=thumbnails)
    g = found["group"]
    assert g[copy] >= 0 and g[copy] == g[first]           # the copy is kept
    assert (g[n + 1:n + 15] < 0).all()                    # the look-alikes are not
    assert found["pixel_pairs_not_distinct"] > 0
