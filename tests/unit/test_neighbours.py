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


def _clustered(n=6000, dim=32, modes=60, seed=0):
    """Rows around many small clusters (what embeddings of images look like
    to an IVF index), not one isotropic blob per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(modes, dim)).astype(np.float32)
    x = centres[rng.integers(0, modes, n)] + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
    return x


def test_auto_nprobe_reaches_the_target_recall_and_reports_it():
    x = _clustered()
    info = {}
    approx = cosine_neighbours(x, 10, exact=False, seed=0, info=info)
    measured = _recall(approx, cosine_neighbours(x, 10, exact=True))
    assert info["method"] == "ivf" and info["nprobe"] in (8, 16, 32, 64, 128, 256)
    assert info["recall_queries"] == 1000 and info["recall_at_k"] >= 0.95, info
    # the estimate on 1,000 rows is close to the recall over all rows
    assert measured >= 0.93 and abs(measured - info["recall_at_k"]) < 0.03, (measured, info)
    # a lower target probes no more cells
    low = {}
    cosine_neighbours(x, 10, exact=False, seed=0, info=low, target_recall=0.5)
    assert low["nprobe"] <= info["nprobe"]


def test_shared_neighbours_searches_each_matrix_once_with_the_same_answers(monkeypatch):
    import methods.neighbours as nb

    x = _clustered(n=3000)
    alone10 = cosine_neighbours(x, 10, exact=True)
    alone20 = cosine_neighbours(x, 20, exact=True)
    calls = []
    search = nb._search
    monkeypatch.setattr(nb, "_search", lambda *a, **kw: calls.append(a[1]) or search(*a, **kw))
    with nb.shared_neighbours(k=40):
        first = cosine_neighbours(x, 10, exact=True)
        again = cosine_neighbours(x.copy(), 20, exact=True)  # a copy: same values
        other = cosine_neighbours(x[:2000], 10, exact=True)
    assert calls == [40, 40]  # one search per distinct matrix, 40 deep
    np.testing.assert_array_equal(first, alone10)
    np.testing.assert_array_equal(again, alone20)
    assert other.shape == (2000, 10)
    calls.clear()
    cosine_neighbours(x, 10, exact=True)  # outside the scope: no cache
    assert calls == [10]
