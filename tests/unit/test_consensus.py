import numpy as np
import pytest

from methods.consensus import (
    auroc as _auroc,
    label_agreement_score,
    learn_weights,
    noise_consensus,
    normalise,
    rank_normalise,
)


def _problem(n=2000, num_classes=4, noise_rate=0.2, seed=0):
    """Labels with known flips and three synthetic detectors of known quality."""
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, num_classes, n)
    noisy = clean.copy()
    flip = rng.random(n) < noise_rate
    noisy[flip] = (clean[flip] + rng.integers(1, num_classes, flip.sum())) % num_classes
    good = flip * 1.0 + rng.normal(0, 0.5, n)          # higher = noisier, strong
    weak = flip * 1.0 + rng.normal(0, 3.0, n)          # higher = noisier, weak
    cleanish = -(flip * 2.0) + rng.normal(0, 1.0, n)   # higher = cleaner, strong
    junk = rng.normal(0, 1.0, n)                       # no information
    return clean, noisy, flip, dict(good=good, weak=weak, cleanish=cleanish, junk=junk)


def test_rank_normalise_per_class_range_ties_and_missing():
    score = np.array([3.0, 1.0, 1.0, 2.0, np.nan, 10.0, 20.0, 5.0])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    out = rank_normalise(score, labels)
    # class 0: 1,1 tie at the bottom, then 2, then 3
    np.testing.assert_allclose(out[:4], [1.0, 1 / 6, 1 / 6, 2 / 3])
    assert np.isnan(out[4])
    np.testing.assert_allclose(out[5:7], [0.0, 1.0])
    assert out[7] == 0.5  # single sample in its class
    # scale/offset of a class does not matter per class, but does globally
    glob = rank_normalise(score, labels, per_class=False)
    assert glob[6] == 1.0 and glob[1] == glob[2] == pytest.approx(0.5 / 6)


def test_normalise_blend_is_mean_of_modes():
    rng = np.random.default_rng(1)
    s, y = rng.normal(size=100), rng.integers(0, 3, 100)
    np.testing.assert_allclose(
        normalise(s, y, "blend"), (rank_normalise(s, y) + rank_normalise(s, y, False)) / 2
    )
    with pytest.raises(ValueError):
        normalise(s, y, "bogus")


def test_label_agreement_score_orientation():
    given = np.array([0, 0, 1, 2])
    predicted = np.array([1, 0, 1, -1])
    conf = np.array([0.9, 0.8, np.nan, 0.5])
    s = label_agreement_score(given, predicted, conf)
    np.testing.assert_allclose(s[:3], [0.9, -0.8, -1.0])
    assert np.isnan(s[3])


def test_consensus_equal_weights_orients_and_beats_weak_inputs():
    _, noisy, flip, d = _problem()
    scores = dict(good=d["good"], weak=d["weak"], cleanish=-d["cleanish"])
    out = noise_consensus(scores, noisy, normalisation="per_class")
    assert out["weights_source"].startswith("equal")
    assert out["weights"] == pytest.approx({k: 1 / 3 for k in scores})
    ns = out["noise_score"]
    assert ns.min() >= 0 and ns.max() <= 1
    auc = _auroc(flip, ns)
    assert auc > _auroc(flip, d["weak"]) + 0.15
    assert auc > 0.9


def test_learned_weights_ignore_junk_and_are_deterministic():
    _, noisy, flip, d = _problem(seed=3)
    scores = dict(good=d["good"], junk=d["junk"], weak=d["weak"])
    rng = np.random.default_rng(0)
    verified = np.full(len(noisy), -1)
    pick = rng.choice(len(noisy), 300, replace=False)
    verified[pick] = flip[pick].astype(int)
    a = noise_consensus(scores, noisy, verified=verified, seed=7)
    b = noise_consensus(scores, noisy, verified=verified, seed=7)
    assert a["weights_source"].startswith("verified")
    assert a["weights"] == b["weights"]
    np.testing.assert_array_equal(a["noise_score"], b["noise_score"])
    w = a["weights"]
    assert all(v >= 0 for v in w.values())
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["good"] > 0.6 and w["junk"] < 0.15
    equal = noise_consensus(scores, noisy, normalisation=a["normalisation"])
    assert _auroc(flip, a["noise_score"]) > _auroc(flip, equal["noise_score"]) + 0.03
    assert a["verified_auc"]["noise_score"] > a["verified_auc"]["junk"] + 0.2


def test_too_few_verified_falls_back_to_equal():
    _, noisy, flip, d = _problem(n=300)
    verified = np.full(len(noisy), -1)
    verified[:5] = 1
    verified[5:50] = 0
    out = noise_consensus(dict(a=d["good"], b=d["weak"]), noisy, verified=verified)
    assert out["weights_source"].startswith("equal (only 5 verified mislabeled")
    assert out["normalisation"] == "blend"


def test_learn_weights_nonnegative_even_for_anticorrelated_input():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    x = np.column_stack([y + rng.normal(0, 0.3, 400), -(y * 1.0) + rng.normal(0, 0.3, 400)])
    w, _ = learn_weights(x, y, seed=0)
    assert w[0] > 0.5 and w[1] == pytest.approx(0.0, abs=1e-6)


def test_missing_values_use_the_other_inputs():
    _, noisy, flip, d = _problem(n=400)
    partial = d["good"].copy()
    partial[:200] = np.nan
    out = noise_consensus(dict(good=partial, weak=d["weak"]), noisy)
    ns = out["noise_score"]
    assert np.isfinite(ns).all()
    # where only `weak` exists, the score is that input's normalised value
    np.testing.assert_allclose(ns[:200], out["normalised"]["weak"][:200], rtol=1e-6)
    none = noise_consensus(dict(a=np.full(10, np.nan)), np.zeros(10, int))
    assert np.isnan(none["noise_score"]).all()


def test_suggested_label_vote():
    given = np.array([0, 0, 0, 1])
    knn = (np.array([1, 1, 0, -1]), np.array([0.9, 0.2, 1.0, 0.0]))
    scan = (np.array([2, 1, 0, -1]), np.array([0.3, 0.9, 1.0, 0.0]))
    out = noise_consensus(
        dict(knn=np.array([0.9, 0.5, 0.1, np.nan]), scan=np.array([0.3, 0.9, -1.0, np.nan])),
        given,
        suggestions=dict(knn=knn, scan=scan),
    )
    np.testing.assert_array_equal(out["suggested_label"], [1, 1, 0, -1])
    assert out["suggested_confidence"][0] == pytest.approx(0.9 / 1.2, rel=1e-5)
    assert out["suggested_confidence"][2] == pytest.approx(1.0)
    assert out["suggested_confidence"][3] == 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        noise_consensus({}, np.zeros(3, int))
    with pytest.raises(ValueError):
        noise_consensus({"a": np.zeros(2)}, np.zeros(3, int))
    with pytest.raises(ValueError):
        noise_consensus({"a": np.zeros(3)}, np.zeros(3, int), normalisation="x")


def _verified_sample(truth, size, rng):
    verified = np.full(len(truth), -1)
    pick = rng.choice(len(truth), size, replace=False)
    verified[pick] = truth[pick].astype(int)
    return verified


def test_learned_weights_must_beat_the_baseline_on_held_out_verdicts():
    rng = np.random.default_rng(0)
    n = 4000
    truth = rng.random(n) < 0.2
    labels = rng.integers(0, 4, n)
    base = truth * 1.5 + rng.normal(size=n)          # AUROC ~0.85
    junk = {"junk%d" % i: rng.random(n) for i in range(4)}
    verified = _verified_sample(truth, 200, rng)
    out = noise_consensus(dict(base=base, **junk), labels, verified=verified, baseline="base")
    assert out["baseline_kept"]
    assert out["weights"]["base"] == 1.0
    assert out["weights_source"].startswith("base alone")
    # an input with independent information is worth mixing in
    other = truth * 1.5 + rng.normal(size=n)
    out = noise_consensus(dict(base=base, other=other), labels, verified=verified, baseline="base")
    assert not out["baseline_kept"] and out["weights_source"].startswith("verified")
    assert out["cross_validated_auc"] > 0.5
    assert _auroc(truth, out["noise_score"]) > _auroc(truth, base) + 0.02
