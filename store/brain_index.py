"""Embeddings from a FiftyOne similarity index instead of a field.

Users who ran ``fiftyone.brain.compute_similarity`` already hold their
embeddings in a similarity index: FiftyOne's ``sklearn`` backend keeps the
vectors in the run results, vector-database backends (LanceDB, Qdrant, ...)
in their own store; a ``patches_field`` index holds one vector per object.
Every detector takes ``brain_key`` as an alternative to ``embeddings_field``:
:class:`operators.base.DetectorOperator` opens :func:`reading_from` around
its computation and the loaders of :mod:`store.data` then take the
vectors of the rows they read from the index, through the backend-neutral
``SimilarityIndex.get_embeddings`` (sample ids, or label ids on a patches
view), in the rows' order.
"""

import contextlib
import contextvars

import numpy as np

from . import objects as lno
from .errors import InputError
from .shared import shared_cache

_ACTIVE = contextvars.ContextVar("label_noise_brain_key", default="")


@contextlib.contextmanager
def reading_from(brain_key):
    """Inside, the loaders read embeddings from the similarity index
    ``brain_key`` (empty: from the embeddings field, as usual)."""
    token = _ACTIVE.set(str(brain_key or ""))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active():
    """The brain key embeddings are read from in this scope, or ``""``."""
    return _ACTIVE.get()


def similarity_keys(collection, patches_field=None):
    """Brain keys of the similarity indexes of ``collection``'s dataset that
    index its items: samples (``patches_field=None``) or the objects of
    ``patches_field``."""
    dataset = collection._root_dataset
    keys = []
    for key in dataset.list_brain_runs(type="similarity"):
        config = dataset.get_brain_info(key).config
        if getattr(config, "patches_field", None) == patches_field:
            keys.append(key)
    return keys


def check_index(view, brain_key, label_field):
    """Raises InputError unless ``brain_key`` is a similarity index of
    ``view``'s items (samples, or the objects of a patches view)."""
    dataset = view._root_dataset
    patches_field = label_field if lno.is_patches(view) else None
    level = "the objects of '%s'" % label_field if patches_field else "samples"
    if brain_key not in dataset.list_brain_runs():
        raise InputError(
            "Brain key '%s' does not exist on dataset '%s'. Similarity indexes "
            "of %s here: %s. Create one with fiftyone.brain.compute_similarity("
            "dataset%s, embeddings=..., brain_key='%s'), or leave brain_key "
            "empty to read embeddings_field"
            % (brain_key, dataset.name, level, similarity_keys(view, patches_field) or "none",
               ", patches_field='%s'" % label_field if patches_field else "", brain_key)
        )
    config = dataset.get_brain_info(brain_key).config
    if getattr(config, "type", None) != "similarity":
        raise InputError(
            "Brain key '%s' is a %s run, not a similarity index; pick one of %s"
            % (brain_key, getattr(config, "type", "?"), similarity_keys(view, patches_field) or "none")
        )
    indexed = getattr(config, "patches_field", None)
    if indexed != patches_field:
        raise InputError(
            "Similarity index '%s' indexes %s, but the target is %s: pick an "
            "index of %s (%s)"
            % (brain_key, "the objects of '%s'" % indexed if indexed else "samples",
               level, level, similarity_keys(view, patches_field) or "none")
        )


def embeddings(view, label_field, ids, brain_key=None):
    """float32 (len(ids), d): the index's vector of each id, in order.

    Args:
        view: the target view (samples, or a patches view of ``label_field``)
        label_field: the label field (the patches field on patches views)
        ids: sample ids, or object ids on a patches view
        brain_key (None): default the active one (:func:`reading_from`)

    Raises:
        InputError: unknown key, an index of other items, ids the index does
            not cover (it was computed on other samples), NaN/inf vectors
    """
    brain_key = brain_key or active()
    check_index(view, brain_key, label_field)
    ids = [str(i) for i in ids]
    cache = shared_cache()  # find_label_issues: one read for the chain
    key = ("brain_index", view._root_dataset.name, brain_key, hash(tuple(ids)))
    if cache is not None and key in cache:
        return cache[key].copy()
    matrix = _read(view, brain_key, ids)
    if cache is not None:
        cache[key] = matrix
    return matrix.copy() if cache is not None else matrix


def _read(view, brain_key, ids):
    results = view._root_dataset.load_brain_results(brain_key)
    objects = lno.is_patches(view)
    found = results.get_embeddings(
        **({"label_ids": ids} if objects else {"sample_ids": ids}), allow_missing=True
    )
    vectors, sample_ids, label_ids = found
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:  # none found
        vectors = vectors.reshape(len(vectors), -1) if vectors.size else np.zeros((0, 0), np.float32)
    have = label_ids if objects else sample_ids
    have = [str(i) for i in (have if have is not None else [])]
    if len(have) != len(vectors):
        # FiftyOne's sklearn backend returns the *requested* label ids when
        # some are missing: fall back to the ids the index holds
        held = getattr(results, "label_ids" if objects else "sample_ids", None)
        held = set(str(i) for i in (held if held is not None else []))
        have = [i for i in ids if i in held] if len(held) else []
    row = {i: k for k, i in enumerate(have)}
    missing = [i for i in ids if i not in row]
    if missing:
        raise InputError(
            "Similarity index '%s' has no embedding for %d of the %d %s of the "
            "target view (e.g. %s): it was computed on other samples. Re-run "
            "compute_similarity on this view (or add these items to the index), "
            "or use embeddings_field"
            % (brain_key, len(missing), len(ids), "objects" if objects else "samples",
               ", ".join(missing[:3]))
        )
    matrix = vectors[[row[i] for i in ids]]
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise InputError(
            "Similarity index '%s' holds NaN/inf embeddings for %d items (e.g. %s): "
            "re-compute them" % (brain_key, int(bad.sum()), ", ".join(np.array(ids)[bad][:3]))
        )
    return matrix
