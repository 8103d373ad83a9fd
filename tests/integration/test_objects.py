"""Object labels: every operator on a patches view of fo.Detections, on the
private database (issue 19).

- every detector (discovered, as in test_bad_input) and the consensus run on
  ``dataset.to_patches("ground_truth")`` and write their outputs on each
  object (``ground_truth.detections.<output>``), the run records the
  patches field;
- bad input (boxes, unlabeled objects, empty images, polylines, sample-level
  Detections / Classifications) fails before anything is written;
- curation: label tags, apply/revert with exact undo, export (COCO and
  FiftyOne) with current or original labels;
- compute_embeddings' patches mode (random weights) and the pipeline end to
  end on the shipped pasted-CIFAR-10N objects; object-level AUROC equals
  image-level AUROC on the same labels.
"""

import json
import os
import sys

import numpy as np
import pytest

from conftest import operator, run_operator, snapshot

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
from test_bad_input import DETECTORS, SMALL_PARAMS, error_line  # noqa: E402
DEMO_OBJECTS = os.path.join(REPO, "demo", "cifar10n-objects")


@pytest.fixture
def objects(new_dataset, tmp_path):
    """``make(num_images=50, num_classes=4, dim=16, noise_rate=0.15)``: images
    (real 64x64 PNGs) with 2-4 fo.Detection each; each object has
    ``embeddings`` (Gaussian blobs), ``clean_label``, ``is_noisy`` and half of
    them ``label_verified`` (+ label tag ``validated`` when correct)."""
    import fiftyone as fo
    from PIL import Image

    from conftest import blobs

    def make(num_images=50, num_classes=4, dim=16, noise_rate=0.15, seed=0):
        rng = np.random.default_rng(seed)
        per_image = rng.integers(2, 5, num_images)
        n = int(per_image.sum())
        x, y, noisy = blobs(num_classes, -(-n // num_classes), dim, noise_rate, seed)
        order = rng.permutation(len(y))[:n]
        names = ["class_%d" % c for c in range(num_classes)]
        ds = new_dataset()
        samples, k = [], 0
        for i, m in enumerate(per_image):
            path = str(tmp_path / ("img_%03d.png" % i))
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
            dets = []
            for j in range(m):
                r = order[k]
                k += 1
                det = fo.Detection(
                    label=names[noisy[r]],
                    bounding_box=[0.5 * (j % 2), 0.5 * (j // 2), 0.4, 0.4],
                    embeddings=x[r],
                    clean_label=names[y[r]],
                    is_noisy=bool(noisy[r] != y[r]),
                )
                if k % 2 == 0:
                    det.label_verified = bool(noisy[r] == y[r])
                    if noisy[r] == y[r]:
                        det.tags = ["validated"]
                dets.append(det)
            samples.append(fo.Sample(filepath=path, ground_truth=fo.Detections(detections=dets)))
        ds.add_samples(samples, dynamic=True)
        return ds

    return make


def _object_docs(dataset):
    """Every object document as stored, by label id."""
    docs = {}
    for doc in dataset._sample_collection.find({}, sort=[("_id", 1)]):
        for det in (doc.get("ground_truth") or {}).get("detections", []):
            docs[str(det["_id"])] = det
    return docs


def _params(name, **extra):
    declared = {p.name for p in operator(name).params}
    params = {k: v for k, v in SMALL_PARAMS.get(name, {}).items() if k in declared}
    params.update(extra)
    return params


# ------------------------------------------------------------ detectors ---


@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_writes_on_each_object(name, objects):
    # half of the objects are verified (label tag 'validated' when right),
    # so CleanNet and Training-ValueNet run too: no refusal is accepted
    ds = objects()
    patches = ds.to_patches("ground_truth")
    if name == "compute_noise_score":
        run_operator("compute_knn_disagreement", patches, k=5)
    if name == "compute_label_issue_types":  # types what label quality + the consensus found
        run_operator("compute_label_quality", patches, **_params("compute_label_quality"))
        run_operator("compute_noise_score", patches)
    summary = run_operator(name, patches, **_params(name))
    assert summary["num_samples"] == len(patches)
    for path in summary["fields"]:
        assert path.startswith("ground_truth.detections."), path
        assert ds.get_field(path) is not None, path
    main = operator(name).output_field
    path = "ground_truth.detections." + main
    assert path in summary["fields"]
    assert ds.count(path) == len(patches)  # one value per object
    fresh = ds.to_patches("ground_truth")
    assert fresh.count("ground_truth." + main) == len(patches)
    # the patches view in hand (the App's) sees the outputs too
    assert patches.count("ground_truth." + main) == len(patches)
    config = ds.get_run_info(summary["run_key"]).config
    assert config.patches_field == "ground_truth"
    assert list(config.fields) == summary["fields"]
    # sortable like any patches field
    top = fresh.sort_by("ground_truth." + main, reverse=True).first()
    assert top.ground_truth[main] is not None


def test_consensus_combines_object_outputs_and_verification(objects):
    ds = objects(num_images=80, noise_rate=0.2)
    patches = ds.to_patches("ground_truth")
    run_operator("compute_knn_disagreement", patches, k=5)
    run_operator("compute_corrected_labels", patches, samples_per_class=20, num_prototypes=2)
    summary = run_operator("compute_noise_score", patches, tag="noisy")
    assert {"knn_disagreement", "corrected_label"} <= set(summary["inputs"]), summary
    config = ds.get_run_info("consensus").config
    assert config.num_verified["correct"] + config.num_verified["mislabeled"] > 0
    noisy, score = ds.to_patches("ground_truth").values(
        ["ground_truth.is_noisy", "ground_truth.noise_score"]
    )
    from methods.consensus import auroc as _auroc

    assert _auroc(np.array(noisy), np.array(score, float)) > 0.8
    # flagged objects get the label tag, images none
    assert ds.count_label_tags().get("noisy") == summary["num_flagged"]
    assert ds.count_sample_tags().get("noisy") is None


def test_empty_images_are_skipped_and_counted(objects):
    import fiftyone as fo

    ds = objects()
    ds.add_samples([
        fo.Sample(filepath=ds.first().filepath, ground_truth=fo.Detections()),
        fo.Sample(filepath=ds.first().filepath),
    ])
    summary = run_operator("compute_knn_disagreement", ds.to_patches("ground_truth"), k=5)
    assert summary["skipped"] == {"samples without objects in 'ground_truth'": 2}


# ------------------------------------------------------------ bad input ---


def _expect_error(ds, target, mentions, name="compute_knn_disagreement", **params):
    from fiftyone.operators.executor import ExecutionError

    before = snapshot(ds)
    with pytest.raises(ExecutionError) as info:
        run_operator(name, target, **params)
    line = error_line(info.value)
    assert "InputError" in line or "ValueError" in line, line
    for m in mentions:
        assert m.lower() in line.lower(), (m, line)
    assert snapshot(ds) == before
    return line


@pytest.mark.parametrize(
    "box, reason",
    [([0.8, 0.1, 0.4, 0.2], "outside [0, 1]"), ([0.1, 0.1, 0.0, 0.2], "zero"),
     ([-0.2, 0.1, 0.3, 0.2], "outside [0, 1]")],
)
@pytest.mark.parametrize(
    "name",
    ["compute_knn_disagreement", "compute_noise_score", "compute_embeddings",
     "compute_label_quality", "find_label_issues"],
)
def test_bad_boxes(objects, box, reason, name):
    ds = objects(num_images=20)
    if name == "compute_noise_score":
        run_operator("compute_knn_disagreement", ds.to_patches("ground_truth"), k=5)
    sample = ds.first()
    sample.ground_truth.detections[1].bounding_box = box
    sample.save()
    oid = sample.ground_truth.detections[1].id
    params = {"weights": ""} if name == "compute_embeddings" else {}
    _expect_error(ds, ds.to_patches("ground_truth"), [reason, oid, "bounding box"], name, **params)


def test_object_without_label(objects):
    ds = objects(num_images=20)
    sample = ds.first()
    sample.ground_truth.detections[0].label = None
    sample.save()
    oid = sample.ground_truth.detections[0].id
    _expect_error(ds, ds.to_patches("ground_truth"), ["no label", oid, "filter_labels"])


def test_sample_level_detections_say_to_use_patches(objects):
    ds = objects(num_images=10)
    _expect_error(ds, ds, ["fo.Detections", "to_patches('ground_truth')", "not supported"])


def test_multilabel_classifications_not_part_of_objects(objects):
    import fiftyone as fo

    ds = objects(num_images=10)
    ids = ds.values("id")
    ds.set_values("tags_ml", {i: fo.Classifications(classifications=[fo.Classification(label="a")])
                              for i in ids}, key_field="id")
    _expect_error(ds, ds, ["Classifications", "not supported"], label_field="tags_ml")


@pytest.mark.parametrize("kind", ["polylines", "keypoints"])
def test_polylines_keypoints_not_supported(new_dataset, tmp_path, kind):
    import fiftyone as fo

    ds = new_dataset()
    samples = []
    for i in range(6):
        if kind == "polylines":
            label = fo.Polylines(polylines=[fo.Polyline(label="a", points=[[(0.1, 0.1), (0.2, 0.2)]])])
        else:
            label = fo.Keypoints(keypoints=[fo.Keypoint(label="a", points=[(0.1, 0.1)])])
        samples.append(fo.Sample(filepath="/tmp/x%d.png" % i, **{kind: label}))
    ds.add_samples(samples)
    _expect_error(ds, ds.to_patches(kind), ["not supported"], label_field=kind)
    _expect_error(ds, ds, ["not supported"], label_field=kind)


def test_patches_view_of_another_field(objects):
    ds = objects(num_images=10)
    line = _expect_error(ds, ds.to_patches("ground_truth"), ["['ground_truth']"],
                         label_field="predictions")
    assert "predictions" in line


def test_bad_write_type_changes_nothing(objects):
    ds = objects(num_images=10)
    patches = ds.to_patches("ground_truth")
    run_operator("compute_knn_disagreement", patches, k=5)
    # knn_label (a Classification) would go into a numeric attribute
    _expect_error(ds, patches, ["knn_disagreement", "already holds"],
                  k=5, suggestion_field="knn_disagreement", output_field="knn2", run_key="knn2")


# ------------------------------------------------------------- curation ---


def test_tag_apply_revert_export_objects(objects, tmp_path):
    from fiftyone import ViewField as F

    ds = objects(num_images=40, noise_rate=0.25)
    patches = ds.to_patches("ground_truth")
    run_operator("compute_knn_disagreement", patches, k=5)
    run_operator("compute_noise_score", patches)
    before = _object_docs(ds)
    tagged = run_operator("tag_noisy_samples", patches, score_field="noise_score",
                          mode="top_k", top_k=15, tag="noisy")
    assert tagged["num_tagged"] == 15
    assert ds.count_label_tags()["noisy"] == 15 and not ds.count_sample_tags().get("noisy")
    top = patches.sort_by("ground_truth.noise_score", reverse=True).limit(15).values("id")
    assert set(ds.to_patches("ground_truth").match(
        F("ground_truth.tags").contains("noisy")).values("id")) == set(top)

    applied = run_operator("apply_label_corrections", patches, only_tag="noisy")
    assert applied["num_corrected"] > 0
    after = _object_docs(ds)
    changed = [i for i in after if after[i]["label"] != before[i]["label"]]
    assert len(changed) == applied["num_corrected"]
    for oid in changed:
        assert after[oid]["label_original"] == before[oid]["label"]
        assert after[oid]["label"] == after[oid]["suggested_label"]["label"]
        assert after[oid]["correction_source"] == "curation"
        assert after[oid]["bounding_box"] == before[oid]["bounding_box"]
        assert oid in top
    # a second correction keeps the first original
    oid = changed[0]
    sid = ds.to_patches("ground_truth").select(oid).values("sample_id")[0]
    from store.corrections import apply_object_corrections

    again = "class_0" if after[oid]["label"] != "class_0" else "class_1"
    apply_object_corrections(ds.to_patches("ground_truth"), [oid], [again], source="manual")
    doc = _object_docs(ds)[oid]
    assert doc["label"] == again and doc["label_original"] == before[oid]["label"]
    assert doc["correction_count"] == 2 and doc["correction_previous"] == after[oid]["label"]
    assert sid

    # export: clean / suspect parts as detection datasets
    out = str(tmp_path / "coco")
    summary = run_operator("export_curated_dataset", patches, export_dir=out,
                           format="coco_detection", split_by="tag", dirty_tag="noisy",
                           labels="original")
    assert summary["num_dirty"] == 15 and summary["num_clean"] == len(patches) - 15
    coco = json.load(open(os.path.join(out, "dirty", "labels.json")))
    assert len(coco["annotations"]) == 15
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    exported = sorted(cats[a["category_id"]] for a in coco["annotations"])
    assert exported == sorted(before[i]["label"] for i in top)  # original labels
    out2 = str(tmp_path / "fo")
    run_operator("export_curated_dataset", patches, export_dir=out2, format="fiftyone_dataset",
                 split_by="tag", dirty_tag="noisy", labels="current")
    import fiftyone as fo

    dirty = fo.Dataset.from_dir(out2 + "/dirty", dataset_type=fo.types.FiftyOneDataset)
    labels = dirty.values("ground_truth.detections.label", unwind=True)
    assert sorted(labels) == sorted(_object_docs(ds)[i]["label"] for i in top)  # current
    assert dirty.count("ground_truth.detections") == 15
    dirty.delete()
    with pytest.raises(Exception, match="coco_detection"):
        run_operator("export_curated_dataset", patches, export_dir=str(tmp_path / "x"),
                     format="image_tree")

    reverted = run_operator("revert_label_corrections", patches)
    assert reverted["num_reverted"] == len(changed)
    restored = _object_docs(ds)
    for oid, old in before.items():
        new = restored[oid]
        assert new["label"] == old["label"]
        for key, value in old.items():
            if key != "tags":  # the label tag 'noisy' stays (tagging is not a correction)
                assert new[key] == value, (oid, key)
        for key in ("label_original", "correction_source", "correction_count"):
            assert new.get(key) is None
    assert ds.to_patches("ground_truth").exists("ground_truth.correction_source").count() == 0


# ------------------------------------------------- embeddings / pipeline ---


def test_patch_embeddings_and_pipeline_on_pasted_cifar10n(new_dataset):
    """compute_embeddings crops each box (random weights); the detectors and
    the consensus run on them end to end; AUROC reported."""
    import fiftyone as fo
    from make_detection_dataset import load_objects

    ds = load_objects("objects-" + new_dataset().name, DEMO_OBJECTS, with_embeddings=False)
    try:
        ds = ds.limit(40).clone(ds.name + "-small")
        patches = ds.to_patches("ground_truth")
        summary = run_operator("compute_embeddings", patches, model="resnet18", weights="",
                               batch_size=16, patch_margin=0.1)
        assert summary["num_embedded"] == len(patches)
        assert summary["fields"] == ["ground_truth.detections.embeddings"]
        assert isinstance(ds.get_field("ground_truth.detections.embeddings"), fo.VectorField)
        vectors = ds.to_patches("ground_truth").values("ground_truth.embeddings")
        assert all(v.shape == (512,) for v in vectors)
        assert len({v.tobytes() for v in vectors}) == len(vectors)  # crops differ
        run_operator("compute_knn_disagreement", patches, k=5)
        run_operator("compute_noise_score", patches)
        noisy, score = ds.to_patches("ground_truth").values(
            ["ground_truth.is_noisy", "ground_truth.noise_score"])
        from methods.consensus import auroc as _auroc

        auroc = _auroc(np.array(noisy), np.array(score, float))
        print("pipeline AUROC on crops, random weights: %.3f" % auroc)
        assert np.isfinite(auroc)
        # the same from a sample view with patches_field
        run_operator("compute_embeddings", ds, model="resnet18", weights="",
                     patches_field="ground_truth", embeddings_field="emb2")
        assert ds.count("ground_truth.detections.emb2") == len(patches)
    finally:
        for name in list(fo.list_datasets()):
            if name.startswith("objects-"):
                fo.delete_dataset(name)


def test_object_auroc_equals_image_auroc_on_same_labels(new_dataset):
    """Pasted CIFAR-10N objects (shipped subset, shared embeddings as object
    embeddings) vs the same images as samples: same consensus AUROC."""
    from make_detection_dataset import load_objects
    from synthetic import insert_labeled_samples
    from methods.consensus import auroc as _auroc

    objects_ds = load_objects("objects-" + new_dataset().name, DEMO_OBJECTS, label_column="worst")
    try:
        patches = objects_ds.to_patches("ground_truth")
        index, noisy, clean = patches.values(
            ["ground_truth.source_index", "ground_truth.label", "ground_truth.clean_label"])
        x = np.stack(patches.values("ground_truth.embeddings"))
        images = new_dataset()
        insert_labeled_samples(images, ["/c/%05d.jpg" % i for i in index],
                               {"ground_truth": noisy}, x)
        truth = np.array([a != b for a, b in zip(noisy, clean)])
        for target in (images, patches):
            run_operator("compute_knn_disagreement", target, k=10)
            run_operator("compute_noise_score", target)
        image_auroc = _auroc(truth, np.array(images.values("noise_score"), float))
        object_auroc = _auroc(truth, np.array(
            objects_ds.to_patches("ground_truth").values("ground_truth.noise_score"), float))
        print("image %.4f object %.4f" % (image_auroc, object_auroc))
        assert abs(object_auroc - image_auroc) < 0.01
        assert object_auroc > 0.75
    finally:
        objects_ds.delete()
