"""Confident Learning on constructed noise with a known transition matrix."""

import numpy as np
import pytest

from methods.confident_learning import (
    anchor_noise_rates,
    anchor_transition,
    confident_joint,
    confident_learning,
    noise_posterior,
    per_class_thresholds,
    shift_to_mean,
    uniform_noise_test,
)

# rows: true class, columns: given class; class-pair noise of different sizes
TRANSITION = np.array([
    [0.80, 0.15, 0.05, 0.00],
    [0.10, 0.90, 0.00, 0.00],
    [0.00, 0.00, 0.95, 0.05],
    [0.00, 0.05, 0.15, 0.80],
])


def _noisy_posterior_problem(n=40_000, seed=0, concentration=100.0):
    """Given labels drawn through TRANSITION and a model whose probabilities
    are the (jittered) noisy-label posterior p(ỹ | x) = T[y*(x)] — the
    setting in which the paper proves the confident joint exact."""
    rng = np.random.default_rng(seed)
    k = len(TRANSITION)
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    true = rng.choice(k, n, p=prior)
    given = np.array([rng.choice(k, p=TRANSITION[t]) for t in true])
    probs = np.stack([rng.dirichlet(concentration * TRANSITION[t] + 0.05) for t in true])
    return probs, given, true, prior


def test_thresholds_are_mean_self_confidence():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(per_class_thresholds(probs, labels), [0.75, 0.75])
    joint, assigned = confident_joint(probs, labels)
    # sample 1 (0.6 < 0.75 for class 0, 0.4 < 0.75 for class 1): uncounted
    np.testing.assert_array_equal(assigned, [0, -1, -1, 1])
    np.testing.assert_array_equal(joint, [[1, 0], [0, 1]])


def test_estimated_joint_and_noise_rate_recover_the_truth():
    probs, given, true, prior = _noisy_posterior_problem()
    out = confident_learning(probs, given)
    true_joint = np.zeros((4, 4))
    np.add.at(true_joint, (given, true), 1.0)
    true_joint /= len(given)
    # stated tolerance: every cell within 0.01, the noise rate within 0.01
    assert np.abs(out["joint"] - true_joint).max() < 0.01
    assert out["noise_rate"] == pytest.approx((given != true).mean(), abs=0.01)
    np.testing.assert_allclose(out["transition"], TRANSITION, atol=0.03)
    # the largest pair: true 0 given 1 (0.4 * 0.15 = 6% of the samples)
    assert out["pairs"][0][:2] == (1, 0)
    assert out["pairs"][0][2] == pytest.approx(((given == 1) & (true == 0)).sum(), rel=0.15)


def test_prune_by_noise_rate_finds_the_wrong_labels():
    probs, given, true, _ = _noisy_posterior_problem(seed=1)
    out = confident_learning(probs, given)
    wrong = given != true
    found = out["is_issue"]
    precision = (found & wrong).sum() / found.sum()
    recall = (found & wrong).sum() / wrong.sum()
    assert precision > 0.85 and recall > 0.85
    # ranking by margin beats chance by far
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(wrong, out["margin"]) > 0.9


def test_never_marks_a_whole_class_and_not_the_models_own_choice():
    probs = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])
    labels = np.array([0, 0, 1, 1])
    out = confident_learning(probs, labels)
    assert not out["is_issue"][labels == 1].any()  # given = argmax
    assert out["is_issue"][labels == 0].sum() <= 1


def test_noise_posterior_is_bayes_rule():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 0])
    t = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7]])
    p_wrong, likely = noise_posterior(probs, labels, t)
    for i in range(2):
        num = probs[i] * t[:, labels[i]]
        assert p_wrong[i] == pytest.approx(1 - num[labels[i]] / num.sum())
    assert likely[1] == 2


def test_anchor_rates_recover_uniform_noise():
    rng = np.random.default_rng(3)
    n, k, rate = 30_000, 5, 0.03
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < rate
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    # a model that is confident on half the samples and confused on the rest
    probs = np.full((n, k), 0.02)
    sure = rng.random(n) < 0.5
    probs[np.arange(n), true] = np.where(sure, 0.92, 0.4)
    other = (true + 1) % k
    probs[np.arange(n), other] += np.where(sure, 0.0, 0.52)
    probs /= probs.sum(axis=1, keepdims=True)
    estimate, per_class = anchor_noise_rates(probs, given)
    assert estimate == pytest.approx(rate, abs=0.006)
    assert per_class.shape == (k,)
    # Confident Learning counts the confused half as noise on this model
    cl = confident_learning(probs, given)
    assert cl["noise_rate"] > estimate


def test_shift_to_mean_keeps_order():
    p = np.array([0.9, 0.5, 0.2, 0.01, 0.6])
    q = shift_to_mean(p, 0.1)
    assert q.mean() == pytest.approx(0.1, abs=1e-4)
    np.testing.assert_array_equal(np.argsort(p), np.argsort(q))


def test_anchor_transition_recovers_a_known_transition_matrix():
    """The anchors' T on class-pair noise: the posterior problem above has
    anchors (the Dirichlet draws of a true class are sharply that class)."""
    probs, given, true, prior = _noisy_posterior_problem(seed=2, concentration=300.0)
    # the model's posterior p(ỹ | x) is T[y*]: its anchors for class j are
    # the samples with the largest p̂_j, i.e. true class j
    found = anchor_transition(probs, given, quantile=0.2)
    # stated tolerance: each cell within 0.04 (add-one smoothing and the
    # shrinkage of the per-class rates move small cells a little)
    assert np.abs(found["transition"] - TRANSITION).max() < 0.04
    np.testing.assert_allclose(found["transition"].sum(axis=1), 1.0)
    true_rate = (given != true).mean()
    assert found["rate"] == pytest.approx(true_rate, abs=0.02)


def test_anchor_rates_are_shrunk_when_classes_differ_only_by_chance():
    rng = np.random.default_rng(4)
    n, k, rate = 20_000, 10, 0.01
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < rate
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    probs = np.full((n, k), 0.01)
    probs[np.arange(n), true] = 0.91
    found = anchor_transition(probs, given)
    # equal true rates: the spread between classes is binomial noise only,
    # so every class gets (nearly) the mean rate, none gets 0
    assert found["shrinkage"] > 0.8
    assert found["per_class"].min() > 0.5 * found["per_class"].mean()
    assert found["rate"] == pytest.approx((given != true).mean(), abs=0.005)


def _anchor_counts(rows, take, rng):
    """Anchor count table: for each true class, ``take`` given labels drawn
    from its row of a transition matrix."""
    return np.stack([rng.multinomial(take, r) for r in rows])


def test_uniform_noise_test_tells_uniform_from_structured_noise():
    k, take, rate = 10, 250, 0.04
    uniform = np.full((k, k), rate / (k - 1))
    np.fill_diagonal(uniform, 1 - rate)
    pair = np.eye(k) * (1 - rate)
    pair[np.arange(k), (np.arange(k) + 1) % k] = rate  # each class into one other
    p_uniform = [uniform_noise_test(_anchor_counts(uniform, take, np.random.default_rng(s)), seed=s)
                 for s in range(20)]
    p_pair = [uniform_noise_test(_anchor_counts(pair, take, np.random.default_rng(s)), seed=s)
              for s in range(5)]
    # a valid test: under uniform noise p < 0.05 about 1 time in 20 (stated
    # bound: at most 3 of 20); class-pair noise of the same rate always found
    assert sum(p < 0.05 for p in p_uniform) <= 3
    assert max(p_pair) < 0.01
    # deterministic for a seed
    counts = _anchor_counts(pair, take, np.random.default_rng(0))
    assert uniform_noise_test(counts, seed=1) == uniform_noise_test(counts, seed=1)


def test_uniform_noise_makes_the_posterior_rank_as_self_confidence():
    rng = np.random.default_rng(5)
    n, k, rate = 20_000, 10, 0.03
    true = rng.integers(0, k, n)
    given = true.copy()
    flip = rng.random(n) < rate
    given[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), true] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # (the test's level is checked over 20 seeds above; here one draw, at
    # level 0.01, is enough to take the uniform branch: p = 0.035)
    found = anchor_transition(probs, given, uniform_alpha=0.01)
    assert found["uniform"] and found["uniform_p_value"] >= 0.01
    posterior, _ = noise_posterior(probs, given, found["transition"])
    self_conf = probs[np.arange(n), given]
    # one rate for every class: the posterior is a decreasing function of p̂_ỹ
    order = np.argsort(-self_conf, kind="stable")
    assert np.all(np.diff(posterior[order]) >= -1e-12)
    # uniform_alpha=0 skips the test: the class-conditional matrix is kept
    assert not anchor_transition(probs, given, uniform_alpha=0)["uniform"]
