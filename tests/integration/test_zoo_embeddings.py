"""compute_embeddings through FiftyOne's model zoo and its own embedding path.

No weights can be downloaded here, so ``tests/zoo/manifest.json`` registers
test models (FiftyOne reads extra manifests from
``fo.config.model_zoo_manifest_paths``) whose entrypoint builds a torchvision
resnet18 with seeded random weights: the operator loads them by name with
``foz.load_zoo_model`` and FiftyOne's ``compute_embeddings`` /
``compute_patch_embeddings`` compute the vectors, which must equal what those
FiftyOne calls give directly.
"""

import os

import numpy as np
import pytest

from conftest import operator, run_delegated, run_operator, snapshot

ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
MODEL = "label-noise-test-resnet18-torch"


@pytest.fixture
def zoo(monkeypatch, tmp_path):
    """The test manifest registered, a private model zoo dir."""
    import fiftyone as fo
    import fiftyone.zoo as foz

    monkeypatch.syspath_prepend(ZOO_DIR)  # the manifest's entrypoint module
    monkeypatch.setattr(fo.config, "model_zoo_manifest_paths", [os.path.join(ZOO_DIR, "manifest.json")])
    monkeypatch.setattr(fo.config, "model_zoo_dir", str(tmp_path / "zoo-models"))
    return lambda name=MODEL: foz.load_zoo_model(name)


def _images(new_dataset, tmp_path, n=7, broken=True, boxes=False):
    """n small random PNGs (+ a corrupt and a missing file); with ``boxes``,
    two fo.Detections per image."""
    import fiftyone as fo
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = tmp_path / ("img_%d.png" % i)
        Image.fromarray(rng.integers(0, 255, (40 + 4 * i, 48, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    if broken:
        corrupt = tmp_path / "corrupt.jpg"
        corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
        paths += [str(corrupt), str(tmp_path / "missing.png")]
    ds = new_dataset()
    samples = []
    for i, path in enumerate(paths):
        sample = fo.Sample(filepath=path, ground_truth=fo.Classification(label="ab"[i % 2]))
        if boxes:
            sample["objects"] = fo.Detections(detections=[
                fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.4, 0.5]),
                fo.Detection(label="b", bounding_box=[0.5, 0.3, 0.45, 0.6]),
            ])
        samples.append(sample)
    ds.add_samples(samples)
    return ds, paths


def test_images_through_the_zoo_equal_fiftyones_own_embeddings(zoo, new_dataset, tmp_path):
    ds, paths = _images(new_dataset, tmp_path)
    summary = run_operator("compute_embeddings", ds, model=MODEL, batch_size=4)
    assert summary["model"] == MODEL
    import torch

    assert summary["device"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    assert summary["num_embedded"] == 7 and summary["num_unreadable"] == 2, summary
    assert summary["dim"] == 512
    # each unreadable image named with its own error; its batch-mates embedded
    assert sorted(m.split(":")[0] for m in summary["unreadable"]) == sorted(paths[7:])
    assert set(ds.match_tags("embeddings:unreadable").values("filepath")) == set(paths[7:])

    readable = ds.select(ds.values("id")[:7])
    expected = readable.compute_embeddings(zoo(), batch_size=4)
    got = np.stack(readable.values("embeddings"))
    assert got.shape == (7, 512)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert len({v.tobytes() for v in got}) == 7


def test_objects_through_the_zoo_equal_fiftyones_patch_embeddings(zoo, new_dataset, tmp_path):
    import fiftyone as fo

    ds, paths = _images(new_dataset, tmp_path, n=4, boxes=True)
    patches = ds.to_patches("objects")
    summary = run_operator("compute_embeddings", patches, model=MODEL, patch_margin=0.1)
    assert summary["num_embedded"] == 8 and summary["num_unreadable"] == 4, summary
    assert summary["fields"] == ["objects.detections.embeddings"]
    assert isinstance(ds.get_field("objects.detections.embeddings"), fo.VectorField)
    tagged = ds.to_patches("objects").match_labels(tags="embeddings:unreadable")
    assert sorted(set(tagged.values("filepath"))) == sorted(paths[4:])

    readable = ds.select(ds.values("id")[:4])
    expected = readable.compute_patch_embeddings(zoo(), "objects", alpha=0.2)
    got = readable.values("objects.detections.embeddings")
    for sid, vectors in zip(readable.values("id"), got):
        np.testing.assert_allclose(np.stack(vectors), expected[sid], rtol=1e-5, atol=1e-5)

    # the same from the sample view (patches_field), each image decoded once
    summary = run_operator("compute_embeddings", ds, model=MODEL, patches_field="objects",
                           embeddings_field="emb2", patch_margin=0.1)
    assert summary["num_embedded"] == 8
    np.testing.assert_allclose(
        np.stack(readable.values("objects.detections.emb2", unwind=True)),
        np.stack(readable.values("objects.detections.embeddings", unwind=True)),
        rtol=1e-5, atol=1e-5,
    )


def test_model_object_from_python_and_delegated_by_name(zoo, new_dataset, tmp_path):
    ds, _ = _images(new_dataset, tmp_path, n=3, broken=False)
    model = zoo()
    summary = operator("compute_embeddings")(ds, model=model, embeddings_field="obj")
    assert run_operator("compute_embeddings", ds, model=MODEL, device="cpu",
                        embeddings_field="on_cpu")["device"] == "cpu"
    assert summary["num_embedded"] == 3 and summary["model"] == "TorchImageModel"
    with pytest.raises(ValueError, match="cannot be delegated"):
        operator("compute_embeddings")(ds, model=model, delegate=True)

    doc = run_delegated("compute_embeddings", ds, model=MODEL, embeddings_field="deleg")
    assert doc.run_state == "completed", getattr(doc.run_state, "result", doc)
    np.testing.assert_allclose(np.stack(ds.values("deleg")), np.stack(ds.values("obj")), atol=1e-5)


@pytest.mark.parametrize(
    "params, mentions",
    [
        (dict(model="no-such-model-torch"), ["not a FiftyOne zoo model", "list_zoo_models"]),
        (dict(model="label-noise-test-classifier-torch"), ["does not expose embeddings"]),
        (dict(model="label-noise-test-offline-torch"), ["not downloaded", "state_dict"]),
        (dict(model=MODEL, weights="/tmp/x.pth"), ["torchvision backbones", "model_zoo_dir"]),
        (dict(model="resnet18", weights="/no/such/file.pth"), ["is not a file"]),
    ],
)
def test_bad_model_fails_clearly_and_writes_nothing(zoo, new_dataset, tmp_path, params, mentions):
    from fiftyone.operators.executor import ExecutionError

    ds, _ = _images(new_dataset, tmp_path, n=2, broken=False)
    before = snapshot(ds)
    with pytest.raises(ExecutionError) as info:
        run_operator("compute_embeddings", ds, **params)
    message = str(info.value).strip().splitlines()[-1]
    assert "InputError" in message and all(m in message for m in mentions), message
    assert snapshot(ds) == before


def test_old_backbone_names_are_zoo_aliases_or_local_weights(zoo, new_dataset, tmp_path, monkeypatch):
    """resnet18/resnet50 with weights="DEFAULT" load the zoo's ImageNet
    ResNets by their zoo names; a local state_dict (offline) runs the
    torchvision network through the same FiftyOne path."""
    import torch
    import torchvision
    import fiftyone.zoo as foz

    ds, _ = _images(new_dataset, tmp_path, n=3, broken=False)
    loaded = []
    real = foz.load_zoo_model
    monkeypatch.setattr(foz, "load_zoo_model", lambda name, **kw: loaded.append(name) or real(MODEL))
    for old in ("resnet18", "resnet50"):
        run_operator("compute_embeddings", ds, model=old, embeddings_field="alias_" + old)
    assert loaded == ["resnet18-imagenet-torch", "resnet50-imagenet-torch"]

    torch.manual_seed(0)
    state = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), state)
    # weights without a model name: resnet18, the former default
    summary = operator("compute_embeddings")(ds, weights=str(state), embeddings_field="local",
                                             device="cpu")
    assert summary["num_embedded"] == 3 and summary["dim"] == 512 and summary["device"] == "cpu"
    assert summary["model"].startswith("resnet18 (torchvision")


def test_find_label_issues_computes_missing_embeddings_with_a_zoo_model(zoo, new_dataset, tmp_path):
    ds, _ = _images(new_dataset, tmp_path, n=12, broken=False)
    summary = operator("find_label_issues")(ds, model=MODEL, detectors="knn_disagreement",
                                            embeddings_field="zoo_emb")
    assert [s["step"] for s in summary["steps"]][:2] == [
        "compute_embeddings", "compute_knn_disagreement"]
    assert ds.count("zoo_emb") == 12 and ds.count("knn_disagreement") == 12
    expected = ds.compute_embeddings(zoo())
    np.testing.assert_allclose(np.stack(ds.values("zoo_emb")), expected, rtol=1e-5, atol=1e-5)


def test_fiftyone_progress_is_forwarded_and_throttled():
    """FiftyOne's progress bar -> ctx.set_progress at most once per interval,
    the last report always."""
    import sys
    from types import SimpleNamespace

    module = sys.modules[type(operator("compute_embeddings")).__module__]
    reports = []
    callback = module.fiftyone_progress(lambda f, m: reports.append((f, m)), "embedding", every_s=3600)
    for i in range(1, 101):
        callback(SimpleNamespace(iteration=i, total=100))
    assert reports == [(0.01, "embedding 1/100"), (1.0, "embedding 100/100")]
