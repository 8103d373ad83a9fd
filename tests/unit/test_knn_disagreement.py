import numpy as np
import pytest

from methods.knn_disagreement import knn_disagreement

from conftest import blobs


def test_scores_are_fraction_of_disagreeing_neighbours():
    # two tight pairs far apart; sample 1 carries the other pair's label
    x = np.array([[1, 0], [1, 0.01], [0, 1], [0.01, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 1])
    out = knn_disagreement(x, y, k=1)
    np.testing.assert_allclose(out["score"], [1.0, 1.0, 0.0, 0.0])
    assert out["neighbour_label"].tolist() == [1, 0, 1, 1]


def test_separates_injected_noise_from_clean():
    from sklearn.metrics import roc_auc_score

    x, clean, noisy = blobs(num_classes=5, per_class=200, noise_rate=0.2, seed=3)
    out = knn_disagreement(x, noisy, k=10)
    auroc = roc_auc_score(noisy != clean, out["score"])
    assert auroc > 0.9, auroc
    # the majority label recovers the true class of most flipped samples
    flipped = noisy != clean
    assert (out["neighbour_label"][flipped] == clean[flipped]).mean() > 0.8


def test_exact_duplicates_do_not_count_themselves():
    x = np.ones((5, 3), dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1])
    out = knn_disagreement(x, y, k=4)
    # every sample sees all 4 others exactly once
    np.testing.assert_allclose(out["score"], [0.5, 0.5, 0.5, 0.75, 0.75])


def test_k_is_clipped_and_tiny_input_rejected():
    x = np.eye(3, dtype=np.float32)
    assert knn_disagreement(x, np.array([0, 1, 1]), k=50)["score"].shape == (3,)
    with pytest.raises(ValueError):
        knn_disagreement(x[:1], np.array([0]))
