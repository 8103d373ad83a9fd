"""Dupes through the real operators: compute, both review paths, export, revert."""

import json
import os

import numpy as np
import pytest

from conftest import operator, run_delegated, run_operator

# unsafe class names on purpose: spaces, unicode, "/", ".."
NAMES = ["sea lion", "café ☕", "a/b", ".."]
FAST = dict(rounds=4, threshold=3)


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _labels(ds):
    return dict(zip(ds.values("id"), ds.values("ground_truth.label")))


def test_compute_dupes_operator(blob_dataset):
    ds = blob_dataset(noise_rate=0.15, per_class=40)
    summary = run_operator("compute_dupes", ds, tag="dupe", **FAST)
    assert summary["num_samples"] == len(ds)
    count = np.array(ds.values("dupe_count"))
    flag = np.array(ds.values("is_dupe"))
    noisy = np.array(ds.values("is_noisy"))
    assert count.dtype.kind == "i" and count.min() >= 0 and count.max() <= 4
    # flipped labels on separated blobs: the flag is far better than chance
    assert flag[noisy].mean() > 0.7 and flag[~noisy].mean() < 0.1
    assert summary["num_flagged"] == int(flag.sum()) == ds.count_sample_tags()["dupe"]
    labels = ds.values("dupe_label")
    gt = ds.values("ground_truth.label")
    for c, l, g in zip(count, labels, gt):
        assert (l is None) == (c == 0)
        assert l is None or (isinstance(l, str) and l != g)
    # the dupe label recovers the true class of the flagged noisy samples
    true = np.array(ds.values("clean_label.label"))
    hit = np.array([l == t for l, t in zip(labels, true)])
    assert hit[flag & noisy].mean() > 0.9
    config = ds.get_run_info("dupes").config
    assert config.method == "dupes" and config.params["rounds"] == 4
    assert set(config.fields) == {"dupe_count", "dupe_label", "is_dupe"}
    assert ds.get_field("dupe_count").__class__.__name__ == "IntField"


def test_directory_review_ignore_list_and_safe_names(blob_dataset, tmp_path):
    ds = blob_dataset(noise_rate=0.15, per_class=40, class_names=NAMES)
    before_labels = _labels(ds)
    run_operator("compute_dupes", ds, **FAST)
    dupes_ids = [i for i, f in zip(ds.values("id"), ds.values("is_dupe")) if f]
    assert len(dupes_ids) >= 6

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("keep me")
    review = tmp_path / "review"
    out = operator("export_dupes")(ds, dir=str(review))
    assert out["num_exported"] == len(dupes_ids)
    # only the review folder was written: nothing next to it but our sentinel
    assert sorted(os.listdir(tmp_path)) == sorted(
        [n for n in os.listdir(tmp_path) if n.startswith("img_")] + ["outside", "review"]
    )
    assert os.listdir(outside) == ["sentinel.txt"]
    manifest = json.load(open(review / "dupes_manifest.json", encoding="utf-8"))
    before = (review / "before.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert sorted(before) == sorted(manifest["files"]) and len(before) == len(dupes_ids)
    folders = sorted(p.name for p in review.iterdir() if p.is_dir())
    assert folders == sorted(["sea lion", "café ☕", "a%2Fb", "%2E%2E"])
    for rel, entry in manifest["files"].items():
        folder, name = rel.split("/")
        assert manifest["classes"][folder] == entry["label"]
        assert name.endswith(os.path.basename(entry["source"]))
        assert name.startswith("%s_%d_" % (
            {"a/b": "a%2Fb", "..": "%2E%2E"}.get(entry["dupe_label"], entry["dupe_label"]),
            entry["dupe_count"],
        ))
        assert (review / folder / name).is_file()

    # a non-empty folder is refused; overwrite replaces only our own files
    with pytest.raises(Exception, match="not empty"):
        operator("export_dupes")(ds, dir=str(review))
    operator("export_dupes")(ds, dir=str(review), overwrite=True)

    # the technician deletes the files whose label is right (half of them)
    rels = sorted(manifest["files"])
    deleted, kept = rels[::2], rels[1::2]
    for rel in deleted:
        os.remove(review / rel)
    summary = operator("import_dupes_review")(ds, dir=str(review))
    assert summary["num_relabeled"] == len(kept)
    assert summary["num_confirmed"] == len(deleted)
    after = (review / "after.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert sorted(after) == kept

    labels = _labels(ds)
    for rel in kept:
        e = manifest["files"][rel]
        sample = ds[e["id"]]
        assert sample.ground_truth.label == e["dupe_label"]
        assert sample.ground_truth_original.label == e["label"] == before_labels[e["id"]]
        assert sample.ground_truth_correction.source == "dupes"
        assert sample.ground_truth_correction.previous == e["label"]
        assert sample.is_dupe is False
    for rel in deleted:
        e = manifest["files"][rel]
        assert labels[e["id"]] == e["label"]
        assert ds[e["id"]].dupes_ignore is True
    untouched = set(before_labels) - {e["id"] for e in manifest["files"].values()}
    assert all(labels[i] == before_labels[i] for i in untouched)

    # second run: the confirmed samples keep their counts but are never flagged
    run_operator("compute_dupes", ds, **FAST)
    confirmed = [manifest["files"][rel]["id"] for rel in deleted]
    view = ds.select(confirmed)
    assert not any(view.values("is_dupe"))
    assert max(view.values("dupe_count")) >= 3
    assert ds.get_run_info("dupes").config.num_ignored == len(deleted)

    # revert: every relabeled sample gets its original label back
    reverted = operator("revert_dupes_review")(ds)
    assert reverted["num_reverted"] == len(kept)
    assert _labels(ds) == before_labels
    assert not ds.exists("ground_truth_correction")
    assert not ds.exists("ground_truth_original")
    assert reverted["num_unignored"] == len(deleted)
    assert os.listdir(outside) == ["sentinel.txt"]


def test_in_app_review_confirmation_and_revert(blob_dataset):
    ds = blob_dataset(noise_rate=0.15, per_class=40, class_names=NAMES)
    before_labels = _labels(ds)
    run_operator("compute_dupes", ds, **FAST)
    ids = [i for i, f in zip(ds.values("id"), ds.values("is_dupe")) if f]
    relabel, keep = ids[: len(ids) // 2], ids[len(ids) // 2:]
    ds.select(relabel).tag_samples("dupes:relabel")
    ds.select(keep).tag_samples("dupes:keep")
    dupe_label = dict(zip(ds.values("id"), ds.values("dupe_label")))

    # the App form needs the confirmation; confirm=False refuses and writes nothing
    with pytest.raises(Exception):
        run_operator("apply_dupes_review", ds, confirm=False)
    with pytest.raises(Exception) as refused:
        operator("apply_dupes_review")(ds, confirm=False)
    assert not isinstance(refused.value, TypeError)  # accepted name, refused run
    assert _labels(ds) == before_labels
    form = operator("apply_dupes_review").resolve_input(_ctx(ds, {"confirm": False}))
    assert "confirm" in form.type.properties
    assert form.type.properties["confirm_needed"].invalid

    summary = operator("apply_dupes_review")(ds)  # SDK: runs without confirm
    assert summary["num_relabeled"] == len(relabel)
    assert summary["num_confirmed"] == len(keep)
    labels = _labels(ds)
    assert all(labels[i] == dupe_label[i] for i in relabel)
    assert all(labels[i] == before_labels[i] for i in keep)
    assert all(ds.select(keep).values("dupes_ignore"))
    assert ds.count_sample_tags() == {}

    # a second correction keeps the TRUE original
    from store.corrections import apply_corrections, revert_corrections

    first = relabel[0]
    other = next(n for n in NAMES if n not in (before_labels[first], labels[first]))
    apply_corrections(ds, [first], [other], "ground_truth", source="manual")
    s = ds[first]
    assert s.ground_truth.label == other
    assert s.ground_truth_original.label == before_labels[first]
    assert s.ground_truth_correction.count == 2
    assert s.ground_truth_correction.previous == labels[first]

    # revert one sample, then the rest of the dupes corrections
    assert revert_corrections(ds, "ground_truth", ids=[first])["num_reverted"] == 1
    assert ds[first].ground_truth.label == before_labels[first]
    out = operator("revert_dupes_review")(ds, clear_ignore_list=False, confirm=True)
    assert out["num_reverted"] == len(relabel) - 1
    assert _labels(ds) == before_labels
    assert all(ds.select(keep).values("dupes_ignore"))


def test_export_corrected_both_modes(blob_dataset, tmp_path):
    ds = blob_dataset(noise_rate=0.15, per_class=20, class_names=NAMES)
    run_operator("compute_dupes", ds, **FAST)
    ids = [i for i, f in zip(ds.values("id"), ds.values("is_dupe")) if f]
    ds.select(ids[:3]).tag_samples("dupes:relabel")
    operator("apply_dupes_review")(ds)
    labels = _labels(ds)

    out = operator("export_dupes_corrected")(ds, dir=str(tmp_path / "fixed"))
    assert out["num_exported"] == len(ds)
    index = json.load(open(tmp_path / "fixed" / "labels.json", encoding="utf-8"))
    for row in index["files"]:
        folder = row["file"].split("/")[0]
        assert index["classes"][folder] == row["label"] == labels[row["id"]]
        assert (tmp_path / "fixed" / row["file"]).is_file()
    assert sorted(os.listdir(tmp_path / "fixed")) == sorted(
        ["labels.json", "sea lion", "café ☕", "a%2Fb", "%2E%2E"]
    )

    out = operator("export_dupes_corrected")(ds, dir=str(tmp_path / "clean"), mode="expunge")
    still_flagged = len(ids) - 3
    assert out["num_expunged"] == 3 + still_flagged
    assert out["num_exported"] == len(ds) - out["num_expunged"]
    index = json.load(open(tmp_path / "clean" / "labels.json", encoding="utf-8"))
    assert not {r["id"] for r in index["files"]} & set(ids)
    with pytest.raises(Exception, match="not empty"):
        operator("export_dupes_corrected")(ds, dir=str(tmp_path / "clean"))

    # delegated (queued, then run by the delegated-operations service)
    doc = run_delegated("export_dupes", ds, dir=str(tmp_path / "queued"))
    assert doc.run_state == "completed", doc.result
    assert (tmp_path / "queued" / "before.txt").is_file()


def _ctx(ds, params):
    from fiftyone.operators.executor import ExecutionContext

    return ExecutionContext(
        request_params={"dataset_name": ds.name, "params": params}
    )


def test_beats_chance_on_demo_cifar10n(new_dataset):
    import sys

    from sklearn.metrics import roc_auc_score

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, repo)
    from demo.datasets import load_cifar10n

    name = new_dataset().name  # a unique name, deleted after the test
    ds = load_cifar10n(name)  # 3,000 images, CIFAR-10N worst labels (~40% noise)
    summary = run_operator("compute_dupes", ds, rounds=4, threshold=4)
    noisy = np.array(ds.values("is_noisy"))
    count = np.array(ds.values("dupe_count"))
    flag = np.array(ds.values("is_dupe"))
    # chance is AUROC 0.5 and precision = noise rate (~0.4)
    assert roc_auc_score(noisy, count) > 0.72
    assert noisy[flag].mean() > noisy.mean() + 0.2  # measured 0.71 vs 0.41
    assert summary["num_flagged"] == flag.sum()
