import numpy as np

from methods.neighbours import cosine_neighbours

from conftest import blobs


def _recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)])


def test_ivf_search_finds_most_exact_neighbours():
    x, _, _ = blobs(num_classes=20, per_class=500, noise_rate=0.0, seed=5, dim=32)
    exact = cosine_neighbours(x, 10, exact=True)
    approx = cosine_neighbours(x, 10, exact=False, seed=0)
    assert approx.shape == exact.shape
    assert (approx != np.arange(len(x))[:, None]).all()  # never itself
    assert _recall(approx, exact) > 0.9, _recall(approx, exact)


def test_ivf_search_is_deterministic_and_handles_tiny_inputs():
    x, _, _ = blobs(num_classes=3, per_class=200, noise_rate=0.0, seed=1, dim=16)
    a = cosine_neighbours(x, 5, exact=False, seed=3)
    b = cosine_neighbours(x, 5, exact=False, seed=3)
    np.testing.assert_array_equal(a, b)
    # 5 lists of ~40 rows: one probed list cannot hold k + 1 = 61 rows
    small = cosine_neighbours(x[:200], 60, exact=False, nprobe=1)
    assert small.shape == (200, 60) and (small >= 0).all()
    assert (small != np.arange(200)[:, None]).all()
    assert _recall(small, cosine_neighbours(x[:200], 60, exact=True)) > 0.99
