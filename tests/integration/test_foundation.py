"""The shared plumbing, through real operators on the private database."""

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import PLUGIN, operator, run_delegated, run_operator, snapshot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_plugin_discovered_in_subprocess_and_matches_fiftyone_yml():
    manifest = yaml.safe_load(open(os.path.join(REPO, "fiftyone.yml")))
    assert manifest["name"] == PLUGIN
    for key in ("version", "description", "url", "license"):
        assert manifest.get(key), key
    assert manifest["fiftyone"]["version"]
    cli = [os.path.join(os.path.dirname(sys.executable), "fiftyone"), "operators", "list"]
    out = subprocess.run(
        cli + ["--include-unlisted"], capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )
    if out.returncode == 2 and "--include-unlisted" in out.stderr:
        # FiftyOne 1.10 has no such flag: its list always includes unlisted
        # operators (the panel)
        out = subprocess.run(cli, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert out.returncode == 0, out.stderr
    listed = {u.split("/")[-1] for u in out.stdout.split() if u.startswith(PLUGIN + "/")}
    assert listed == set(manifest["operators"]) | set(manifest.get("panels") or [])


def test_registered_classes_match_manifest():
    manifest = yaml.safe_load(open(os.path.join(REPO, "fiftyone.yml")))
    import fiftyone.operators as foo

    uris = {op.uri for op in foo.list_operators(enabled=True) if op.plugin_name == PLUGIN}
    names = {u.split("/")[-1] for u in uris}
    assert names == set(manifest["operators"]) | set(manifest.get("panels") or [])


def test_the_registry_and_the_detector_operators_agree():
    """Each registry record names a registered detector operator that takes
    its facts from that record, and each detector operator feeding the
    consensus has a record (the consensus and the issue types are not
    consensus inputs)."""
    from conftest import plugin_module

    registry = plugin_module("store.registry")
    for key, detector in registry.DETECTORS.items():
        op = operator(detector.operator)
        assert op.detector is detector, key
        assert (op.name, op.method, op.output_field) == (
            detector.operator, detector.method, detector.output_field)
        assert registry.by_method(op.method) is detector
    base = plugin_module("operators.base")
    import fiftyone.operators as foo

    detectors = {op.name for op in foo.list_operators(enabled=True)
                 if op.plugin_name == PLUGIN and isinstance(op, base.DetectorOperator)}
    recorded = {d.operator for d in registry.DETECTORS.values()}
    assert detectors - recorded == {"compute_noise_score", "compute_label_issue_types"}


def test_plugin_import_does_not_load_heavy_libraries():
    code = (
        "import importlib.util, sys\n"
        "import fiftyone.operators\n"
        "already = set(sys.modules)\n"
        "spec = importlib.util.spec_from_file_location('lnplugin', %r, "
        "submodule_search_locations=[%r])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['lnplugin'] = m\n"
        "spec.loader.exec_module(m)\n"
        "heavy = [n for n in ('torch', 'sklearn', 'faiss', 'torchvision') "
        "if n in sys.modules and n not in already]\n"
        "print(heavy); assert not heavy, heavy\n"
    ) % (os.path.join(REPO, "__init__.py"), REPO)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_knn_with_documented_defaults_only(blob_dataset):
    ds = blob_dataset(noise_rate=0.15)
    summary = run_operator("compute_knn_disagreement", ds)
    assert summary["num_samples"] == len(ds)
    scores = np.array(ds.values("knn_disagreement"))
    noisy = np.array(ds.values("is_noisy"))
    assert scores[noisy].mean() > scores[~noisy].mean() + 0.3
    info = ds.get_run_info("knn_disagreement")
    assert info.config.method == "knn_disagreement"
    assert info.config.plugin == PLUGIN
    assert info.config.params["k"] == 10
    assert set(info.config.fields) == {"knn_disagreement", "knn_label"}
    suggestion = ds.first()["knn_label"]
    assert suggestion.label.startswith("class_") and 0 <= suggestion.confidence <= 1


def test_sdk_call_on_a_view_writes_only_that_view(blob_dataset):
    ds = blob_dataset()
    view = ds.take(100, seed=1)
    result = operator("compute_knn_disagreement")(view, k=5, tag="knn:noisy", threshold=0.5)
    assert result["num_samples"] == 100
    assert ds.count("knn_disagreement") == 100
    assert len(ds.match_tags("knn:noisy")) == result["num_flagged"]
    assert set(ds.match_tags("knn:noisy").values("id")) <= set(view.values("id"))
    with pytest.raises(TypeError, match="unknown parameter"):
        operator("compute_knn_disagreement")(view, kk=5)


def test_rerun_same_key_replaces_and_delete_run_removes_fields(blob_dataset):
    ds = blob_dataset()
    run_operator("compute_knn_disagreement", ds, k=3, output_field="score_a", run_key="knn")
    run_operator("compute_knn_disagreement", ds, k=4, output_field="score_b", run_key="knn")
    assert ds.list_runs().count("knn") == 1
    assert ds.get_run_info("knn").config.params["k"] == 4
    assert not ds.has_field("score_a") and ds.has_field("score_b")
    ds.rename_run("knn", "knn_renamed")
    out = operator("delete_run")(ds, run_key="knn_renamed")
    assert set(out["deleted_fields"]) == {"score_b", "knn_label"}
    assert not ds.has_field("score_b") and "knn_renamed" not in ds.list_runs()
    assert ds.has_field("ground_truth")


def test_delegated_run_completes(blob_dataset):
    ds = blob_dataset()
    doc = run_delegated("compute_knn_disagreement", ds, k=5, output_field="knn5", run_key="knn5")
    assert doc.run_state == "completed", doc.result
    assert ds.count("knn5") == len(ds)


@pytest.mark.parametrize(
    "mutate, params, message",
    [
        (None, {"label_field": "groundtruth"}, "'groundtruth' does not exist"),
        (None, {"label_field": "is_noisy"}, "not an fo.Classification"),
        (None, {"embeddings_field": "emb"}, "Embeddings field 'emb' does not exist"),
        ("no_embedding", {}, "have no embedding in 'embeddings'"),
        ("nan", {}, "NaN or inf"),
        ("ragged", {}, "different lengths"),
        ("one_class", {}, "needs at least 2"),
        ("detections", {"label_field": "dets"}, "holds fo.Detections"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(blob_dataset, mutate, params, message):
    import fiftyone as fo

    ds = blob_dataset(num_classes=3, per_class=10)
    sample = ds.first()
    if mutate == "no_embedding":
        sample["embeddings"] = None
    elif mutate == "nan":
        sample["embeddings"] = np.full(16, np.nan)
    elif mutate == "ragged":
        sample["embeddings"] = np.ones(8)
    elif mutate == "detections":
        sample["dets"] = fo.Detections(detections=[fo.Detection(label="a")])
    elif mutate == "one_class":
        ds.set_values("ground_truth", [fo.Classification(label="x")] * len(ds))
    sample.save()
    before = snapshot(ds)
    with pytest.raises(Exception, match=message):
        run_operator("compute_knn_disagreement", ds, **params)
    assert snapshot(ds) == before


def test_samples_without_label_are_skipped_and_counted(blob_dataset):
    ds = blob_dataset(num_classes=3, per_class=10)
    for sample in ds.limit(4):
        sample["ground_truth"] = None
        sample.save()
    summary = run_operator("compute_knn_disagreement", ds, k=3)
    assert summary["num_samples"] == len(ds) - 4
    assert summary["skipped"] == {"no label in 'ground_truth'": 4}
    assert ds.count("knn_disagreement") == len(ds) - 4


def test_compute_embeddings_on_images_with_an_unreadable_one(blob_dataset, tmp_path):
    import fiftyone as fo

    ds = blob_dataset(num_classes=2, per_class=3)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    ds.add_sample(fo.Sample(filepath=str(broken), ground_truth=fo.Classification(label="class_0")))
    out = operator("compute_embeddings")(
        ds, model="resnet18", weights="", embeddings_field="resnet", batch_size=4
    )
    assert out["num_embedded"] == 6 and out["num_unreadable"] == 1
    assert out["dim"] == 512
    assert ds.count("resnet") == 6
    assert ds.match_tags("embeddings:unreadable").values("filepath") == [str(broken)]
    vectors = np.stack(ds.exists("resnet").values("resnet"))
    assert vectors.shape == (6, 512) and np.isfinite(vectors).all()


def test_knn_on_shipped_demo_data_beats_chance_clearly(new_dataset):
    sys.path.insert(0, REPO)
    from demo.datasets import load_cifar10n
    from sklearn.metrics import roc_auc_score

    ds = load_cifar10n("demo-knn-test")
    try:
        run_operator("compute_knn_disagreement", ds)
        auroc = roc_auc_score(ds.values("is_noisy"), ds.values("knn_disagreement"))
        assert auroc >= 0.75, auroc
    finally:
        ds.delete()


def _data_module():
    """store/data.py as FiftyOne loaded it with the plugin."""
    from conftest import plugin_module

    return plugin_module("store.data")


def test_batched_reads_equal_one_read_and_count_every_bad_sample(blob_dataset):
    data = _data_module()
    ds = blob_dataset(num_classes=3, per_class=10)
    for sample in ds.skip(3).limit(5):
        sample["ground_truth"] = None
        sample.save()
    keep = lambda row: row["ground_truth.label"] is not None  # noqa: E731
    paths = ["id", "ground_truth.label"]
    whole, x_whole = data.read_columns(ds, paths, "embeddings", keep, batch_size=10**6)
    batched, x_batched = data.read_columns(ds, paths, "embeddings", keep, batch_size=7)
    assert batched == whole and whole["_num_read"] == len(ds) and len(whole["id"]) == len(ds) - 5
    np.testing.assert_array_equal(x_batched, x_whole)
    assert x_whole.shape == (len(ds) - 5, 16)

    # NaN rows in different batches: the error counts all of them
    for sample in ds.exists("ground_truth").skip(1).limit(2):
        sample["embeddings"] = np.full(16, np.nan)
        sample.save()
    last = ds.exists("ground_truth").last()
    last["embeddings"] = np.full(16, np.inf)
    last.save()
    with pytest.raises(data.InputError, match="3 embeddings in 'embeddings' contain NaN or inf"):
        data.read_columns(ds, paths, "embeddings", keep, batch_size=7)
