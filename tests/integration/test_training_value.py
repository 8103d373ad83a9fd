"""compute_training_value through real operators on the private database."""

import base64

import numpy as np
import pytest

from conftest import operator, run_delegated, run_operator

# tiny settings: a few seconds per run on blobs
SMALL = dict(
    episodes=4,
    train_per_class=40,
    val_per_class=15,
    min_val_per_class=10,
    hidden_units=16,
    regressor_hidden=32,
    regressor_epochs=60,
    regressor_patience=10,
    num_threads=1,
)


def _validate(ds, per_class=15, tag="validated"):
    """Tags ``per_class`` correctly labeled samples of each class."""
    ids, labels, noisy = ds.values(["id", "ground_truth.label", "is_noisy"])
    picked = []
    for c in sorted(set(labels)):
        good = [i for i, l, n in zip(ids, labels, noisy) if l == c and not n]
        picked += good[:per_class]
    ds.select(picked).tag_samples(tag)
    return set(picked)


def _auroc(ds, field="training_value"):
    from sklearn.metrics import roc_auc_score

    view = ds.match_tags("validated", bool=False)
    value, noisy = view.values([field, "is_noisy"])
    return roc_auc_score(np.array(noisy), -np.array(value))


def test_operator_writes_values_run_regressors_histogram(blob_dataset, tmp_path):
    ds = blob_dataset(noise_rate=0.2, per_class=80)
    _validate(ds)
    hist = str(tmp_path / "hist.png")
    summary = run_operator(
        "compute_training_value", ds, tag="tv:dirty", histogram_path=hist, **SMALL
    )
    assert summary["num_samples"] == len(ds)
    assert ds.count("training_value") == len(ds)
    assert _auroc(ds) > 0.8  # chance is 0.5
    # negative value <=> tagged tv:dirty
    value = np.array(ds.values("training_value"))
    assert ds.count_sample_tags()["tv:dirty"] == int((value < 0).sum()) == summary["num_flagged"]
    # histogram: a PNG on disk and in the run results
    assert summary["histogram_path"] == hist
    assert open(hist, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    info = ds.get_run_info("training_value")
    assert info.config.method == "training_value"
    assert info.config.params["episodes"] == 4
    assert info.config.num_validation == 60
    results = ds.load_run_results("training_value", cache=False)
    assert base64.b64decode(results.histogram_png)[:4] == b"\x89PNG"
    model = results.model
    assert sorted(model["regressors"]) == ["class_%d" % c for c in range(4)]
    assert len(results.subset_ids) == 4 * 40
    # validation samples are never Monte Carlo training samples
    assert not set(results.subset_ids) & set(results.validation_ids)


def test_score_new_samples_reuses_saved_regressors(blob_dataset):
    ds = blob_dataset(noise_rate=0.2, per_class=80)
    _validate(ds)
    run_operator("compute_training_value", ds, **SMALL)
    before = dict(zip(ds.values("id"), ds.values("training_value")))
    # "new" samples: clear their value, then score only them, no Monte Carlo
    new = ds.take(50, seed=1)
    new_ids = new.values("id")
    new.set_field("training_value", None).save()
    summary = run_operator(
        "compute_training_value", ds.select(new_ids), score_new_samples=True,
        episodes=10 ** 6,  # would take forever if the Monte Carlo phase ran
        min_val_per_class=10 ** 6,  # and no validation set is needed
    )
    assert summary["num_samples"] == 50
    after = dict(zip(ds.values("id"), ds.values("training_value")))
    for i in new_ids:
        assert after[i] == pytest.approx(before[i], rel=1e-5, abs=1e-9)
    # the run keeps its regressors, so scoring can be repeated
    assert ds.load_run_results("training_value", cache=False).model["regressors"]
    info = ds.get_run_info("training_value").config
    assert info.scored_with_saved_regressors and info.source_run_key == "training_value"


def test_score_new_samples_without_a_run_says_what_to_do(blob_dataset):
    ds = blob_dataset()
    with pytest.raises(Exception, match="compute_training_value first"):
        run_operator("compute_training_value", ds, score_new_samples=True)
    assert not ds.has_field("training_value")


def test_missing_validation_set_lists_classes_and_how_to_tag(blob_dataset):
    ds = blob_dataset(per_class=60)
    ids, labels = ds.values(["id", "ground_truth.label"])
    few = [i for i, l in zip(ids, labels) if l == "class_1"][:3]
    ds.select(few).tag_samples("validated")
    with pytest.raises(Exception) as err:
        run_operator("compute_training_value", ds)
    message = str(err.value)
    assert "'class_0' has 0 (needs 50 more)" in message
    assert "'class_1' has 3 (needs 47 more)" in message
    assert "tag_samples('validated')" in message and "App" in message
    assert not ds.has_field("training_value") and "training_value" not in ds.list_runs()
    # a boolean field instead of the tag; the message names the field
    with pytest.raises(Exception, match="boolean field 'verified'"):
        ds.set_values("verified", [False] * len(ds))
        run_operator("compute_training_value", ds, validation_field="verified")


def test_app_form_params_and_validation_field(blob_dataset):
    """The params exactly as the App form submits them (every field of the
    form with its default, overridden where a user typed), a boolean
    validation field instead of the tag, and a target view."""
    from fiftyone.operators.executor import ExecutionContext

    ds = blob_dataset(noise_rate=0.2, per_class=80)
    picked = _validate(ds, tag="checked")
    ds.set_values("verified", [i in picked for i in ds.values("id")])
    form = operator("compute_training_value").resolve_input(
        ExecutionContext(request_params={"dataset_name": ds.name, "params": {}})
    )
    params = {
        name: prop.default
        for name, prop in form.type.properties.items()
        if getattr(prop, "default", None) is not None
    }
    assert params["episodes"] == 100 and params["lr"] == 0.001
    assert params["validation_tag"] == "validated" and params["tag"] == ""
    params.update(
        SMALL, validation_field="verified", output_field="tv", run_key="tv_form", map_brain_key="tv_map"
    )
    view = ds.exists("embeddings")  # a DatasetView target
    summary = run_operator("compute_training_value", view, **params)
    assert summary["num_samples"] == len(ds)
    assert ds.count("tv") == len(ds) and "tv_form" in ds.list_runs()
    assert ds.count_sample_tags().get("tv:dirty") is None  # tagging is opt-in
    # the 2-D map (FiftyOne Brain, PCA) of the embeddings
    assert "tv_map" in ds.list_brain_runs(), summary["map"]


def test_delegated_run_completes(blob_dataset):
    ds = blob_dataset(noise_rate=0.2, per_class=60)
    _validate(ds)
    doc = run_delegated("compute_training_value", ds, run_key="tv_delegated", **SMALL)
    assert doc.run_state == "completed", doc.result
    assert ds.count("training_value") == len(ds)
    assert ds.get_run_info("tv_delegated").config.params["episodes"] == 4
