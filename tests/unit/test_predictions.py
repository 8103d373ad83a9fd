"""methods.predictions: reading predictions, class sets, in-sample check,
and the pool of a user's model with the plugin's own probabilities."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from methods.noise_estimate import estimate_label_noise, pool_probabilities
from methods.predictions import (
    align_classes,
    from_label_confidence,
    in_sample_check,
    other_class_suggestion,
    to_probabilities,
)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _world(n=4000, k=5, noise=0.3, seed=0):
    """True and noisy labels, a strong and a weak out-of-sample model."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    noisy = np.where(rng.random(n) < noise, (true + rng.integers(1, k, n)) % k, true)
    rows = np.arange(n)
    strong = rng.normal(size=(n, k))
    strong[rows, true] += 3.5
    weak = rng.normal(size=(n, k))
    weak[rows, true] += 1.2
    # the weak model has also seen something of the labels' process
    weak[rows, noisy] += 0.3
    return true, noisy, _softmax(strong), _softmax(weak)


def test_probabilities_and_logits_are_told_apart():
    z = np.random.default_rng(0).normal(size=(50, 4))
    p = _softmax(z)
    got, kind = to_probabilities(p)
    assert kind == "probabilities" and np.allclose(got, p)
    got, kind = to_probabilities(z)
    assert kind == "logits" and np.allclose(got, p)
    got, kind = to_probabilities(np.log(p))  # log-probabilities read as logits
    assert kind == "logits" and np.allclose(got, p)
    z[3] = np.nan  # no prediction: stays NaN, the rest decides the kind
    got, kind = to_probabilities(z)
    assert kind == "logits" and np.isnan(got[3]).all() and np.isfinite(got[4]).all()
    with pytest.raises(ValueError):
        to_probabilities(np.ones(5))


def test_align_classes_reorders_drops_extra_and_blanks_unknown():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    out, info = align_classes(p, ["b", "a", "x"], ["a", "b", "c"], labels=np.array([1, 2]))
    # row 0: a=0.2, b=0.7 (x dropped, c unknown: floor), renormalised
    assert out[0].argmax() == 1 and out[0, 0] == pytest.approx(0.2 / 0.901, rel=1e-3)
    assert np.allclose(out[1], 1 / 3)  # its label "c" is unknown to the model
    assert info["extra_classes"] == ["x"] and info["missing_classes"] == ["c"]
    assert info["mass_outside"] == pytest.approx(0.45)
    assert info["num_uninformative"] == 1
    with pytest.raises(ValueError, match="none of the label classes"):
        align_classes(p, ["x", "y", "z"], ["a", "b"])


def test_label_confidence_only_ranks_confident_disagreements():
    true, noisy, strong, _ = _world()
    pred = strong.argmax(1)
    p = from_label_confidence(noisy, pred, strong.max(1), strong.shape[1])
    rows = np.arange(len(noisy))
    wrong = noisy != true
    auc = roc_auc_score(wrong, 1 - p[rows, noisy])
    assert auc > 0.85
    # weaker than the full probabilities (no second choice), as the summary says
    assert auc <= roc_auc_score(wrong, 1 - strong[rows, noisy]) + 1e-9


def test_in_sample_check_flags_a_memoriser_only():
    true, noisy, strong, weak = _world()
    k = strong.shape[1]
    memorised = np.full((len(noisy), k), 0.02)
    memorised[np.arange(len(noisy)), noisy] = 0.92
    flagged = in_sample_check(memorised, noisy, weak)
    assert flagged["in_sample"] is True and "IN-SAMPLE" in flagged["message"]
    assert flagged["agreement_on_suspects"] == pytest.approx(1.0)
    honest = in_sample_check(strong, noisy, weak)
    assert honest["in_sample"] is False, honest
    # without a reference: statistics only, no verdict
    assert in_sample_check(strong, noisy)["in_sample"] is None


def test_strong_honest_model_not_flagged_when_the_reference_overestimates_noise():
    true, noisy, strong, _ = _world(noise=0.1, seed=1)
    rng = np.random.default_rng(1)
    junk = _softmax(rng.normal(size=strong.shape) * 0.3)  # a near-useless reference
    check = in_sample_check(strong, noisy, junk)
    assert check["in_sample"] is None and "too weak" in check["message"], check


def test_pool_of_strong_user_model_and_plugin_probabilities():
    """The user's stronger model is never silenced by the plugin's own
    probabilities (the old ``primary``-alone rule), and the pool is at
    least as good as the best source."""
    true, noisy, strong, weak = _world(seed=2)
    wrong = noisy != true
    rows = np.arange(len(noisy))
    sources = {"label_quality": weak, "predictions": strong}
    est = estimate_label_noise(sources, noisy, primary=["label_quality", "predictions"],
                               ranking="self_confidence")
    assert est["pool_weights"]["predictions"] > est["pool_weights"]["label_quality"]
    auc_pool = roc_auc_score(wrong, est["p_wrong"])
    auc_strong = roc_auc_score(wrong, 1 - strong[rows, noisy])
    auc_weak = roc_auc_score(wrong, 1 - weak[rows, noisy])
    assert auc_pool >= auc_strong - 0.003 and auc_pool > auc_weak + 0.05
    # a single primary source is still used alone
    alone = estimate_label_noise(sources, noisy, primary="label_quality")
    assert alone["pool_weights"] == {"label_quality": 1.0}


def test_pool_gives_a_junk_source_no_say():
    true, noisy, strong, _ = _world(seed=3)
    junk = _softmax(np.random.default_rng(3).normal(size=strong.shape))
    pooled, weights = pool_probabilities({"model": strong, "junk": junk}, noisy)
    assert weights["junk"] < 0.1 * weights["model"]
    rows = np.arange(len(noisy))
    wrong = noisy != true
    assert roc_auc_score(wrong, 1 - pooled[rows, noisy]) >= \
        roc_auc_score(wrong, 1 - strong[rows, noisy]) - 0.002


def test_other_class_suggestion():
    pooled = np.array([[0.6, 0.3, 0.1], [0.2, 0.1, 0.7]])
    labels = np.array([0, 2])
    sugg, conf = other_class_suggestion(pooled, labels, np.array([0.5, 0.2]))
    assert sugg.tolist() == [1, 0]
    assert conf[0] == pytest.approx(0.5 * 0.3 / 0.4) and conf[1] == pytest.approx(0.2 * 2 / 3)
