"""find_label_issues, review verdicts with exact undo, audits, re-score."""

import numpy as np
import pytest

from conftest import operator, run_operator, snapshot


@pytest.fixture
def noisy(blob_dataset):
    return blob_dataset(num_classes=4, per_class=60, noise_rate=0.15)


def _review_module():
    """store/review.py as the plugin loaded it (its relative imports work)."""
    from conftest import plugin_module

    return plugin_module("store.review")


def _audit_module():
    from conftest import plugin_module

    return plugin_module("store.audit")


def _sample_docs(ds, ids):
    docs = {d["_id"]: d for d in ds._sample_collection.find({})}
    from bson import ObjectId

    return [docs[ObjectId(i)] for i in ids]


def test_find_label_issues_chain_and_rescore(noisy):
    ds = noisy
    summary = operator("find_label_issues")(ds)
    steps = [s["step"] for s in summary["steps"]]
    assert steps[-2:] == ["compute_noise_score", "compute_label_issue_types"]
    assert "compute_knn_disagreement" in steps and "compute_dupes" in steps
    assert "compute_corrected_labels" in steps
    # every step keeps its own run record and says where its time went
    for s in summary["steps"]:
        assert s["run_key"] in ds.list_runs()
        parts = s["read_s"] + s["compute_s"] + s["write_s"]
        assert min(s["read_s"], s["compute_s"], s["write_s"]) >= 0
        assert abs(parts - s["wall_s"]) < 0.05 and s["write_s"] > 0, s
        assert s["peak_rss_gib"] is None or s["peak_rss_gib"] > 0
    assert summary["num_flagged"] == ds.count_values("noise_flagged").get(True, 0)
    assert summary["num_flagged"] > 0
    assert summary["noise_rate"] is not None and 0 < summary["noise_rate"] < 1
    noisy_truth = np.array(ds.values("is_noisy"))
    score = np.array(ds.values("noise_score"))
    from methods.consensus import auroc as _auroc

    assert _auroc(noisy_truth, score) > 0.85
    # missing steps are reported, not silently dropped
    try:
        has_lq = operator("compute_label_quality") is not None
    except Exception:  # not registered
        has_lq = False
    if not has_lq:
        assert any("Label quality" in n for n in summary["notes"])

    # re-score: label quality re-fitted with the verdicts as training
    # weights, then the consensus with its recorded params; no other detector runs
    before = ds.get_run_info("knn_disagreement").timestamp
    lq_before = ds.get_run_info("label_quality").timestamp
    ids = ds.values("id")
    truth = dict(zip(ids, noisy_truth))
    picked = ids[:120]
    ds.set_values("label_verified", {i: not truth[i] for i in picked}, key_field="id")
    again = operator("find_label_issues")(ds, rescore=True)
    assert [s["step"] for s in again["steps"]] == ["compute_label_quality", "compute_noise_score", "compute_label_issue_types"]
    assert ds.get_run_info("knn_disagreement").timestamp == before
    lq = ds.get_run_info("label_quality")
    assert lq.timestamp > lq_before and lq.config.num_known == 120
    # verified-wrong labels are never trained on: their label quality drops
    wrong = [i for i in picked if truth[i]]
    lq_now = dict(zip(ids, ds.values("label_quality")))
    assert np.mean([lq_now[i] for i in wrong]) < 0.5
    info = ds.get_run_info("consensus").config
    assert info.num_verified["mislabeled"] + info.num_verified["correct"] == 120


def test_find_label_issues_prefix_and_custom(noisy):
    ds = noisy
    s = operator("find_label_issues")(
        ds, preset="custom", detectors="knn_disagreement", run_prefix="p1_"
    )
    assert [x["step"] for x in s["steps"]] == ["compute_knn_disagreement", "compute_noise_score"]
    assert {"p1_knn_disagreement", "p1_consensus"} <= set(ds.list_runs())
    assert ds.has_field("p1_knn_disagreement") and ds.has_field("p1_noise_score")
    assert not ds.has_field("noise_score")
    assert ds.get_run_info("p1_consensus").config.inputs.keys() == {"p1_knn_disagreement"}


def test_find_label_issues_errors(noisy, new_dataset):
    with pytest.raises(Exception, match="preset"):  # the form's enum
        operator("find_label_issues")(noisy, preset="quick")
    with pytest.raises(Exception, match="Embeddings field 'emb' does not exist"):
        operator("find_label_issues")(noisy, embeddings_field="emb")
    with pytest.raises(Exception, match="No consensus run"):
        operator("find_label_issues")(noisy, rescore=True)
    with pytest.raises(TypeError, match="unknown parameter"):
        operator("find_label_issues")(noisy, presets="fast")


def test_shared_inputs_reads_once(noisy, monkeypatch):
    from store import data as lnd

    calls = []
    real = lnd.read_columns_uncached
    monkeypatch.setattr(
        lnd, "read_columns_uncached", lambda *a, **k: calls.append(a[1]) or real(*a, **k)
    )
    with lnd.shared_inputs():
        a = lnd.load_inputs(noisy, "ground_truth", "embeddings")
        a.embeddings[:] = 0  # a step changing its copy...
        # ...and writing its outputs (the dataset's schema changes)
        lnd.write_sample_fields(noisy, a.ids, {"shared_read_probe": np.ones(len(a.ids))})
        b = lnd.load_inputs(noisy, "ground_truth", "embeddings")
        lnd.load_inputs(noisy.limit(50), "ground_truth", "embeddings")  # another view: read
    noisy.delete_sample_field("shared_read_probe")
    assert len(calls) == 2
    assert np.abs(b.embeddings).sum() > 0  # ...does not change the next one's
    lnd.load_inputs(noisy, "ground_truth", "embeddings")
    assert len(calls) == 3  # no cache outside the scope


def test_verdicts_and_exact_undo(noisy):
    lnv = _review_module()

    ds = noisy
    run_operator("compute_knn_disagreement", ds)
    run_operator("compute_noise_score", ds)
    ids = ds.values("id")
    before = _sample_docs(ds, ids[:4])
    label = dict(zip(ids, ds.values("ground_truth.label")))
    sug = dict(zip(ids, ds.values("suggested_label.label")))
    other = next(i for i in ids[4:] if sug[i] != label[i])

    r = lnv.record_verdict(ds, [ids[0]], "correct")
    assert ds[ids[0]]["label_verified"] is True and r["seq"] == 1
    lnv.record_verdict(ds, [ids[1]], "skip")
    assert ds[ids[1]]["label_verified"] is None
    assert ds[ids[1]]["label_review"]["verdict"] == "skip"
    classes = sorted(set(label.values()))
    new = next(c for c in classes if c != label[ids[2]])
    lnv.record_verdict(ds, [ids[2]], "relabel", new_label=new)
    s2 = ds[ids[2]]
    assert s2.ground_truth.label == new and s2.ground_truth_original.label == label[ids[2]]
    assert s2.label_verified is False and s2.ground_truth_correction.source == "review"
    # a second correction of the same sample keeps the true original
    third = next(c for c in classes if c not in (new, label[ids[2]]))
    lnv.record_verdict(ds, [ids[2]], "relabel", new_label=third)
    assert ds[ids[2]].ground_truth_original.label == label[ids[2]]
    lnv.record_verdict(ds, [other], "suggestion")
    assert ds[other].ground_truth.label == sug[other]

    with pytest.raises(lnv.InputError, match="verdict must be one of"):
        lnv.record_verdict(ds, [ids[3]], "maybe")
    with pytest.raises(lnv.InputError, match="already is"):
        lnv.record_verdict(ds, [ids[3]], "relabel", new_label=label[ids[3]])

    # undo one: only the latest verdict changes back
    u = lnv.undo_verdicts(ds, 1)
    assert u["verdicts"] == ["suggestion"] and ds[other].ground_truth.label == label[other]
    assert ds[other].ground_truth_correction is None
    # undo the second relabel: back to the first one exactly
    lnv.undo_verdicts(ds, 1)
    assert ds[ids[2]].ground_truth.label == new
    assert ds[ids[2]].ground_truth_original.label == label[ids[2]]
    lnv.undo_verdicts(ds, 3)
    assert lnv.undo_verdicts(ds, 1)["num_undone"] == 0
    after = _sample_docs(ds, ids[:4])
    for b, a in zip(before, after):
        for key in ("ground_truth",):
            assert a[key] == b[key]  # label documents restored, ids included
        for key in ("label_verified", "label_review", "ground_truth_original", "ground_truth_correction"):
            assert a.get(key) is None
    assert lnv.undo_log(ds) == []


def test_verdict_operators_and_audit(noisy):
    from methods.audit import wilson_interval
    lnv = _review_module()

    ds = noisy
    out = operator("start_label_audit")(ds, size=20, seed=3)
    assert out["num_samples"] == 20 and out["population"] == len(ds)
    res = ds.load_run_results("label_audit", cache=False)
    ids = list(res.sample_ids)
    assert len(set(ids)) == 20
    assert ds.get_run_info("label_audit").config.method == "label_audit"
    # same seed, same sample; another seed, another one
    operator("start_label_audit")(ds, size=20, seed=3, run_key="again")
    assert list(ds.load_run_results("again", cache=False).sample_ids) == ids
    truth = dict(zip(ds.values("id"), ds.values("is_noisy")))
    for sid in ids:
        verdict = "relabel" if truth[sid] else "correct"
        clean = ds[sid].clean_label.label
        operator("record_label_verdict")(
            ds.select([sid]), verdict=verdict, new_label=clean, mode="audit"
        )
    est = _audit_module().update_audit(ds, "label_audit")["estimate"]
    k = sum(bool(truth[i]) for i in ids)
    assert est["n"] == 20 and est["wrong"] == k
    assert (est["low"], est["high"]) == pytest.approx(wilson_interval(k, 20))
    saved = ds.load_run_results("label_audit", cache=False)
    assert saved.estimate["wrong"] == k and saved.reviewed == 20
    # per-class estimates use the given (original) class
    assert sum(v["n"] for v in est["per_class"].values()) + sum(est["too_few"].values()) == 20
    # undo through the operator updates the audit
    operator("undo_label_verdict")(ds, steps=1)
    assert ds.load_run_results("label_audit", cache=False).reviewed == 19


def test_forms_offer_field_dropdowns(noisy):
    from fiftyone.operators.executor import ExecutionContext

    ds = noisy
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": {}})
    form = operator("find_label_issues").resolve_input(ctx).to_json()
    props = form["type"]["properties"]
    label = props["label_field"]
    assert label["view"]["name"] == "DropdownView"
    assert [c["value"] for c in label["view"]["choices"]] == ["clean_label", "ground_truth"]
    assert label["default"] == "ground_truth"
    emb = props["embeddings_field"]
    assert [c["value"] for c in emb["view"]["choices"]] == ["embeddings"]
    assert props["delegate"]["default"] is False
    knn = operator("compute_knn_disagreement").resolve_input(ctx).to_json()["type"]["properties"]
    assert knn["label_field"]["view"]["name"] == "DropdownView"
    assert knn["embeddings_field"]["default"] == "embeddings"
    # no 'ground_truth' field: the first Classification field is preselected
    ds.rename_sample_field("ground_truth", "noisy_label")
    ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": {}})
    knn = operator("compute_knn_disagreement").resolve_input(ctx).to_json()["type"]["properties"]
    assert knn["label_field"]["default"] == "clean_label"


def test_find_label_issues_form_model_and_patches(noisy, new_dataset):
    import fiftyone as fo
    from fiftyone.operators.executor import ExecutionContext

    def props(ds_or_view, **params):
        ctx = ExecutionContext(request_params={"dataset_name": ds_or_view._root_dataset.name,
                                               "params": params})
        if ds_or_view.view() != ds_or_view._root_dataset.view():
            ctx._view = ds_or_view
        return operator("find_label_issues").resolve_input(ctx).to_json()["type"]["properties"]

    # with a vector field: no model, a dropdown of the existing vector fields
    p = props(noisy)
    assert p["model"]["default"] == "none" and "weights" not in p
    assert p["embeddings_field"]["view"]["name"] == "DropdownView"
    assert "detectors" not in p  # only for the custom preset
    assert "detectors" in props(noisy, preset="custom")
    # without one: a model is preselected and a new field name is accepted
    bare = new_dataset()
    bare.add_samples([fo.Sample(filepath="/x/%d.png" % i, ground_truth=fo.Classification(label="a"))
                      for i in range(3)])
    p = props(bare)
    assert p["model"]["default"] == "clip-vit-base32-torch" and "weights" in p  # the zoo's CLIP
    assert p["embeddings_field"]["view"]["name"] != "DropdownView"  # free text: a new name
    assert p["embeddings_field"]["default"] == "embeddings"
    # a patches view: the patches field and the objects' embeddings preselected
    det = new_dataset()
    det.add_samples([fo.Sample(filepath="/x/%d.png" % i, label=fo.Classification(label="img"),
                               ground_truth=fo.Detections(detections=[fo.Detection(
                                   label="a", bounding_box=[0.1, 0.1, 0.2, 0.2],
                                   embeddings=np.ones(4, np.float32))]))
                     for i in range(3)], dynamic=True)
    p = props(det.to_patches("ground_truth"))
    assert p["label_field"]["default"] == "ground_truth"
    choices = [c["value"] for c in p["embeddings_field"]["view"]["choices"]]
    assert choices == ["ground_truth.embeddings"]  # not the box
    assert p["embeddings_field"]["default"] == "ground_truth.embeddings"


def test_verdicts_put_fixed_labels_back_for_the_model_estimate():
    """Only labels judged wrong *and* corrected go back to their class
    before the correction (what the labelling process produced); a label
    corrected without a verdict, or verified right, keeps its class."""
    from store.inputs import Verdicts

    given = np.array([1, 1, 0, -1, -1])
    corrected = np.array([True, False, True, True, False])
    original = ["cat", None, "cat", "dog", None]
    verdicts = Verdicts(given, corrected, original)
    labels = np.array([1, 1, 1, 0, 2])
    out = verdicts.original_labels(labels, ["cat", "dog", "bird"])
    np.testing.assert_array_equal(out, [0, 1, 1, 0, 2])
    assert verdicts.num_fixed == 1
    np.testing.assert_array_equal(Verdicts(given, corrected).original_labels(labels, []), labels)
