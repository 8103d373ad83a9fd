"""The reads shared by the steps of one ``find_label_issues`` chain.

Inside ``with shared_inputs():`` each distinct read (labels and embeddings
of the same view, a similarity index's vectors) is done once and served to
every step again (:func:`store.data.read_columns`,
:func:`store.brain_index.embeddings`).
"""

import contextlib
import contextvars

import fiftyone as fo


_SHARED_READS = contextvars.ContextVar("label_noise_shared_reads", default=None)


@contextlib.contextmanager
def shared_inputs():
    """A scope inside which :func:`read_columns` reads each input once.

    ``find_label_issues`` runs several detectors on the same view; each one
    calls :func:`load_inputs`, i.e. reads the same labels and embeddings.
    Inside ``with shared_inputs():`` the result of a read is kept and
    returned again to any read of the same (dataset, view stages, paths,
    embeddings field, row filter); the embeddings matrix and the columns
    are copied on the way out, so a step that modifies its arrays in place
    cannot change what the next one gets. The cache is dropped when the
    scope ends and is private to the calling thread/task (a contextvar).
    Nothing is cached outside the scope.
    """
    token = _SHARED_READS.set({})
    try:
        yield
    finally:
        _SHARED_READS.reset(token)


def shared_key(view, paths, embeddings_field, keep_row, batch_size):
    import json

    row_filter = None
    if keep_row is not None:  # same code and closed-over values = same filter
        cells = tuple(repr(c.cell_contents) for c in (keep_row.__closure__ or ()))
        row_filter = (keep_row.__code__, cells)
    # a view's stages; a dataset's own _serialize() is its document, whose
    # schema changes as each step writes its outputs (the read would miss)
    stages = ""
    if isinstance(view, fo.core.view.DatasetView):
        stages = json.dumps(view._serialize(), sort_keys=True, default=str)
    return (
        view._root_dataset._doc.id, stages, tuple(paths), embeddings_field,
        row_filter, batch_size,
    )


def shared_cache():
    """The cache dict of the current :func:`shared_inputs` scope, else None."""
    return _SHARED_READS.get()
