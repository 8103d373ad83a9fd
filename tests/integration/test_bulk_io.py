"""The bulk read and write paths under every detector, against FiftyOne's own
``values()`` / ``set_values()`` on a real database: same values, every
storage of a vector, the write touching only the samples asked for."""

import numpy as np
import pytest

from store import bulk
from store.data import InputError


def _dataset(new_dataset, n=40, dim=8, seed=0):
    import fiftyone as fo

    rng = np.random.default_rng(seed)
    ds = new_dataset()
    ds.add_samples([
        fo.Sample(
            filepath="/tmp/bulk_%d.png" % i,
            ground_truth=fo.Classification(label="c%d" % (i % 3)) if i % 7 else None,
            embeddings=rng.normal(size=dim).astype(np.float32),
            emb64=rng.normal(size=dim),  # float64 array
            emb_list=rng.normal(size=dim).tolist(),  # a list of floats
        )
        for i in range(n)
    ])
    return ds


@pytest.mark.parametrize("field", ["embeddings", "emb64", "emb_list"])
def test_read_matches_values_for_every_vector_storage(new_dataset, field):
    ds = _dataset(new_dataset)
    view = ds.match_tags("none", bool=False).skip(3)  # a view with stages
    columns, matrix = bulk.read_columns_uncached(
        view, ["id", "ground_truth.label"], field,
        keep_row=lambda row: row["ground_truth.label"] is not None,
    )
    ids, labels, vectors = view.values(["id", "ground_truth.label", field])
    kept = [i for i, label in enumerate(labels) if label is not None]
    assert columns["id"] == [ids[i] for i in kept]
    assert columns["ground_truth.label"] == [labels[i] for i in kept]
    assert columns["_num_read"] == len(ids)
    assert matrix.dtype == np.float32 and matrix.shape == (len(kept), 8)
    np.testing.assert_allclose(matrix, np.array([vectors[i] for i in kept], np.float32), rtol=1e-6)


def test_read_decodes_object_embeddings_on_patches(new_dataset):
    import fiftyone as fo

    rng = np.random.default_rng(1)
    ds = new_dataset()
    ds.add_samples([
        fo.Sample(filepath="/tmp/p_%d.png" % i, gt=fo.Detections(detections=[
            fo.Detection(label="a", bounding_box=[0.1, 0.1, 0.2, 0.2],
                         embeddings=rng.normal(size=4).astype(np.float32))
            for _ in range(2)
        ]))
        for i in range(5)
    ])
    patches = ds.to_patches("gt")
    columns, matrix = bulk.read_columns_uncached(patches, ["id", "gt.label"], "gt.embeddings")
    from fiftyone.core.utils import deserialize_numpy_array

    ids, vectors = patches.values(["id", "gt.embeddings"])
    # values() gives an undeclared attribute's array as its stored bytes
    vectors = [deserialize_numpy_array(v) if isinstance(v, bytes) else v for v in vectors]
    assert columns["id"] == ids and columns["gt.label"] == ["a"] * 10
    np.testing.assert_allclose(matrix, np.stack(vectors), rtol=1e-6)


def test_decoder_falls_back_to_numpy_for_unusual_arrays():
    from fiftyone.core.utils import serialize_numpy_array

    decode = bulk.VectorDecoder()
    fortran = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(decode(serialize_numpy_array(fortran)), fortran.ravel())
    for array in (np.arange(5, dtype=np.float16), np.arange(4, dtype=np.int64), np.ones((2, 2))):
        np.testing.assert_array_equal(decode(serialize_numpy_array(array)), array.ravel())
    assert decode(None) is None


def test_write_sets_only_the_given_samples_and_stores_what_fiftyone_stores(new_dataset):
    import fiftyone as fo

    ds = _dataset(new_dataset)
    ids = ds.values("id")
    chosen = ids[::2]
    n = len(chosen)
    column = bulk.ClassificationColumn(["x", "y"], np.arange(n) % 3 - 1, np.linspace(0, 1, n))
    score = np.linspace(0, 1, n)
    score[1] = np.nan
    before = ds.values("last_modified_at")
    bulk.write_sample_fields(ds, chosen, {
        "score": score, "flag": score > 0.5, "suggestion": column, "empty": [None] * n,
    })
    assert isinstance(ds.get_field("suggestion"), fo.EmbeddedDocumentField)
    assert ds.get_field("suggestion").document_type is fo.Classification
    assert not ds.has_sample_field("empty")  # all None: nothing to declare
    got = dict(zip(ids, ds.values("score")))
    assert got[chosen[0]] == 0.0 and got[chosen[1]] is None and got[chosen[-1]] == 1.0
    assert all(got[i] is None for i in ids[1::2])  # samples not asked for: untouched
    suggestion = dict(zip(ids, ds.values("suggestion")))
    assert suggestion[chosen[0]] is None  # index -1
    assert suggestion[chosen[1]].label == "x" and suggestion[chosen[2]].label == "y"
    assert suggestion[chosen[2]].confidence == pytest.approx(2 / (n - 1))
    stored = ds._sample_collection.find_one({"suggestion._cls": "Classification"})["suggestion"]
    assert list(stored) == list(fo.Classification(label="x", confidence=0.5).to_mongo())
    after = ds.values("last_modified_at")
    changed = {i for i, b, a in zip(ids, before, after) if a != b}
    assert changed == set(chosen)
    staging = ds._sample_collection_name + bulk.STAGING_SUFFIX
    assert staging not in ds._sample_collection.database.list_collection_names()
    # a value of another type for an existing field: refused, nothing written
    with pytest.raises(InputError, match="Field 'score' already holds numeric values"):
        bulk.write_sample_fields(ds, chosen, {"flag": score < 0.5, "score": ["a"] * n})
    assert dict(zip(ids, ds.values("flag")))[chosen[-1]] is True
