import numpy as np
import pytest
import torch

from conftest import operator, run_delegated, run_operator

OP = "compute_cleannet_similarity"
FAST = dict(n_steps=200, val_interval=50, num_ref=8)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _verify(ds, classes, per_class=25, seed=0, use_tags=False):
    """Marks ``per_class`` samples of each of ``classes`` verified from ``clean``."""
    rng = np.random.default_rng(seed)
    ids, labels, clean = ds.values(["id", "ground_truth.label", "clean_label.label"])
    labels = np.array(labels)
    for c in classes:
        members = np.flatnonzero(labels == c)
        for i in rng.choice(members, per_class, replace=False):
            sample = ds[ids[i]]
            if use_tags:
                sample.tags.append("verified:correct" if labels[i] == clean[i] else "verified:wrong")
            else:
                sample["label_verified"] = bool(labels[i] == clean[i])
            sample.save()


def _auroc(ds, field="cleannet_similarity", view=None):
    from sklearn.metrics import roc_auc_score

    coll = view if view is not None else ds
    sim, noisy = coll.values([field, "is_noisy"])
    return roc_auc_score(np.array(noisy), -np.array(sim))


def test_immediate_run_flags_noise_and_transfers(blob_dataset):
    ds = blob_dataset(num_classes=6, per_class=80, dim=16, noise_rate=0.2, seed=4)
    _verify(ds, ["class_0", "class_1", "class_2"])
    summary = run_operator(OP, ds, tag="cleannet:noisy", **FAST)
    assert summary["num_samples"] == len(ds)
    sim = np.array(ds.values("cleannet_similarity"))
    assert np.isfinite(sim).all() and (np.abs(sim) <= 1 + 1e-5).all()
    # chance = 0.5; the injected flips must be found by a clear margin, also
    # in the three classes without any verified sample (transfer)
    from fiftyone import ViewField as F

    assert _auroc(ds) > 0.8
    transfer = ds.match(F("ground_truth.label").is_in(["class_3", "class_4", "class_5"]))
    assert _auroc(ds, view=transfer) > 0.75
    assert ds.count_sample_tags().get("cleannet:noisy", 0) == int((sim < 0.1).sum())

    info = ds.get_run_info("cleannet")
    assert info.config.method == "cleannet"
    assert info.config.params["threshold"] == 0.1
    assert info.config.fields == ["cleannet_similarity"]
    results = ds.load_run_results("cleannet", cache=False)
    assert 0 <= results.validation["error_rate"] <= 0.5
    assert results.validation["set"] == "held-out"
    assert results.verified_classes == ["class_0", "class_1", "class_2"]
    from store.runs import decode_state_dict

    weights = decode_state_dict(results.state_dict)
    assert weights["query1.weight"].shape[1] == 16
    refs = decode_state_dict(results.references)
    assert tuple(refs["references"].shape) == (6, 8, 16)


def test_delegated_with_tags_and_score_new_samples(blob_dataset, new_dataset):
    import fiftyone as fo

    ds = blob_dataset(num_classes=4, per_class=60, dim=16, noise_rate=0.2, seed=1)
    _verify(ds, ["class_0", "class_1"], use_tags=True)
    doc = run_delegated(OP, ds, run_key="cn", output_field="cn_sim", **FAST)
    assert doc.run_state == "completed", doc.result
    assert ds.count("cn_sim") == len(ds)
    assert _auroc(ds, "cn_sim") > 0.8
    trained = np.array(ds.values("cn_sim"))

    # score new samples with the saved model: same values, no retraining
    summary = run_operator(
        OP, ds, score_new_samples=True, model_run_key="cn", run_key="cn_new",
        output_field="cn_rescored",
    )
    assert summary["scored_with_run"] == "cn"
    np.testing.assert_allclose(np.array(ds.values("cn_rescored")), trained, atol=1e-5)
    assert ds.load_run_results("cn_new", cache=False).state_dict  # model kept

    # a dataset whose embeddings have another dimension is refused clearly
    other = new_dataset()
    other.add_samples(
        [
            fo.Sample(filepath=s.filepath, ground_truth=s.ground_truth,
                      embeddings=np.zeros(5, dtype=np.float32))
            for s in ds.limit(3)
        ]
    )
    with pytest.raises(Exception, match="no CleanNet run 'cn'"):
        run_operator(OP, other, score_new_samples=True, model_run_key="cn")


def test_score_new_samples_dimension_mismatch(blob_dataset):
    ds = blob_dataset(num_classes=3, per_class=40, dim=16, noise_rate=0.2, seed=2)
    _verify(ds, ["class_0"], per_class=30)
    run_operator(OP, ds, **FAST)
    ds.add_sample_field("small", __import__("fiftyone").core.fields.VectorField)
    ds.set_values("small", [np.ones(5, dtype=np.float32)] * len(ds))
    with pytest.raises(Exception, match="dimension 5 .* trained on 16"):
        run_operator(OP, ds, score_new_samples=True, embeddings_field="small", run_key="cleannet")


def test_error_messages(blob_dataset):
    ds = blob_dataset(num_classes=3, per_class=20, dim=8, seed=3)
    with pytest.raises(Exception, match="none of the 60 samples .* is verified.*label_verified"):
        run_operator(OP, ds, **FAST)
    assert "cleannet_similarity" not in ds.get_field_schema()

    first = ds.first()
    first["label_verified"] = True
    first.save()
    with pytest.raises(Exception, match="all 1 verified samples are verified correct"):
        run_operator(OP, ds, **FAST)

    first.tags.append("verified:wrong")
    first.save()
    with pytest.raises(Exception, match="verified both correct and wrong"):
        run_operator(OP, ds, **FAST)
    assert "cleannet_similarity" not in ds.get_field_schema()


def test_form_shows_verified_counts(blob_dataset):
    from conftest import plugin_module

    verification_counts = plugin_module("operators.detectors.cleannet").verification_counts

    ds = blob_dataset(num_classes=3, per_class=20, dim=8, seed=3)
    ids = ds.values("id")
    for i, value in zip(ids[:3], [True, True, False]):
        s = ds[i]
        s["label_verified"] = value
        s.save()
    s = ds[ids[3]]
    s.tags.append("verified:wrong")
    s.save()
    labels = ds.values("ground_truth.label")
    counts = verification_counts(ds, "ground_truth", "label_verified", "verified:correct", "verified:wrong")
    assert sum(c for c, _ in counts.values()) == 2 and sum(w for _, w in counts.values()) == 2
    assert counts[labels[0]][0] >= 1

    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": {}})
    prop = operator(OP).resolve_input(ctx)
    notice = prop.type.properties["verified_counts"].view
    assert "correct" in notice.description and "wrong" in notice.description
