"""Issue types (issue 30) through ``find_label_issues`` on the private
database: samples and patches get ``label_ambiguity``, ``outlier_score``,
``duplicate_group``, ``duplicate_conflict`` and ``label_issue``; the run
records the overlapping class pairs and the evidence; planted outliers and
conflicting copies are found."""

import os
import sys

import numpy as np
import pytest

from conftest import blobs, moved, plugin_module, run_operator, textures

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_objects import objects  # noqa: E402,F401  (fixture)

FIELDS = ("label_ambiguity", "outlier_score", "duplicate_group", "duplicate_conflict", "label_issue")


@pytest.fixture
def planted(new_dataset, tmp_path):
    """Blobs (4 classes x 60, 10% flipped) plus 8 far-away samples with
    random labels and 6 copies of real samples under another label."""
    import fiftyone as fo
    from PIL import Image

    x, y, noisy = blobs(num_classes=4, per_class=60, dim=16, noise_rate=0.1, seed=0)
    rng = np.random.default_rng(3)
    far = (rng.normal(size=(8, 16)) * 0.5 + 3.0).astype(np.float32)
    src = rng.choice(len(y), 6, replace=False)
    copies = x[src] + rng.normal(scale=1e-4, size=(6, 16)).astype(np.float32)
    xs = np.vstack([x, far, copies])
    labels = np.concatenate([noisy, rng.integers(0, 4, 8), (noisy[src] + 1) % 4])
    kind = ["real"] * len(y) + ["outlier"] * 8 + ["copy"] * 6
    path = str(tmp_path / "img.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    ds = new_dataset()
    ds.add_samples([
        fo.Sample(filepath=path, ground_truth=fo.Classification(label="class_%d" % labels[i]),
                  embeddings=xs[i], kind=kind[i],
                  source=int(src[i - len(y) - 8]) if kind[i] == "copy" else None)
        for i in range(len(xs))
    ])
    return ds


def test_find_label_issues_writes_issue_types(planted):
    ds = planted
    summary = run_operator("find_label_issues", ds, preset="custom",
                           detectors="knn_disagreement,label_quality")
    assert summary["steps"][-1]["step"] == "compute_label_issue_types"
    for name in FIELDS:
        assert ds.has_sample_field(name), name
    kind, issue, outlier, group, conflict, amb = ds.values(
        ["kind", "label_issue", "outlier_score", "duplicate_group", "duplicate_conflict",
         "label_ambiguity"])
    kind, issue = np.array(kind), np.array(issue)
    outlier = np.array(outlier)
    # planted outliers score highest and are typed as such
    assert outlier[kind == "outlier"].min() > np.percentile(outlier[kind == "real"], 99)
    assert (issue[kind == "outlier"] == "outlier").mean() >= 0.75
    assert (issue[kind == "real"] == "outlier").mean() <= 0.02
    # every planted copy is in its source's group, which conflicts
    ids = ds.values("id")
    rows = {sid: r for r, sid in enumerate(ids)}
    sources = ds.match({"kind": "copy"}).values("source")
    copies = [rows[i] for i in ds.match({"kind": "copy"}).values("id")]
    for c, s in zip(copies, sources):
        assert group[c] is not None and group[c] == group[s]
        assert conflict[c] and issue[c] == "duplicate_conflict"
    assert all(0.0 <= a <= 0.75 for a in amb)
    # flagged samples are wrong or ambiguous (or a more specific type)
    flagged = np.array(ds.values("noise_flagged"))
    assert set(issue[flagged]) <= {"wrong", "ambiguous", "outlier", "duplicate_conflict"}
    assert set(issue[~flagged]) <= {"", "outlier", "duplicate_conflict"}
    # SDK summary and run results: counts, overlapping pairs, evidence
    counts = summary["issue_types"]
    assert counts["duplicate_conflict"] == int((issue == "duplicate_conflict").sum())
    assert isinstance(summary["overlapping_classes"], list)
    results = ds.load_run_results("issue_types")
    assert results.counts == counts
    assert ds.get_run_info("issue_types").config.search.get("shared")  # the chain's graph
    evidence = {e["id"]: e for e in results.evidence}
    assert len(evidence) == int((issue != "").sum())
    one = evidence[ids[copies[0]]]
    assert one["type"] == "duplicate_conflict" and one["duplicate_group"] == group[copies[0]]
    for pair in results.overlapping_classes:
        assert pair["text"].startswith("%s <-> %s: " % tuple(pair["classes"]))
    # the panel's list beside the heatmap
    issue_overview = plugin_module("operators.panel.charts").issue_overview
    text = issue_overview(ds)
    assert "%d duplicate conflict" % counts["duplicate_conflict"] in text
    for pair in results.overlapping_classes[:5]:
        assert pair["text"] in text
    # the Euclidean geometry on request (recorded in the rules); the far group is found too
    assert "Sidak-combined" in results.rules["outlier"]
    assert one["outlier_geometry"] in ("cosine", "euclidean")
    run_operator("compute_label_issue_types", ds, outlier_metric="euclidean")
    assert "euclidean geometry" in ds.load_run_results("issue_types").rules["outlier"]
    issue = np.array(ds.values("label_issue"))
    assert (issue[kind == "outlier"] == "outlier").mean() >= 0.75


def test_issue_types_needs_label_quality_and_flags(planted):
    from fiftyone.operators.executor import ExecutionError

    run_operator("compute_knn_disagreement", planted, k=5)
    with pytest.raises(ExecutionError, match="compute_label_quality"):
        run_operator("compute_label_issue_types", planted)
    with pytest.raises(ExecutionError, match="outlier_metric"):
        run_operator("compute_label_issue_types", planted, outlier_metric="manhattan")
    assert not planted.has_sample_field("label_issue")


def test_issue_types_on_patches(objects):
    ds = objects(num_images=40, noise_rate=0.2)
    patches = ds.to_patches("ground_truth")
    summary = run_operator("find_label_issues", patches, preset="custom",
                           detectors="knn_disagreement,label_quality")
    assert summary["steps"][-1]["step"] == "compute_label_issue_types"
    n = len(patches)
    for name in ("label_ambiguity", "outlier_score", "duplicate_conflict", "label_issue"):
        assert ds.count("ground_truth.detections." + name) == n, name
        assert name not in ds.get_field_schema(), name
    config = ds.get_run_info("issue_types").config
    assert config.patches_field == "ground_truth"
    assert set(summary["issue_types"]) == {"wrong", "ambiguous", "outlier", "duplicate_conflict"}


# ------------------------------------------------ near-duplicates: the pixel check on real files


@pytest.fixture
def copies_on_disk(new_dataset, tmp_path):
    """Blobs (4 classes x 40) with one image file each, plus 6 copies of
    real images (flipped, cropped and resized, JPEG q40) under another
    label, their embeddings at 0.4 x the median nearest-neighbour distance
    from the source (beyond Datalab's 0.13)."""
    import io

    import fiftyone as fo
    from PIL import Image, ImageOps

    x, y, _ = blobs(num_classes=4, per_class=40, dim=16, noise_rate=0.0, seed=1)
    rng = np.random.default_rng(4)
    images = textures(len(y), seed=4)
    src = rng.choice(len(y), 6, replace=False)
    samples = []
    for i, img in enumerate(images):
        path = str(tmp_path / ("real_%03d.png" % i))
        Image.fromarray(img).save(path)
        samples.append(fo.Sample(filepath=path, ground_truth=fo.Classification(label="class_%d" % y[i]),
                                 embeddings=x[i], kind="real"))
    for j, s in enumerate(src):
        img = Image.fromarray(images[s])
        kind = ("flip", "crop", "jpeg")[j % 3]
        path = str(tmp_path / ("copy_%d.%s" % (j, "jpg" if kind == "jpeg" else "png")))
        if kind == "flip":
            ImageOps.mirror(img).save(path)
        elif kind == "crop":
            img.crop((2, 3, 30, 31)).resize((32, 32), Image.BILINEAR).save(path)
        else:
            img.save(path, quality=40)
        samples.append(fo.Sample(filepath=path,
                                 ground_truth=fo.Classification(label="class_%d" % ((y[s] + 1) % 4)),
                                 embeddings=moved(x, [s], 0.4, rng)[0], kind="copy", source=int(s)))
    ds = new_dataset()
    ds.add_samples(samples)
    return ds


def test_pixel_check_finds_transformed_copies_the_embedding_rule_misses(copies_on_disk):
    ds = copies_on_disk
    run_operator("find_label_issues", ds, preset="custom", detectors="knn_disagreement,label_quality")
    ids = ds.values("id")
    rows = {sid: r for r, sid in enumerate(ids)}
    copies = ds.match({"kind": "copy"})
    copy_rows = [rows[i] for i in copies.values("id")]
    source_rows = copies.values("source")

    def found():
        if not ds.has_sample_field("duplicate_group"):  # no group at all: not written
            return [False] * len(copy_rows)
        group, conflict = ds.values("duplicate_group"), ds.values("duplicate_conflict")
        return [group[c] is not None and group[c] == group[s] and conflict[c]
                for c, s in zip(copy_rows, source_rows)]

    assert all(found())                                   # flipped, cropped, re-encoded
    assert ds.match({"kind": "real", "duplicate_group": {"$ne": None}}).count() == 6  # their sources only
    results = ds.load_run_results("issue_types")
    assert results.duplicate_check["check"] == "pixels"
    assert results.duplicate_check["pixel_pairs_matched"] >= 6
    assert "thumbnails correlate >= 0.95" in results.rules["duplicate_conflict"]
    # the embedding rule alone (Datalab's) misses them at this distance
    run_operator("compute_label_issue_types", ds, duplicate_check="embeddings")
    results = ds.load_run_results("issue_types")
    assert results.duplicate_check["check"] == "embeddings"
    assert not any(found())
    assert "cosine distance <=" in results.rules["duplicate_conflict"]
    # bad values: refused before anything is written
    from fiftyone.operators.executor import ExecutionError

    before = ds.values("label_issue")
    with pytest.raises(ExecutionError, match="duplicate_check"):
        run_operator("compute_label_issue_types", ds, duplicate_check="hash")
    with pytest.raises(ExecutionError, match="duplicate_pixel_threshold"):
        run_operator("compute_label_issue_types", ds, duplicate_pixel_threshold=2.0)
    assert ds.values("label_issue") == before


def test_thumbnails_of_samples_and_objects(new_dataset, tmp_path):
    """Samples give their whole image, patches the crop of their box; a
    missing file is reported unreadable, not raised."""
    import fiftyone as fo
    from PIL import Image

    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = (200, 0, 0)      # left half red
    pixels[:, 40:] = (0, 0, 200)      # right half blue
    path = str(tmp_path / "halves.png")
    Image.fromarray(pixels).save(path)
    ds = new_dataset()
    ds.add_samples([
        fo.Sample(filepath=path, ground_truth=fo.Detections(detections=[
            fo.Detection(label="a", bounding_box=[0.0, 0.0, 0.5, 1.0]),
            fo.Detection(label="b", bounding_box=[0.5, 0.0, 0.5, 1.0]),
        ])),
        fo.Sample(filepath=str(tmp_path / "missing.png")),
    ])
    thumbnail_reader = plugin_module("store.thumbnails").thumbnail_reader
    read = thumbnail_reader(ds, ds.values("id"), ds.values("filepath"))
    images, readable = read(np.array([0, 1]))
    assert readable.tolist() == [True, False]
    assert images.shape == (2, 32, 32, 3)
    assert images[0, :, :12, 0].mean() > 150 and images[0, :, -12:, 2].mean() > 150
    patches = ds.to_patches("ground_truth")
    read = thumbnail_reader(patches, patches.values("id"), patches.values("filepath"),
                            label_field="ground_truth")
    images, readable = read(np.array([1, 0]))
    assert readable.all()
    labels = patches.values("ground_truth.label")
    colour = {"a": 0, "b": 2}                             # a: the red half, b: the blue half
    for k, row in enumerate([1, 0]):
        assert images[k, :, :, colour[labels[row]]].mean() > 150
        assert images[k, :, :, 2 - colour[labels[row]]].mean() < 50


# ------------------------------------------------ verdicts: ambiguous, exclude


def _module(name):
    from conftest import operator

    return sys.modules[type(operator(name)).__module__]


def _docs(ds, ids):
    from bson import ObjectId

    docs = {d["_id"]: d for d in ds._sample_collection.find({})}
    return [docs[ObjectId(i)] for i in ids]


def test_ambiguous_and_exclude_verdicts_undo_exactly(blob_dataset):
    lnv = plugin_module("store.review")
    ds = blob_dataset(num_classes=4, per_class=30, noise_rate=0.15)
    run_operator("compute_knn_disagreement", ds, k=5)
    run_operator("compute_noise_score", ds)
    ids = ds.values("id")
    label = dict(zip(ids, ds.values("ground_truth.label")))
    sug = dict(zip(ids, ds.values("suggested_label.label")))
    with_sug = next(i for i in ids if sug[i] != label[i])
    a, b = ids[0], ids[1] if ids[1] != with_sug else ids[2]
    lnv.record_verdict(ds, [a], "correct")  # verified right first
    before = _docs(ds, [a, b, with_sug])
    other = next(c for c in sorted(set(label.values())) if c != label[a])
    lnv.record_verdict(ds, [a], "ambiguous", alternative=other)
    s = ds[a]
    assert s.ground_truth.label == label[a]                 # the label stays
    assert s.label_verified is None                         # neither right nor wrong
    assert s.label_review.verdict == "ambiguous"
    assert [c.label for c in s.label_alternatives.classifications] == [other]
    # no alternative given: the suggestion, when it differs from the label
    lnv.record_verdict(ds, [with_sug], "ambiguous")
    assert ds[with_sug].label_alternatives.classifications[0].label == sug[with_sug]
    lnv.record_verdict(ds, [b], "exclude")
    assert ds[b].label_review.verdict == "exclude" and ds[b].ground_truth.label == label[b]
    assert lnv.excluded_ids(ds) == {b}
    with pytest.raises(lnv.InputError, match="alternative must be another class"):
        lnv.record_verdict(ds, [a], "ambiguous", alternative=label[a])
    undone = lnv.undo_verdicts(ds, 3)
    assert undone["verdicts"] == ["exclude", "ambiguous", "ambiguous"]
    after = _docs(ds, [a, b, with_sug])
    for x, y in zip(before, after):
        for key in ("ground_truth", "label_verified", "label_review"):
            assert x.get(key) == y.get(key), key
        assert y.get("label_alternatives") is None
    assert ds[a].label_verified is True and ds[a].label_review.verdict == "correct"


def test_audit_reports_each_type_with_interval(blob_dataset):
    from methods.audit import wilson_interval

    lnv = plugin_module("store.review")
    audit = plugin_module("store.audit")
    ds = blob_dataset(num_classes=4, per_class=30, noise_rate=0.15)
    run_operator("start_label_audit", ds, size=20, seed=1)
    ids = list(ds.load_run_results("label_audit", cache=False).sample_ids)
    plan = ["correct"] * 12 + ["ambiguous"] * 4 + ["exclude"] * 2 + ["skip"] * 2
    for sid, verdict in zip(ids, plan):
        lnv.record_verdict(ds, [sid], verdict, mode="audit")
    est = audit.update_audit(ds, "label_audit")["estimate"]
    types = est["types"]
    assert types["right"]["count"] == 12 and types["ambiguous"]["count"] == 4
    assert types["exclude"]["count"] == 2 and types["wrong"]["count"] == 0
    assert types["ambiguous"]["n"] == 18  # skipped items are left out
    assert (types["ambiguous"]["low"], types["ambiguous"]["high"]) == pytest.approx(
        wilson_interval(4, 18))
    assert est["n"] == 12  # the wrong-label rate: right/wrong verdicts only
    audit_summary = plugin_module("operators.panel.review").audit_summary
    text = audit_summary(est)
    assert "ambiguous (two classes fit)" in text and "no class fits" in text


def test_export_and_rescore_use_the_verdicts(blob_dataset, tmp_path):
    import json

    lnv = plugin_module("store.review")
    ds = blob_dataset(num_classes=4, per_class=30, noise_rate=0.15)
    run_operator("find_label_issues", ds, preset="custom", detectors="knn_disagreement,label_quality")
    ids = ds.values("id")
    lnv.record_verdict(ds, ids[:3], "ambiguous")
    lnv.record_verdict(ds, ids[3:5], "exclude")
    ds.select(ids[:10]).tag_samples("noisy")
    out = run_operator("export_curated_dataset", ds, export_dir=str(tmp_path / "out"))
    assert out["num_ambiguous"] == 3 and out["num_excluded"] == 2
    assert out["num_clean"] + out["num_dirty"] == len(ds) - 5
    assert out["num_dirty"] == 5  # tagged, minus the 5 marked ones
    manifest = json.load(open(tmp_path / "out" / "curation.json"))
    exported = {s: {r["id"] for r in v["files"]} for s, v in manifest["splits"].items()}
    assert exported["excluded"] == set(ids[3:5]) and exported["ambiguous"] == set(ids[:3])
    assert not (exported["clean"] | exported["dirty"]) & set(ids[:5])
    # re-score: excluded samples are never trained on (known = wrong), the
    # ambiguous ones neither right nor wrong
    lq = sys.modules[type(_operator("compute_label_quality")).__module__]
    known = lq.human_verdicts(ds, ids, "label_verified", "ground_truth")
    assert known[3] == known[4] == 1 and known[0] == known[1] == known[2] == -1
    again = run_operator("find_label_issues", ds, rescore=True)
    assert [s["step"] for s in again["steps"]][0] == "compute_label_quality"
    assert ds.get_run_info("label_quality").config.num_known == 2


def _operator(name):
    from conftest import operator

    return operator(name)


def test_object_verdicts_keys_export_and_undo(objects, tmp_path):
    key_action = plugin_module("operators.panel.review").key_action

    lnv = plugin_module("store.review")
    ds = objects(num_images=20, noise_rate=0.2)
    patches = ds.to_patches("ground_truth")
    ids = patches.values("id")
    before = ds._sample_collection.find_one({"ground_truth.detections._id": __import__("bson").ObjectId(ids[0])})
    labels = dict(zip(ids, patches.values("ground_truth.label")))
    other = next(c for c in sorted(set(labels.values())) if c != labels[ids[0]])
    assert key_action("a", [])[0] == "ambiguous" and key_action("X", [])[0] == "exclude"
    lnv.record_verdict(patches, [ids[0]], "ambiguous", alternative=other)
    lnv.record_verdict(patches, [ids[1]], "exclude")
    fresh = ds.to_patches("ground_truth")
    got = dict(zip(fresh.values("id"), zip(fresh.values("ground_truth.review_verdict"),
                                           fresh.values("ground_truth.review_alternative"),
                                           fresh.values("ground_truth.label"))))
    assert got[ids[0]] == ("ambiguous", other, labels[ids[0]])
    assert got[ids[1]][0] == "exclude" and got[ids[1]][2] == labels[ids[1]]
    assert lnv.excluded_ids(fresh, "ground_truth") == {ids[1]}
    # export: the excluded and the ambiguous objects get their own folders
    out = run_operator("export_curated_dataset", patches, export_dir=str(tmp_path / "o"),
                       format="coco_detection", split_by="tag", dirty_tag="noisy")
    assert out["num_excluded"] == 1 and out["num_ambiguous"] == 1
    assert out["num_clean"] + out.get("num_dirty", 0) == len(ids) - 2
    lnv.undo_verdicts(patches, 2)
    after = ds._sample_collection.find_one({"_id": before["_id"]})
    assert after["ground_truth"] == before["ground_truth"]  # objects exactly as stored
