import os
import sys

import numpy as np
import pytest

from methods.dupes import count_dupes, dupes, split_halves

from conftest import blobs

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny problems: one thread avoids spin-waiting on a busy 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_count_dupes_known_answer():
    counts = np.array(
        [
            [10, 0, 0],  # always its own class: no dupe
            [0, 9, 1],   # label 0, predicted 1 nine times: dupe of class 1
            [2, 4, 4],   # label 0, tie between 1 and 2: lowest index wins
            [7, 3, 0],   # label 1, predicted 0 seven times: below threshold
            [0, 0, 10],  # label 0, always 2, but confirmed correct (ignored)
            [0, 0, 10],  # label 2: no other class ever predicted
        ]
    )
    labels = np.array([0, 0, 0, 1, 0, 2])
    ignore = np.array([False, False, False, False, True, False])
    out = count_dupes(counts, labels, threshold=8, ignore=ignore)
    assert out["dupe_count"].tolist() == [0, 9, 4, 7, 10, 0]
    assert out["dupe_label"].tolist() == [-1, 1, 1, 0, 2, -1]
    assert out["flagged"].tolist() == [False, True, False, False, False, False]
    # the ignored sample keeps its count; with a lower threshold sample 3 flags
    out7 = count_dupes(counts, labels, threshold=7)
    assert out7["flagged"].tolist() == [False, True, False, True, True, False]


def test_split_is_stratified_half_and_half():
    labels = np.array([0] * 7 + [1] * 10 + [2] * 1)
    a = split_halves(labels, np.random.default_rng(0))
    for c, m in ((0, 7), (1, 10), (2, 1)):
        assert a[labels == c].sum() in (m // 2, (m + 1) // 2)
    b = split_halves(labels, np.random.default_rng(1))
    assert (a != b).any()


def test_flipped_samples_are_dupes_of_their_true_class():
    x, clean, noisy = blobs(num_classes=4, per_class=50, dim=16, noise_rate=0.1, seed=1)
    out = dupes(noisy, embeddings=x, rounds=4, threshold=4, seed=0)
    assert out["counts"].sum(axis=1).tolist() == [4] * len(noisy)  # one prediction per round
    flipped = noisy != clean
    assert flipped.sum() > 10
    # well-separated blobs: nearly every flipped sample is a 4/4 dupe of its true class
    hit = out["flagged"][flipped] & (out["dupe_label"][flipped] == clean[flipped])
    assert hit.mean() > 0.85, hit.mean()
    assert out["flagged"][~flipped].mean() < 0.03
    assert min(out["round_accuracy"]) > 0.8


def test_deterministic_for_a_seed():
    x, _, noisy = blobs(num_classes=3, per_class=40, noise_rate=0.3, seed=2, spread=1.2)
    one = dupes(noisy, embeddings=x, rounds=3, seed=7)
    two = dupes(noisy, embeddings=x, rounds=3, seed=7)
    other = dupes(noisy, embeddings=x, rounds=3, seed=8)
    np.testing.assert_array_equal(one["counts"], two["counts"])
    assert not np.array_equal(one["counts"], other["counts"])


@pytest.mark.parametrize("classifier", ["mlp", "sklearn_logreg"])
def test_alternative_classifiers(classifier):
    x, clean, noisy = blobs(num_classes=3, per_class=40, noise_rate=0.1, seed=4)
    options = {"epochs": 20} if classifier == "mlp" else {}
    out = dupes(noisy, embeddings=x, rounds=2, threshold=2, classifier=classifier,
                seed=0, **options)
    flipped = noisy != clean
    assert out["flagged"][flipped].mean() > out["flagged"][~flipped].mean() + 0.5


def test_cnn_classifier_runs_on_cpu(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths, labels = [], []
    for c, colour in enumerate(((220, 20, 20), (20, 20, 220))):
        for i in range(6):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (16, 16, 3)), 0, 255)
            path = str(tmp_path / ("%d_%d.png" % (c, i)))
            Image.fromarray(pixels.astype(np.uint8)).save(path)
            paths.append(path)
            labels.append(c)
    progress = []
    out = dupes(np.array(labels), filepaths=paths, rounds=1, threshold=1,
                classifier="cnn", weights=None, epochs=1, image_size=32,
                batch_size=4, device="cpu", seed=0,
                progress=lambda f, m: progress.append(f))
    assert out["counts"].sum() == len(paths)
    assert out["dupe_count"].max() <= 1
    assert progress[-1] == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError):
        dupes([0, 1], embeddings=np.zeros((2, 2)), classifier="svm")
    with pytest.raises(ValueError):
        dupes([0, 1], classifier="cnn")


def test_safe_names_round_trip_and_stay_one_component():
    from store.safe_paths import safe_name, unsafe_name

    for name in ["cat", "sea lion", "café ☕", "a/b", "..", ".", "../../etc",
                 "100%", "x\ny", "trailing ", "C:\\win", ".hidden", "文字"]:
        safe = safe_name(name)
        assert unsafe_name(safe) == name
        assert "/" not in safe and "\\" not in safe and "\n" not in safe
        assert safe not in (".", "..") and not safe.startswith(".")
    assert safe_name("sea lion") == "sea lion"
    assert safe_name("café") == "café"
    long = safe_name("x" * 500)
    assert len(long.encode()) <= 200


def test_compare_listings_decides_each_file():
    from conftest import plugin_module
    compare_listings = plugin_module("operators.curation.dupes_review").compare_listings

    manifest = {
        "classes": {"cat": "cat", "dog": "dog", "a%2Fb": "a/b"},
        "files": {
            "cat/dog_9_1.jpg": {"id": "1", "label": "cat", "dupe_label": "dog"},
            "cat/dog_8_2.jpg": {"id": "2", "label": "cat", "dupe_label": "dog"},
            "dog/cat_10_3.jpg": {"id": "3", "label": "dog", "dupe_label": "cat"},
            "dog/cat_10_4.jpg": {"id": "4", "label": "dog", "dupe_label": "cat"},
        },
    }
    after = ["cat/dog_9_1.jpg", "a%2Fb/cat_10_3.jpg", "dog/stray.jpg", "../evil.jpg"]
    out = compare_listings(manifest, after)
    assert out["relabel"] == {"cat/dog_9_1.jpg": "dog", "dog/cat_10_3.jpg": "a/b"}
    assert sorted(out["keep"]) == ["cat/dog_8_2.jpg", "dog/cat_10_4.jpg"]
    assert out["unknown"] == ["../evil.jpg", "dog/stray.jpg"]
    assert out["num_moved"] == 1


def test_overwrite_never_deletes_outside_the_review_folder(tmp_path):
    import json

    from conftest import plugin_module
    review = plugin_module("operators.curation.dupes_review")
    InputError, _prepare_dir = review.InputError, review.prepare_review_dir

    root = tmp_path / "review"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "dog_9_x.jpg").write_text("ours")
    (tmp_path / "victim.txt").write_text("not ours")
    (root / "link").symlink_to(tmp_path / "victim.txt")
    manifest = {"format": 1, "classes": {"cat": "cat"}, "files": {
        "cat/dog_9_x.jpg": {}, "../victim.txt": {}, "link": {}}}
    (root / "dupes_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="did not write"):
        _prepare_dir(str(root), overwrite=True)
    assert (tmp_path / "victim.txt").read_text() == "not ours"
    assert not (root / "cat").exists()  # our file and empty folder are gone
    assert (root / "link").is_symlink()  # a link pointing outside is left alone
