"""The curation workflow through the real operators on the private database:
consensus score, tagging, corrections with exact undo, export, panel data."""

import json
import os

import numpy as np
import pytest

from conftest import operator, run_delegated, run_operator


def _auroc(truth, score):
    from methods.consensus import auroc

    return auroc(np.asarray(truth, bool), np.asarray(score, float))


def _form(name, dataset, **params):
    """Resolves an operator's form like the App does; returns its JSON."""
    from fiftyone.operators.executor import ExecutionContext

    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": params})
    return operator(name).resolve_input(ctx).to_json()


def _find(node, key):
    """The sub-dict of a resolved form whose property name is ``key``."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and key in props:
            return props[key]
        for v in node.values():
            hit = _find(v, key)
            if hit is not None:
                return hit
    elif isinstance(node, list):
        for v in node:
            hit = _find(v, key)
            if hit is not None:
                return hit
    return None


@pytest.fixture
def scored(blob_dataset):
    """Blobs with kNN disagreement computed (the one real detector)."""
    ds = blob_dataset(noise_rate=0.15)
    run_operator("compute_knn_disagreement", ds)
    return ds


def test_noise_score_from_knn_only(scored):
    ds = scored
    labels_before = ds.values("ground_truth.label")
    summary = run_operator("compute_noise_score", ds)
    assert summary["inputs"] == ["knn_disagreement"]
    # kNN's majority label is the only class evidence: pooled alone
    assert summary["weights"] == {"pooled_probabilities": 1.0}
    assert summary["weights_source"].startswith("pooled class probabilities")
    assert summary["score_mode"] == "probability"
    noise = np.array(ds.values("noise_score"))
    assert noise.min() >= 0 and noise.max() <= 1
    noisy = np.array(ds.values("is_noisy"))
    assert _auroc(noisy, noise) > 0.9
    # a probability: it adds up to the estimated number of wrong labels
    assert noise.mean() == pytest.approx(summary["noise_rate"], abs=0.01)
    # the suggestion comes from knn_label and fixes most flipped samples
    sug = np.array(ds.values("suggested_label.label"), dtype=object)
    clean = np.array(ds.values("clean_label.label"), dtype=object)
    assert (sug[noisy] == clean[noisy]).mean() > 0.8
    conf = np.array(ds.values("suggested_label.confidence"))
    assert ((conf > 0) & (conf <= 1)).all()
    info = ds.get_run_info("consensus").config
    assert info.method == "consensus"
    assert info.inputs["knn_disagreement"]["higher_is_noisier"] is True
    assert info.inputs["knn_disagreement"]["suggestion"] == "knn_label"
    assert set(info.fields) == {"noise_score", "suggested_label", "noise_flagged"}
    # flagged: as many as the estimated noise rate (anchors: no verified
    # samples here), highest noise_score first
    flagged = np.array(ds.values("noise_flagged"))
    assert summary["flag_rate_source"] == "anchors"
    assert summary["noise_estimate"]["confident_learning"] >= 0
    assert summary["num_flagged"] == flagged.sum() >= round(summary["flag_rate"] * len(ds))
    assert noise[flagged].min() >= noise[~flagged].max()
    # 240 samples: 30 anchors per class, so the estimate is coarse
    assert abs(flagged.mean() - noisy.mean()) < 0.08
    results = ds.load_run_results("consensus")
    assert results.noise_estimate["rate"] == summary["flag_rate"]
    # the user's labels are untouched
    assert ds.values("ground_truth.label") == labels_before
    assert "ground_truth_original" not in ds.get_field_schema()


def test_noise_score_combines_simulated_detectors_and_learns_weights(scored):
    import fiftyone as fo

    ds = scored
    rng = np.random.default_rng(0)
    noisy = np.array(ds.values("is_noisy"))
    clean = ds.values("clean_label.label")
    ids = ds.values("id")
    n = len(ids)
    # training_value: higher = cleaner, informative
    ds.set_values("training_value", (-(noisy * 2.0) + rng.normal(0, 0.7, n)).tolist())
    # cleannet_similarity: pure noise (should get a small learned weight)
    ds.set_values("cleannet_similarity", rng.normal(0, 1, n).tolist())
    # corrected_label: predicts the true class with a margin on most samples
    ds.set_values(
        "corrected_label",
        [fo.Classification(label=c, confidence=0.8) for c in clean],
    )
    # a verified subset: 40 samples known correct / wrong
    pick = rng.choice(n, 120, replace=False)
    ds.set_values(
        "label_verified",
        {ids[i]: bool(not noisy[i]) for i in pick},
        key_field="id",
    )
    summary = run_operator("compute_noise_score", ds)
    assert set(summary["inputs"]) == {
        "knn_disagreement", "training_value", "cleannet_similarity", "corrected_label",
    }
    # weights are learned, but corrected_label is the clean label here, so
    # the probabilities already separate the verdicts perfectly: learned
    # weights cannot beat them on held-out verdicts, the probabilities stay
    # alone (the learned branch is tested in tests/unit/test_consensus.py)
    assert summary["weights_source"].startswith("pooled_probabilities alone")
    w = summary["weights"]
    assert w["cleannet_similarity"] < 0.15
    assert abs(sum(w.values()) - 1) < 1e-6
    noise = np.array(ds.values("noise_score"))
    assert _auroc(noisy, noise) >= _auroc(noisy, ds.values("knn_disagreement")) - 0.005
    assert _auroc(noisy, noise) > 0.95
    info = ds.get_run_info("consensus").config
    assert info.inputs["training_value"]["higher_is_noisier"] is False
    assert info.num_verified["mislabeled"] + info.num_verified["correct"] == 120
    results = ds.load_run_results("consensus")
    assert results.verified_auc["noise_score"] > 0.9


def test_noise_score_finds_renamed_outputs_via_run_records(blob_dataset):
    ds = blob_dataset()
    run_operator(
        "compute_knn_disagreement", ds, output_field="knn5", run_key="knn5",
        k=5, suggestion_field="knn5_label",
    )
    summary = run_operator("compute_noise_score", ds, run_key="consensus5")
    assert summary["inputs"] == ["knn5"]
    assert ds.get_run_info("consensus5").config.inputs["knn5"]["suggestion"] == "knn5_label"
    assert ds.count("suggested_label") == len(ds)
    # an explicit input list, with '-' for a higher-is-cleaner custom field
    ds.set_values("my_quality", (-np.array(ds.values("knn5"))).tolist())
    summary = run_operator("compute_noise_score", ds, inputs="-my_quality", run_key="c2",
                           output_field="ns2", suggestion_field="")
    assert summary["inputs"] == ["my_quality"]
    # one input: the rank consensus separates as well as the input itself
    noisy = np.array(ds.values("is_noisy"))
    assert abs(_auroc(noisy, ds.values("ns2")) - _auroc(noisy, ds.values("knn5"))) < 0.02
    # no input has class probabilities: the rank consensus, flags by threshold
    assert summary["score_mode"] == "rank"
    assert summary["flag_rate"] is None
    assert summary["num_flagged"] == (np.array(ds.values("ns2")) > 0.5).sum()


def test_noise_score_without_detectors_is_a_clear_error(blob_dataset):
    from store.data import InputError

    ds = blob_dataset()
    before = set(ds.get_field_schema())
    with pytest.raises(Exception) as e:
        operator("compute_noise_score")(ds)
    assert "run at least one detector" in str(e.value)
    assert InputError.__name__ in str(e.value)  # wrapped by FiftyOne's ExecutionError
    assert set(ds.get_field_schema()) == before
    assert "consensus" not in ds.list_runs()
    form = _form("compute_noise_score", ds)
    assert "No detector output" in json.dumps(_find(form, "found"))


def test_noise_score_delegated(scored):
    doc = run_delegated("compute_noise_score", scored)
    assert doc.run_state == "completed", doc.result
    assert scored.count("noise_score") == len(scored)


def test_tag_threshold_topk_per_class_and_preview(scored):
    from fiftyone import ViewField as F

    ds = scored
    run_operator("compute_noise_score", ds)
    t = 0.7
    expected = ds.match(F("noise_score") > t).count()
    form = _form("tag_noisy_samples", ds, threshold=t)
    assert ("%d of %d samples" % (expected, len(ds))) in json.dumps(_find(form, "preview"))
    out = run_operator("tag_noisy_samples", ds, threshold=t, tag="suspect")
    assert out["num_tagged"] == expected == ds.match_tags("suspect").count()
    assert ds.match_tags("suspect").bounds("noise_score")[0] > t
    # top-k per class: exactly k in each of the 4 classes, old tags replaced
    form = _form("tag_noisy_samples", ds, mode="top_k", top_k=5, per_class=True, tag="suspect")
    assert "20 of %d samples" % len(ds) in json.dumps(_find(form, "preview"))
    out = operator("tag_noisy_samples")(ds, mode="top_k", top_k=5, per_class=True, tag="suspect")
    assert out["num_tagged"] == 20
    counts = ds.match_tags("suspect").count_values("ground_truth.label")
    assert set(counts.values()) == {5} and len(counts) == 4
    # the 5 tagged of a class are its 5 highest scores
    cls = "class_0"
    part = ds.match(F("ground_truth.label") == cls)
    top = sorted(part.values("noise_score"), reverse=True)[:5]
    tagged = sorted(part.match_tags("suspect").values("noise_score"), reverse=True)
    assert tagged == top
    # overall top fraction on a lower-is-noisier field, on a view
    ds.set_values("quality", (-np.array(ds.values("noise_score"))).tolist())
    view = ds.match(F("ground_truth.label") != "class_3")
    out = operator("tag_noisy_samples")(
        view, mode="top_fraction", fraction=0.1, score_field="quality",
        higher_is_noisier=False, tag="lowq",
    )
    assert out["num_tagged"] == int(np.ceil(0.1 * len(view)))
    assert ds.match_tags("lowq").match(F("ground_truth.label") == "class_3").count() == 0
    # a missing score field: the form says so, execution refuses
    form = _form("tag_noisy_samples", ds, score_field="nope")
    assert _find(form, "preview")["invalid"] is True
    with pytest.raises(Exception, match="nope"):
        operator("tag_noisy_samples")(ds, score_field="nope")


def _labels(ds):
    return [
        None if c is None else c.to_dict()
        for c in ds.values("ground_truth")
    ]


def test_apply_and_revert_corrections_exactly(scored):
    ds = scored
    run_operator("compute_noise_score", ds)
    run_operator("tag_noisy_samples", ds, mode="top_k", top_k=30, tag="noisy")
    before = _labels(ds)
    tagged = ds.match_tags("noisy")
    # the form warns with the count and is invalid until confirmed
    from fiftyone import ViewField as F

    n_expected = tagged.match(F("suggested_label.label") != F("ground_truth.label")).count()
    form = _form("apply_label_corrections", ds, only_tag="noisy", confirm=False)
    warning = _find(form, "confirm_needed")
    assert "relabel %d samples" % n_expected in json.dumps(warning)
    assert warning["invalid"] is True
    form = _form("apply_label_corrections", ds, only_tag="noisy", confirm=True)
    assert not _find(form, "confirm_needed").get("invalid")
    with pytest.raises(Exception, match="confirm"):
        operator("apply_label_corrections")(ds, only_tag="noisy", confirm=False)
    assert _labels(ds) == before

    out = operator("apply_label_corrections")(ds, only_tag="noisy")
    assert out["num_corrected"] == n_expected > 0
    fixed = ds.exists("ground_truth_correction")
    assert fixed.count() == n_expected
    assert fixed.values("ground_truth.label") == fixed.values("suggested_label.label")
    assert set(fixed.values("ground_truth_correction.source")) == {"curation"}
    # untagged samples are untouched
    untouched = ds.match_tags("noisy", bool=False)
    assert untouched.exists("ground_truth_correction").count() == 0
    # most corrections are right on these blobs
    assert np.mean(np.array(fixed.values("ground_truth.label")) == np.array(fixed.values("clean_label.label"))) > 0.7
    # a second source on the same samples keeps the true original
    ds.set_values("dupe_label", ["class_0"] * len(ds))
    operator("apply_label_corrections")(ds, only_tag="noisy", source_field="dupe_label")
    assert set(ds.match_tags("noisy").values("ground_truth.label")) == {"class_0"}

    out = operator("revert_label_corrections")(ds)
    assert out["num_reverted"] >= n_expected
    assert _labels(ds) == before
    assert ds.exists("ground_truth_correction").count() == 0
    assert ds.exists("ground_truth_original").count() == 0


def test_revert_only_target_view(scored):
    ds = scored
    run_operator("compute_noise_score", ds)
    ds.set_values("dupe_label", ["class_1"] * len(ds))
    before = _labels(ds)
    operator("apply_label_corrections")(ds, source_field="dupe_label")
    changed = ds.exists("ground_truth_correction")
    first = changed.limit(10)
    ids = first.values("id")
    out = operator("revert_label_corrections")(first)
    assert out["num_reverted"] == 10
    after = dict(zip(ds.values("id"), _labels(ds)))
    orig = dict(zip(ds.values("id"), before))
    assert all(after[i] == orig[i] for i in ids)
    assert ds.exists("ground_truth_correction").count() == changed.count()


def test_export_tree_is_confined_and_split(blob_dataset, tmp_path):
    names = ["cat/dog", "..", "../evil", "plain"]
    ds = blob_dataset(class_names=names, per_class=10)
    ds.take(8, seed=0).tag_samples("noisy")
    # correct some labels so current and original differ
    ds.set_values("dupe_label", ["plain"] * len(ds))
    operator("apply_label_corrections")(ds, only_tag="noisy", source_field="dupe_label")
    target = tmp_path / "out" / "nested"
    out = operator("export_curated_dataset")(ds, export_dir=str(target))
    assert out["num_clean"] == 32 and out["num_dirty"] == 8
    root = os.path.realpath(target)
    written = []
    for folder, _, files in os.walk(tmp_path):
        for f in files:
            written.append(os.path.realpath(os.path.join(folder, f)))
    exported = [p for p in written if not p.endswith(".png") or "/out/" in p]
    assert all(p.startswith(root + os.sep) for p in exported if "/out/" in p)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()
    top = sorted(os.listdir(target))
    assert top == ["clean", "curation.json", "dirty"]
    manifest = json.load(open(target / "curation.json"))
    dirty = manifest["splits"]["dirty"]["files"]
    assert {r["label"] for r in dirty} == {"plain"}  # current labels
    classes = manifest["splits"]["clean"]["classes"]
    assert set(classes.values()) == set(names)
    for folder in classes:
        assert "/" not in folder and folder not in (".", "..")
        assert (target / "clean" / folder).is_dir()
    assert len(manifest["splits"]["clean"]["files"]) == 32
    # again without overwrite: refused; with: replaced, original labels
    with pytest.raises(Exception, match="previous export"):
        operator("export_curated_dataset")(ds, export_dir=str(target))
    out = operator("export_curated_dataset")(
        ds, export_dir=str(target), overwrite=True, labels="original", include_dirty=True,
    )
    manifest = json.load(open(target / "curation.json"))
    dirty_labels = {r["label"] for r in manifest["splits"]["dirty"]["files"]}
    original = set(ds.match_tags("noisy").values("ground_truth_original.label")) - {None}
    assert original and original <= dirty_labels


def test_export_fiftyone_format_by_score(scored, tmp_path):
    import fiftyone as fo

    run_operator("compute_noise_score", scored)
    out = operator("export_curated_dataset")(
        scored, export_dir=str(tmp_path / "fo"), split_by="score", threshold=0.8,
        format="fiftyone_image_classification",
    )
    from fiftyone import ViewField as F

    n_dirty = scored.match(F("noise_score") > 0.8).count()
    assert out["num_dirty"] == n_dirty and out["num_clean"] == len(scored) - n_dirty
    back = fo.Dataset.from_dir(
        dataset_dir=str(tmp_path / "fo" / "dirty"),
        dataset_type=fo.types.FiftyOneImageClassificationDataset,
    )
    try:
        assert len(back) == n_dirty
        assert set(back.distinct("ground_truth.label")) <= set(scored.distinct("ground_truth.label"))
    finally:
        back.delete()
    with pytest.raises(Exception, match="export_dir"):
        operator("export_curated_dataset")(scored)


def test_plugin_registers_panel_and_operators():
    import fiftyone.operators as foo
    import yaml

    manifest = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "..", "fiftyone.yml")))
    assert "label_noise_panel" in manifest["panels"]
    for name in ("compute_noise_score", "tag_noisy_samples", "apply_label_corrections",
                 "revert_label_corrections", "export_curated_dataset"):
        assert name in manifest["operators"]
        assert foo.get_operator("@label-noise/curation/" + name) is not None
    panel = foo.get_operator("@label-noise/curation/label_noise_panel")
    assert panel.config.label == "Label noise"
