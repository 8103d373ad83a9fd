import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from conftest import blobs  # noqa: E402
from methods.scan import (  # noqa: E402
    class_probabilities,
    cluster_metrics,
    hungarian_match,
    mine_neighbours,
    nt_xent_loss,
    scan,
    scan_loss,
    simclr_features,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: one thread avoids oversubscribing a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_scan_loss_hand_computed():
    import torch

    ln3 = math.log(3.0)
    # anchors: softmax [.5, .5] and [.75, .25]; neighbours: [.75, .25] twice
    anchors = torch.tensor([[0.0, 0.0], [ln3, 0.0]])
    neighbours = torch.tensor([[ln3, 0.0], [ln3, 0.0]])
    total, consistency, entropy = scan_loss(anchors, neighbours, entropy_weight=5.0)
    # <p_i, p_j> = 0.5 and 0.625
    expected_consistency = -(math.log(0.5) + math.log(0.625)) / 2
    # mean anchor prediction = [0.625, 0.375]
    expected_entropy = -(0.625 * math.log(0.625) + 0.375 * math.log(0.375))
    assert consistency.item() == pytest.approx(expected_consistency, abs=1e-6)
    assert consistency.item() == pytest.approx(0.5815754, abs=1e-6)
    assert entropy.item() == pytest.approx(expected_entropy, abs=1e-6)
    assert entropy.item() == pytest.approx(0.6615635, abs=1e-6)
    assert total.item() == pytest.approx(0.5815754 - 5 * 0.6615635, abs=1e-5)
    total0, _, _ = scan_loss(anchors, neighbours, entropy_weight=0.0)
    assert total0.item() == pytest.approx(expected_consistency, abs=1e-6)


def test_scan_loss_extremes():
    import torch

    # confident and consistent, balanced: consistency 0, entropy ln 2
    big = 50.0
    anchors = torch.tensor([[big, 0.0], [0.0, big]])
    total, consistency, entropy = scan_loss(anchors, anchors.clone(), 5.0)
    assert consistency.item() == pytest.approx(0.0, abs=1e-6)
    assert entropy.item() == pytest.approx(math.log(2), abs=1e-6)
    # confident but inconsistent pairs are heavily penalised
    _, bad, _ = scan_loss(anchors, anchors.flip(0), 5.0)
    assert bad.item() > 10
    # all samples in one cluster: entropy 0 (the degenerate solution)
    same = torch.tensor([[big, 0.0], [big, 0.0]])
    _, _, degenerate = scan_loss(same, same, 5.0)
    assert degenerate.item() == pytest.approx(0.0, abs=1e-6)
    # gradient flows to both anchors and neighbours
    a = torch.zeros(3, 4, requires_grad=True)
    b = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    scan_loss(a, b)[0].backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_nt_xent_hand_computed():
    import torch

    # two images, two identical views each, orthogonal between images, T = 1
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    # each view: partner at cos 1, the two others at cos 0
    expected = -math.log(math.e / (math.e + 2.0))
    assert nt_xent_loss(z, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)


def test_hungarian_recovers_permutation():
    y = np.repeat(np.arange(4), 5)
    perm = np.array([2, 0, 3, 1])
    clusters = perm[y]
    mapping = hungarian_match(clusters, y)
    assert mapping.tolist() == [1, 3, 0, 2]
    m = cluster_metrics(y, clusters)
    assert m["acc"] == 1.0 and m["nmi"] == pytest.approx(1.0) and m["ari"] == pytest.approx(1.0)


def test_hungarian_is_optimal_not_greedy():
    # counts[cluster, class] = [[5, 4], [4, 0]]: greedy takes 0->0 (5 + 0 = 5),
    # the optimal one-to-one matching is 0->1, 1->0 (4 + 4 = 8)
    pairs = [(0, 0)] * 5 + [(0, 1)] * 4 + [(1, 0)] * 4
    clusters, labels = map(np.array, zip(*pairs))
    mapping = hungarian_match(clusters, labels)
    assert mapping.tolist() == [1, 0]
    assert cluster_metrics(labels, clusters, mapping)["acc"] == pytest.approx(8 / 13)


def test_hungarian_over_clustering_and_empty_cluster():
    # 3 clusters, 2 classes: clusters 0 and 2 are both mostly class 1
    clusters = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    mapping = hungarian_match(clusters, labels, num_clusters=4, num_classes=2)
    assert mapping[0] == 1 and mapping[1] == 0
    assert mapping[2] in (0, 1)  # unmatched: majority (tie here)
    assert mapping[3] == -1  # no member
    clusters = np.array([0, 0, 2, 2, 2, 1, 1])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    mapping = hungarian_match(clusters, labels, 3, 2)
    # counts: cluster 0 = [2, 0], 1 = [0, 2], 2 = [2, 1]. The one-to-one part
    # takes 1 -> 1 and one of 0/2 -> 0 (a tie); the other one is unmatched and
    # goes to its majority class 0
    assert mapping.tolist() == [0, 1, 0]


def test_class_probabilities_sum_matched_clusters():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    out = class_probabilities(probs, np.array([1, 0, 1]), 3)
    assert np.allclose(out, [[0.3, 0.7, 0.0], [0.1, 0.9, 0.0]])
    dropped = class_probabilities(probs, np.array([0, -1, 1]), 2)
    assert np.allclose(dropped, [[0.5, 0.2], [0.1, 0.8]])


def test_mine_neighbours_cosine():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [10, 0.5]], dtype=np.float32)
    nb = mine_neighbours(x, k=1)
    assert nb[:, 0].tolist() == [4, 4, 3, 2, 0]


def test_scan_clusters_blobs_with_high_acc_and_is_deterministic():
    x, y, _ = blobs(num_classes=5, per_class=80, dim=16, noise_rate=0.0, seed=3, spread=0.5)
    kwargs = dict(num_clusters=5, k=10, epochs=15, min_steps=80, self_label_epochs=5, batch_size=128,
                  num_heads=3, seed=7)
    first = scan(x, **kwargs)
    metrics = cluster_metrics(y, first["cluster"])
    assert metrics["acc"] > 0.95, metrics
    assert cluster_metrics(y, first["cluster_before_self_label"])["acc"] > 0.9
    assert first["probs"].shape == (len(y), 5)
    assert np.allclose(first["probs"].sum(1), 1, atol=1e-4)
    assert 0 <= first["best_head"] < 3 and len(first["head_losses"]) == 3
    assert first["best_head"] == int(np.argmin([h["total"] for h in first["head_losses"]]))
    second = scan(x, **kwargs)
    assert np.array_equal(first["cluster"], second["cluster"])
    assert np.allclose(first["probs"], second["probs"])
    # self-labeling only keeps weights at which the confident set is largest
    assert max(first["confident_counts"]) >= first["confident_counts"][0]


def test_scan_max_steps_caps_passes_over_large_sets():
    x, y, _ = blobs(num_classes=4, per_class=100, dim=16, noise_rate=0.0, seed=5, spread=0.5)
    kwargs = dict(num_clusters=4, k=10, epochs=10, min_steps=0, self_label_epochs=4, batch_size=64,
                  num_heads=2, seed=3)
    steps_per_pass = len(y) // 64  # 6
    full = scan(x, max_steps=10_000, **kwargs)
    assert full["clustering_steps_run"] == 10 * steps_per_pass
    assert full["clustering_epochs_run"] == 10
    capped = scan(x, max_steps=15, **kwargs)  # 2.5 passes, then 3 steps per self-labeling epoch
    assert capped["clustering_steps_run"] == 15 and capped["clustering_epochs_run"] == 3
    assert cluster_metrics(y, capped["cluster"])["acc"] > 0.9
    # a cap above the steps the epochs make changes nothing, bit for bit
    same = scan(x, max_steps=10 * steps_per_pass, **kwargs)
    assert np.array_equal(same["probs"], full["probs"])
    assert not np.array_equal(capped["probs"], full["probs"])


def test_simclr_features_handful_of_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        path = str(tmp_path / ("im%d.png" % i))
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    paths.append(str(tmp_path / "missing.png"))
    features, failed, losses = simclr_features(
        paths, weights=None, epochs=1, batch_size=3, image_size=32, seed=0
    )
    assert features.shape == (7, 512)
    assert np.isfinite(features[:6]).all() and np.isnan(features[6]).all()
    assert [i for i, _ in failed] == [6]
    assert len(losses) == 1 and np.isfinite(losses[0])
    again, _, _ = simclr_features(paths[:6], weights=None, epochs=1, batch_size=3,
                                  image_size=32, seed=0)
    assert np.allclose(features[:6], again, atol=1e-5)
