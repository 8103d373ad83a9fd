"""Deep Self-Learning: ρ, η and prototypes on hand-made cases; correction on blobs."""

import numpy as np
import pytest

from conftest import blobs
from methods.self_learning import correct_labels, select_prototypes, self_learning


@pytest.fixture
def one_torch_thread():
    """Tiny models: one thread avoids oversubscription on the shared CI box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_rho_eta_prototypes_hand_made():
    # Unit vectors: x0 = e1, x1 = (0.96, 0.28, 0) (cos 0.96 to x0), x2 = e2,
    # x3 = e3. Pairwise cosines: S01 = .96, S12 = .28, every other pair 0.
    # The 16 entries of S sorted: 1 1 1 1 .96 .96 .28 .28 0 ... (8 zeros).
    # k = ceil(0.4 * 16) = 7  ->  S_c = 7th largest = .28.
    # rho_i = sum_j sign(S_ij - .28):
    #   row0 [1, .96, 0, 0]  -> +1 +1 -1 -1 = 0
    #   row1 [.96, 1, .28, 0] -> +1 +1  0 -1 = 1
    #   row2 [0, .28, 1, 0]   -> -1  0 +1 -1 = -1
    #   row3 [0, 0, 0, 1]     -> -1 -1 -1 +1 = -2
    # eta: x1 has rho_max -> min_j S_1j = 0; x0: max over {x1} = .96;
    #   x2: max over {x0, x1} = .28; x3: max over {x0, x1, x2} = 0.
    # Prototypes: eta < .95 excludes x0; by rho: x1, x2, x3.
    x = np.array([[1, 0, 0], [0.96, 0.28, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    found = select_prototypes(x * np.array([[3.0], [1.0], [0.5], [2.0]]))  # scale-free
    assert found["s_c"] == pytest.approx(0.28, abs=1e-6)
    assert found["rho"].tolist() == [0, 1, -1, -2]
    np.testing.assert_allclose(found["eta"], [0.96, 0.0, 0.28, 0.0], atol=1e-6)
    assert found["indices"].tolist() == [1, 2, 3]
    assert not found["fallback"]
    assert select_prototypes(x, num_prototypes=2)["indices"].tolist() == [1, 2]
    # a looser eta_max lets x0 in, right after x1 (rho 0 > -1)
    assert select_prototypes(x, eta_max=0.97)["indices"].tolist() == [1, 0, 2, 3]


def test_rho_ties_are_broken_by_eta_then_index():
    # x0 = x1 = e1 (duplicates), x2 = (.8, .6, 0), x3 = e2, x4 = e3.
    # S entries: 7 ones (5 diag + S01 twice), .8 x4, .6 x2, 0 x12;
    # k = ceil(0.4 * 25) = 10 -> S_c = .8.
    # rho: x0, x1: [1,1,.8,0,0] -> 0; x2: [.8,.8,1,.6,0] -> -1;
    #      x3: [0,0,.6,1,0] -> -3; x4: -3.
    # eta: x0, x1 tie at rho_max -> min row = 0 each (strict ">" as in the
    # paper, so the duplicates do not exclude each other); x2: .8;
    # x3: max(0, 0, .6) = .6; x4: 0.
    # Order (-rho, eta, index): x0, x1, x2, x4, x3.
    x = np.array(
        [[1, 0, 0], [1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64
    )
    found = select_prototypes(x)
    assert found["s_c"] == pytest.approx(0.8, abs=1e-6)
    assert found["rho"].tolist() == [0, 0, -1, -3, -3]
    np.testing.assert_allclose(found["eta"], [0, 0, 0.8, 0.6, 0], atol=1e-6)
    assert found["indices"].tolist() == [0, 1, 2, 4, 3]
    assert select_prototypes(x, num_prototypes=4)["indices"].tolist() == [0, 1, 2, 4]


def test_fallback_when_no_sample_passes_eta():
    found = select_prototypes(np.ones((5, 3)))  # identical vectors: eta = 1
    assert found["fallback"] and found["indices"].tolist() == [0]
    single = select_prototypes(np.array([[1.0, 2.0]]))
    assert single["indices"].tolist() == [0]


def test_correction_on_blobs_beats_noisy_labels():
    x, y, noisy = blobs(num_classes=5, per_class=200, dim=16, noise_rate=0.3, seed=1)
    found = correct_labels(x, noisy, samples_per_class=150, seed=0)
    noisy_acc = (noisy == y).mean()
    corrected_acc = (found["corrected"] == y).mean()
    assert noisy_acc < 0.75
    assert corrected_acc > noisy_acc + 0.15, (noisy_acc, corrected_acc)
    # confidence is the best-minus-second mean similarity, recomputed here
    sims = np.sort(found["class_similarity"], axis=1)
    np.testing.assert_allclose(found["confidence"], sims[:, -1] - sims[:, -2], rtol=1e-6)
    assert all(len(p) == 8 for p in found["prototypes"])
    # prototypes are sampled rows of their own (noisy) class
    for c, rows in enumerate(found["prototypes"]):
        assert (noisy[rows] == c).all()
    # same seed, same result
    again = correct_labels(x, noisy, samples_per_class=150, seed=0)
    assert np.array_equal(again["corrected"], found["corrected"])


def test_iterative_mlp_runs_and_is_deterministic(one_torch_thread):
    x, y, noisy = blobs(num_classes=4, per_class=100, dim=16, noise_rate=0.3, seed=2)
    kwargs = dict(train=True, epochs=3, hidden_dim=32, batch_size=64, seed=3)
    out = self_learning(x, noisy, **kwargs)
    assert [h["alpha"] for h in out["history"]] == [0.0, 0.5, 0.5]
    assert out["prediction"].shape == y.shape
    assert ((out["prediction_confidence"] > 0) & (out["prediction_confidence"] <= 1)).all()
    assert (out["corrected"] == y).mean() > (noisy == y).mean() + 0.1
    again = self_learning(x, noisy, **kwargs)
    assert np.array_equal(again["corrected"], out["corrected"])
    assert np.array_equal(again["prediction"], out["prediction"])


def test_iterative_cnn_tiny(tmp_path, one_torch_thread):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(12):
        c = i % 2
        img = np.full((16, 16, 3), 200 if c else 30, dtype=np.uint8)
        img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
        path = str(tmp_path / ("%02d.png" % i))
        Image.fromarray(img).save(path)
        paths.append(path)
        labels.append(c)
    out = self_learning(
        None, np.array(labels), train=True, model="cnn", image_paths=paths,
        epochs=2, batch_size=6, image_size=16, num_prototypes=2, seed=0, cnn_arch="mobilenet_v3_small",
    )
    assert out["corrected"].shape == (12,) and out["prediction"].shape == (12,)
    assert len(out["history"]) == 2


def test_plugin_import_does_not_pull_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, '.'); import methods.self_learning; "
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    )
    import os

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True)
