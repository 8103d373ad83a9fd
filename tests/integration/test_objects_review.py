"""Objects (patches views of fo.Detection) through the whole loop, on the
private database (issue 19): ``find_label_issues`` on a patches view,
review verdicts / undo / audits on objects, apply + revert with a
byte-for-byte undo, and the COCO export read back with FiftyOne.
"""

import os
import sys

import bson
import numpy as np
import pytest

from conftest import operator, plugin_module, run_operator, snapshot

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_objects import objects  # noqa: E402,F401  (fixture)
from test_bad_input import error_line  # noqa: E402


def _raw(ds):
    """Each sample document as stored, as BSON bytes, without FiftyOne's
    ``last_modified_at`` (which any write moves); and each object's bytes."""
    samples, dets = {}, {}
    for doc in ds._sample_collection.find({}, sort=[("_id", 1)]):
        doc.pop("last_modified_at", None)
        samples[str(doc["_id"])] = bson.encode(doc)
        for det in (doc.get("ground_truth") or {}).get("detections", []):
            dets[str(det["_id"])] = bson.encode(det)
    return samples, dets


def _auroc(truth, score):
    from methods.consensus import auroc as _auroc

    return _auroc(np.asarray(truth, bool), np.asarray(score, float))


# ------------------------------------------------------ find_label_issues ---


def test_find_label_issues_on_patches(objects):
    pipeline = plugin_module("operators.pipeline")
    FAST, CONSENSUS = pipeline.FAST, pipeline.CONSENSUS

    ds = objects(num_images=80, noise_rate=0.2)
    patches = ds.to_patches("ground_truth")
    n = len(patches)
    summary = run_operator("find_label_issues", patches, preset="fast")
    assert [s["step"] for s in summary["steps"]] == list(FAST) + [CONSENSUS, "compute_label_issue_types"]
    assert summary["num_samples"] == n
    for step in summary["steps"]:
        config = ds.get_run_info(step["run_key"]).config
        assert config.patches_field == "ground_truth", step
        assert all(f.startswith("ground_truth.detections.") for f in config.fields), config.fields
    # outputs on each object only: no sample-level field was created
    for name in ("noise_score", "suggested_label", "label_quality", "knn_disagreement"):
        assert ds.count("ground_truth.detections." + name) == n, name
        assert name not in ds.get_field_schema(), name
    assert "label_quality" in summary["inputs"]
    fresh = ds.to_patches("ground_truth")
    noisy, score, flagged = fresh.values(
        ["ground_truth.is_noisy", "ground_truth.noise_score", "ground_truth.noise_flagged"])
    assert _auroc(noisy, score) > 0.85
    assert sum(flagged) == summary["num_flagged"] > 0
    # re-score from the verdicts (the fixture verifies some objects): label
    # quality re-fitted with them, then the consensus; no other detector
    again = run_operator("find_label_issues", patches, rescore=True)
    assert [s["step"] for s in again["steps"]] == ["compute_label_quality", CONSENSUS, "compute_label_issue_types"]
    assert ds.get_run_info("label_quality").config.num_known > 0


def test_find_label_issues_on_patches_computes_crop_embeddings(objects):
    ds = objects(num_images=20, noise_rate=0.2)
    patches = ds.to_patches("ground_truth")
    summary = run_operator("find_label_issues", patches, preset="custom",
                           detectors="knn_disagreement", embeddings_field="crop_embeddings",
                           model="resnet18", weights="")
    assert [s["step"] for s in summary["steps"]] == [
        "compute_embeddings", "compute_knn_disagreement", "compute_noise_score"]
    assert ds.count("ground_truth.detections.crop_embeddings") == len(patches)
    assert "crop_embeddings" not in ds.get_field_schema()
    config = ds.get_run_info("knn_disagreement").config
    assert config.params["embeddings_field"] == "crop_embeddings"


def test_find_label_issues_missing_object_embeddings_says_so(objects):
    ds = objects(num_images=10)
    before = snapshot(ds)
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError) as info:
        run_operator("find_label_issues", ds.to_patches("ground_truth"), embeddings_field="nope")
    line = error_line(info.value)
    assert "nope" in line and "model" in line, line
    assert snapshot(ds) == before


def test_thorough_plan_counts_verified_objects(objects):
    pipeline = plugin_module("operators.pipeline")
    plan_steps, verified_counts = pipeline.plan_steps, pipeline.verified_counts

    ds = objects(num_images=40, noise_rate=0.3)
    patches = ds.to_patches("ground_truth")
    per_class, num_correct, num_wrong = verified_counts(patches, "ground_truth")
    verified = [v for v in patches.values("ground_truth.label_verified") if v is not None]
    assert num_correct == sum(verified) and num_wrong == len(verified) - sum(verified)
    assert num_correct >= 10 and num_wrong >= 10
    steps, notes = plan_steps(patches, "thorough")
    assert "compute_cleannet_similarity" in [s for s, _ in steps], notes


# -------------------------------------------------------- review verdicts ---


def test_verdicts_on_objects_and_exact_undo(objects):
    from fiftyone import ViewField as F

    ds = objects(num_images=30, noise_rate=0.3)
    patches = ds.to_patches("ground_truth")
    run_operator("compute_knn_disagreement", patches, k=5)
    run_operator("compute_noise_score", patches)
    before_samples, before_dets = _raw(ds)
    fresh = ds.to_patches("ground_truth")
    ids, labels, suggested, verified = fresh.values(
        ["id", "ground_truth.label", "ground_truth.suggested_label.label",
         "ground_truth.label_verified"])
    differ = [i for i, a, b in zip(ids, labels, suggested) if a != b]
    unverified = [i for i, v in zip(ids, verified) if v is None and i not in differ[:1]]
    verified_false = [i for i, v in zip(ids, verified) if v is False and i not in differ[:1]]
    first, second, third, fourth = differ[0], unverified[0], verified_false[0], unverified[1]
    label_of = dict(zip(ids, labels))

    verdict = operator("record_label_verdict")
    out = verdict(patches.select(first), verdict="suggestion")
    assert out["num_corrected"] == 1
    obj = ds.to_patches("ground_truth").select(first).first().ground_truth
    assert obj.label == dict(zip(ids, suggested))[first] != label_of[first]
    assert obj.label_original == label_of[first] and obj.correction_source == "review"
    assert obj.label_verified is False and obj.review_verdict == "suggestion"
    # the patches view in hand (the App's) sees the change too
    assert patches.select(first).values("ground_truth.label") == [obj.label]
    verdict(patches.select(second), verdict="correct")
    verdict(patches.select(third), verdict="correct")  # was verified wrong
    other = next(c for c in ("class_0", "class_1") if c != label_of[fourth])
    verdict(patches.select(fourth), verdict="relabel", new_label=other)
    verdict(patches.select([first, second]), verdict="skip")
    values = dict(zip(*ds.to_patches("ground_truth").values(["id", "ground_truth.label_verified"])))
    assert values[second] is True and values[third] is True and values[fourth] is False
    assert ds.count_values("ground_truth.detections.review_verdict")["skip"] == 2
    # sample-level fields are untouched
    assert "label_verified" not in ds.get_field_schema()
    assert "label_review" not in ds.get_field_schema()
    assert ds.to_patches("ground_truth").match(
        F("ground_truth.review_verdict") == "relabel").values("id") == [fourth]

    out = operator("undo_label_verdict")(patches, steps=5)
    assert out["num_undone"] == 5
    after_samples, after_dets = _raw(ds)
    assert after_dets == before_dets  # every object, byte for byte
    assert after_samples == before_samples
    assert patches.values("ground_truth.label") == labels  # the view in hand too


def test_object_verdict_bad_input_writes_nothing(objects):
    import fiftyone as fo
    from fiftyone.operators.executor import ExecutionError

    ds = objects(num_images=10)
    patches = ds.to_patches("ground_truth")
    oid = patches.first().id
    cases = [
        (dict(verdict="relabel"), "new_label"),
        (dict(verdict="relabel", new_label=patches.first().ground_truth.label), "already"),
        (dict(verdict="suggestion"), "suggested_label"),
        (dict(verdict="maybe"), "verdict"),
    ]
    for params, mention in cases:
        before = snapshot(ds)
        with pytest.raises(ExecutionError) as info:
            operator("record_label_verdict")(patches.select(oid), **params)
        assert mention in error_line(info.value), (params, error_line(info.value))
        assert snapshot(ds) == before
    # the verification attribute holding something else
    ds.delete_sample_field("ground_truth.detections.label_verified")
    ds.add_sample_field("ground_truth.detections.label_verified", fo.StringField)
    before = snapshot(ds)
    with pytest.raises(ExecutionError) as info:
        operator("record_label_verdict")(ds.to_patches("ground_truth").select(oid), verdict="correct")
    assert "label_verified" in error_line(info.value)
    assert snapshot(ds) == before


def test_audit_on_objects(objects):
    from methods.audit import wilson_interval

    update_audit = plugin_module("store.audit").update_audit
    ds = objects(num_images=30, noise_rate=0.3)
    patches = ds.to_patches("ground_truth")
    out = operator("start_label_audit")(patches, size=15, seed=3)
    assert out["population"] == len(patches) and out["num_samples"] == 15
    ids = list(ds.load_run_results("label_audit", cache=False).sample_ids)
    assert set(ids) <= set(patches.values("id"))
    truth = dict(zip(*patches.values(["id", "ground_truth.is_noisy"])))
    clean = dict(zip(*patches.values(["id", "ground_truth.clean_label"])))
    pre = dict(zip(*patches.values(["id", "ground_truth.label_verified"])))
    for oid in ids[:10]:
        verdict = "relabel" if truth[oid] else "correct"
        operator("record_label_verdict")(patches.select(oid), verdict=verdict,
                                         new_label=clean[oid], mode="audit")
    est = update_audit(ds, "label_audit")["estimate"]
    # the reviewed ten, plus audited objects the fixture had verified already
    verified = dict(zip(*ds.to_patches("ground_truth").values(["id", "ground_truth.label_verified"])))
    known = [verified[i] for i in ids if verified[i] is not None]
    assert all(verified[i] is (not truth[i]) for i in ids[:10])
    n, k = len(known), sum(v is False for v in known)
    assert n >= 10 and est["n"] == n and est["wrong"] == k
    assert (est["low"], est["high"]) == pytest.approx(wilson_interval(k, n))
    # the consensus takes the audited objects as its unbiased set
    run_operator("compute_knn_disagreement", patches, k=5)
    summary = run_operator("compute_label_quality", patches)
    assert summary["num_samples"] == len(patches)
    noise = run_operator("compute_noise_score", patches)
    assert noise["noise_estimate"]["audit_run"] == "label_audit", noise["noise_estimate"]
    operator("undo_label_verdict")(patches, steps=1)
    undone = pre[ids[9]] is None  # else the object stays verified as it was
    assert ds.load_run_results("label_audit", cache=False).reviewed == n - undone


# ----------------------------------------------------- apply/revert, export ---


def test_apply_revert_is_byte_for_byte(objects):
    ds = objects(num_images=30, noise_rate=0.3)
    patches = ds.to_patches("ground_truth")
    run_operator("compute_knn_disagreement", patches, k=5)
    run_operator("compute_noise_score", patches, tag="noisy")
    before_samples, before_dets = _raw(ds)
    applied = run_operator("apply_label_corrections", patches, only_tag="noisy")
    assert applied["num_corrected"] > 0
    assert applied["original_field"] == "ground_truth.detections.label_original"
    _, mid = _raw(ds)
    assert sum(mid[i] != before_dets[i] for i in mid) == applied["num_corrected"]
    reverted = run_operator("revert_label_corrections", patches)
    assert reverted["num_reverted"] == applied["num_corrected"]
    after_samples, after_dets = _raw(ds)
    assert after_dets == before_dets
    assert after_samples == before_samples


def test_coco_export_reads_back(objects, tmp_path):
    import fiftyone as fo

    ds = objects(num_images=25, noise_rate=0.3)
    patches = ds.to_patches("ground_truth")
    run_operator("compute_knn_disagreement", patches, k=5)
    run_operator("compute_noise_score", patches, tag="noisy")
    run_operator("apply_label_corrections", patches, only_tag="noisy")
    fresh = ds.to_patches("ground_truth")
    info = dict(zip(fresh.values("id"), zip(
        fresh.values("filepath"), fresh.values("ground_truth.label"),
        fresh.values("ground_truth.label_original"), fresh.values("ground_truth.bounding_box"),
        fresh.values("ground_truth.tags"))))
    for labels in ("current", "original"):
        out = str(tmp_path / labels)
        summary = run_operator("export_curated_dataset", patches, export_dir=out,
                               format="coco_detection", split_by="tag", dirty_tag="noisy",
                               labels=labels)
        for split in ("clean", "dirty"):
            part = {i: v for i, v in info.items() if ("noisy" in v[4]) == (split == "dirty")}
            assert summary["num_" + split] == len(part)
            back = fo.Dataset.from_dir(
                dataset_dir=os.path.join(out, split), dataset_type=fo.types.COCODetectionDataset,
                label_types="detections", label_field="ground_truth",
            )
            try:
                expected = sorted(
                    (os.path.basename(p), (orig or lab) if labels == "original" else lab,
                     tuple(np.round(box, 6)))
                    for p, lab, orig, box, _ in part.values()
                )
                got = []
                for sample in back:
                    for det in sample.ground_truth.detections:
                        got.append((os.path.basename(sample.filepath), det.label,
                                    tuple(np.round(det.bounding_box, 6))))
                assert sorted(got) == expected, (labels, split)
            finally:
                back.delete()
