"""compute_corrected_labels / load_prototypes_view through the real operators."""

import os
import sys

import numpy as np
import pytest

from conftest import operator, run_delegated, run_operator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_corrected_labels_immediate(blob_dataset):
    ds = blob_dataset(num_classes=4, per_class=80, noise_rate=0.3, seed=4)
    before = ds.values("ground_truth.label")
    summary = run_operator(
        "compute_corrected_labels", ds, samples_per_class=60, tag="dsl:changed"
    )
    assert summary["num_samples"] == len(ds)
    assert ds.values("ground_truth.label") == before  # labels never overwritten

    corrected = np.array(ds.values("corrected_label.label"))
    clean = np.array(ds.values("clean_label.label"))
    noisy = np.array(before)
    assert (corrected == clean).mean() > (noisy == clean).mean() + 0.15
    conf = np.array(ds.values("corrected_label.confidence"))
    assert ((conf >= 0) & (conf <= 2)).all()
    changed = np.array(ds.values("label_changed"))
    assert np.array_equal(changed, corrected != noisy)
    assert summary["num_flagged"] == summary["num_changed"] == changed.sum()
    assert len(ds.match_tags("dsl:changed")) == changed.sum()

    info = ds.get_run_info("self_learning").config
    assert info.method == "self_learning"
    assert set(info.fields) == {"corrected_label", "label_changed"}
    assert info.params["num_prototypes"] == 8
    results = ds.load_run_results("self_learning")
    assert sorted(results.prototypes) == sorted(set(clean))
    for name, ids in results.prototypes.items():
        assert 1 <= len(ids) <= 8
        # prototypes are chosen among samples given that (noisy) label
        assert set(ds.select(ids).values("ground_truth.label")) == {name}
    assert len(results.prototype_ids) == sum(map(len, results.prototypes.values()))

    # the prototypes as a view: SDK one-liner and the operator
    view = ds.select(results.prototype_ids, ordered=True)
    assert view.values("id") == results.prototype_ids
    out = run_operator("load_prototypes_view", ds, run_key="self_learning", class_name="class_1")
    assert out["ids"] == results.prototypes["class_1"]
    assert operator("load_prototypes_view")(ds)["num_prototypes"] == len(view)


def test_corrected_labels_iterative_delegated(blob_dataset):
    ds = blob_dataset(num_classes=3, per_class=60, noise_rate=0.25, seed=5)
    doc = run_delegated(
        "compute_corrected_labels",
        ds,
        train=True,
        epochs=2,
        learning_rate=0.01,
        hidden_dim=32,
        batch_size=64,
        run_key="dsl_iter",
        output_field="dsl_label",
    )
    assert doc.run_state == "completed", doc.result
    assert ds.count("dsl_label") == len(ds)
    assert ds.count("self_learning_prediction") == len(ds)
    info = ds.get_run_info("dsl_iter").config
    assert set(info.fields) == {"dsl_label", "label_changed", "self_learning_prediction"}
    history = ds.load_run_results("dsl_iter").history
    assert [h["alpha"] for h in history] == [0.0, 0.5]
    clean = np.array(ds.values("clean_label.label"))
    pred = np.array(ds.values("self_learning_prediction.label"))
    noisy = np.array(ds.values("ground_truth.label"))
    corrected = np.array(ds.values("dsl_label.label"))
    assert (noisy == clean).mean() < 0.8
    assert (pred == clean).mean() > 0.9
    assert (corrected == clean).mean() > 0.9


def test_bad_inputs_are_rejected_before_writing(blob_dataset):
    ds = blob_dataset(num_classes=2, per_class=10)
    with pytest.raises(Exception, match="never overwrites labels"):
        run_operator("compute_corrected_labels", ds, output_field="ground_truth")
    with pytest.raises(Exception, match="Embeddings field 'nope'"):
        run_operator("compute_corrected_labels", ds, embeddings_field="nope")
    assert not ds.has_field("corrected_label")
    assert "self_learning" not in ds.list_runs()


def test_demo_subset_worst_noise():
    """On the shipped CIFAR-10N subset (~40% worst noise), 3 MLP epochs."""
    sys.path.insert(0, REPO)
    from demo.datasets import load_cifar10n

    ds = load_cifar10n("dsl-demo-test")
    try:
        run_operator("compute_corrected_labels", ds, train=True, epochs=3)
        clean = np.array(ds.values("clean_label.label"))
        noisy = np.array(ds.values("ground_truth.label"))
        corrected = np.array(ds.values("corrected_label.label"))
        noisy_acc = (noisy == clean).mean()
        assert (corrected == clean).mean() > noisy_acc + 0.03, (
            noisy_acc, (corrected == clean).mean())
    finally:
        ds.delete()
