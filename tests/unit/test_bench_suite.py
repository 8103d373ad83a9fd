"""The benchmark suite's own arithmetic: injected noise, reliability bins,
detection scores on a set without wrong labels (benchmarks/bench_suite.py)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks"))

import bench_suite  # noqa: E402
import common  # noqa: E402

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_pair_map_is_a_symmetric_pairing_of_the_cifar10_classes():
    pairs = bench_suite.CIFAR10_PAIRS
    assert sorted(pairs) == CIFAR10
    assert all(pairs[pairs[c]] == c and pairs[c] != c for c in pairs)


@pytest.mark.parametrize("kind", ["uniform-1", "uniform-3", "pair-1", "pair-3"])
def test_injected_noise_flips_exactly_the_share_asked_for(kind):
    clean = np.random.default_rng(7).integers(0, 10, 20000)
    noisy = bench_suite.inject_noise(clean, CIFAR10, kind)
    pct = int(kind.split("-")[1])
    assert (noisy != clean).sum() == round(pct / 100 * len(clean))
    assert np.array_equal(noisy, bench_suite.inject_noise(clean, CIFAR10, kind))  # seeded
    wrong = np.flatnonzero(noisy != clean)
    if kind.startswith("pair"):
        assert all(CIFAR10[noisy[i]] == bench_suite.CIFAR10_PAIRS[CIFAR10[clean[i]]] for i in wrong)
    else:  # every other class is reached
        assert len({(clean[i], noisy[i]) for i in wrong}) > 50


def test_reliability_bins_and_max_gap():
    rng = np.random.default_rng(0)
    score = rng.random(20000)
    wrong = rng.random(20000) < score  # calibrated by construction
    cal = bench_suite.reliability(score, wrong)
    assert [b["count"] for b in cal["bins"]] == list(np.histogram(score, np.linspace(0, 1, 11))[0])
    assert cal["max_gap"] < 0.03
    shifted = bench_suite.reliability(np.clip(score + 0.2, 0, 1), wrong)
    assert shifted["max_gap"] > 0.15
    few = bench_suite.reliability(np.full(40, 0.9), np.zeros(40, bool))
    assert few["max_gap"] is None  # no bin holds 50 samples


def test_detection_scores_on_a_set_without_wrong_labels():
    m = common.detection_scores(np.zeros(500, bool), np.arange(500.0), np.arange(500) > 490)
    assert np.isnan(m["auroc"]) and np.isnan(m["precision_at_k"])
    assert m["precision_top1pct"] == 0.0 and m["num_flagged"] == 9 and m["precision"] == 0.0
    m = common.detection_scores(np.arange(1000) >= 990, np.arange(1000.0))
    assert m["auroc"] == 1.0 and m["precision_at_k"] == 1.0 and m["precision_top1pct"] == 1.0
