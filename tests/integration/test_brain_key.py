"""Embeddings from a FiftyOne similarity index (``brain_key``) instead of a field.

FiftyOne's ``sklearn`` similarity backend (it keeps the vectors in the run
results) on samples and on the objects of a patches view; every read goes
through the backend-neutral ``SimilarityIndex.get_embeddings``.
"""

import os
import sys

import numpy as np
import pytest

from conftest import run_operator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_objects import objects  # noqa: E402,F401  (fixture)


def _index(collection, brain_key, **kwargs):
    import fiftyone.brain as fob

    fob.compute_similarity(collection, backend="sklearn", brain_key=brain_key,
                           progress=False, **kwargs)


def test_detectors_read_a_similarity_index_like_the_field(blob_dataset):
    ds = blob_dataset()
    _index(ds, "sim", embeddings="embeddings")
    by_field = run_operator("compute_knn_disagreement", ds, run_key="a", output_field="a")
    # the index alone: a field that does not exist is never read
    by_index = run_operator("compute_knn_disagreement", ds, brain_key="sim",
                            embeddings_field="no_such_field", run_key="b", output_field="b")
    assert by_index["num_flagged"] == by_field["num_flagged"]
    assert np.allclose(ds.values("a"), ds.values("b"))
    assert ds.get_run_info("b").config.params["brain_key"] == "sim"
    # the form offers the dataset's similarity indexes
    from conftest import plugin_module

    field_choices = plugin_module("operators.forms").field_choices

    assert field_choices(ds, "similarity") == ["sim"]


def test_find_label_issues_with_brain_key(blob_dataset):
    ds = blob_dataset()
    _index(ds, "sim", embeddings="embeddings")
    ds.clone_sample_field("embeddings", "kept")
    ds.delete_sample_field("embeddings")  # only the index holds the vectors now
    summary = run_operator("find_label_issues", ds, brain_key="sim", embeddings_field="missing")
    assert summary["steps"][-2]["step"] == "compute_noise_score"
    assert len(summary["steps"]) == 6 and summary["num_flagged"] > 0
    assert ds.count("label_quality") == len(ds)


def test_brain_key_errors_name_the_key_and_the_fix(blob_dataset):
    ds = blob_dataset()
    with pytest.raises(Exception, match=r"Brain key 'nope' does not exist.*compute_similarity"):
        run_operator("compute_knn_disagreement", ds, brain_key="nope")
    # an index of other samples (vectors held by the index: an index built
    # from a field re-reads the field of every sample): names how many are
    # missing, writes nothing
    part = ds.take(50, seed=1)
    _index(part, "part", embeddings=np.array(part.values("embeddings")))
    with pytest.raises(Exception, match=r"no embedding for %d of the %d samples" % (len(ds) - 50, len(ds))):
        run_operator("compute_knn_disagreement", ds, brain_key="part")
    assert not ds.has_field("knn_disagreement")
    with pytest.raises(Exception, match=r"Brain key 'nope' does not exist"):
        run_operator("find_label_issues", ds, brain_key="nope")
    assert "consensus" not in ds.list_runs()
    # ...but on the indexed samples only, it works
    view = ds.select(ds.load_brain_results("part").sample_ids)
    run_operator("compute_knn_disagreement", view, brain_key="part")
    assert ds.count("knn_disagreement") == 50


def test_patches_view_reads_an_object_index(objects):  # noqa: F811
    ds = objects(num_images=30)
    patches = ds.to_patches("ground_truth")
    _index(ds, "objects_sim", patches_field="ground_truth", embeddings="embeddings")
    _index(ds, "images_sim", embeddings=np.random.default_rng(0).normal(size=(len(ds), 8)))
    run_operator("compute_label_quality", patches, brain_key="objects_sim",
                 embeddings_field="missing", run_key="idx", output_field="q_index")
    run_operator("compute_label_quality", patches, run_key="fld", output_field="q_field")
    a, b = patches.values(["ground_truth.q_index", "ground_truth.q_field"])
    assert np.allclose(a, b, atol=1e-5)
    from conftest import plugin_module

    field_choices = plugin_module("operators.forms").field_choices

    assert field_choices(patches, "similarity") == ["objects_sim"]  # not the image index
    with pytest.raises(Exception, match=r"indexes samples, but the target is the objects of 'ground_truth'"):
        run_operator("compute_knn_disagreement", patches, brain_key="images_sim")
    # an object index missing some objects
    some = ds.limit(10)  # the objects of 10 of the 30 images
    sample_ids, per_image = some.values(["id", "ground_truth.detections.embeddings"])
    vectors = {i: np.array(v) for i, v in zip(sample_ids, per_image)}
    _index(some, "some_objects", patches_field="ground_truth", embeddings=vectors)
    with pytest.raises(Exception, match=r"no embedding for %d of the %d objects"
                       % (len(patches) - some.count("ground_truth.detections"), len(patches))):
        run_operator("compute_knn_disagreement", patches, brain_key="some_objects")



def test_every_operator_declares_each_parameter_once():
    """``brain_key`` (embeddings from an index) and ``device`` are common
    parameters: no operator may declare one of them again with another
    meaning (Training-ValueNet's 2-D map is ``map_brain_key``)."""
    import fiftyone.operators as foo

    ops = [o for o in foo.list_operators() if o.uri.startswith("@label-noise/curation/")]
    assert len(ops) > 10
    for op in ops:
        names = [p.name for p in getattr(op, "params", ())]
        assert len(names) == len(set(names)), (op.uri, names)
        if "embeddings_field" in names and op.name != "compute_embeddings":
            assert "brain_key" in names, op.uri
    torch_ops = ("compute_dupes", "compute_scan_clusters", "compute_corrected_labels",
                 "compute_training_value", "compute_cleannet_similarity", "compute_label_quality")
    for op in ops:
        if op.name in torch_ops:
            assert "device" in [p.name for p in op.params], op.uri
