"""Bulk reads and writes of sample columns, the I/O under every detector.

Reads: :func:`read_columns_uncached` streams the target view through one
database cursor that projects only the paths asked for (no ``skip``, no
per-sample documents) and decodes stored vectors straight into one float32
matrix. Writes: :func:`write_sample_fields` bulk-inserts the new values into
a side collection, then one server-side ``$merge`` moves them into the
samples. Both were measured against ``values()`` / ``set_values()``
(``benchmarks/bench_io.py``, BENCHMARKS.md): at 1,000,000 x 256-d, reading
ids, labels and embeddings took 36 s instead of 88 s (``values()`` in
batches of 50,000; 71 s instead of 128 s for lists of floats), and writing
three fields to every sample 56 s instead of 239 s.
"""

import contextlib
import contextvars
import functools
import time
from collections import Counter

import numpy as np


from .columns import (  # noqa: F401  (the column types are part of the bulk API)
    ClassificationColumn,
    VectorDecoder,
    declare_fields,
    field_kind,
    infer_field,
    plain,
    stored_column,
    to_python,
)
from .errors import InputError

#: samples decoded per batch while reading; bounds the Python objects alive at once
READ_BATCH = 50_000
#: samples per bulk insert into the staging collection when writing
WRITE_BATCH = 50_000
#: suffix of the side collection that holds a write's values until they are merged
STAGING_SUFFIX = "_ln_staging"


# ------------------------------------------------------------------ timing

_IO_SECONDS = contextvars.ContextVar("label_noise_io_seconds", default=None)


@contextlib.contextmanager
def io_timing():
    """A scope that adds up the seconds spent reading inputs and writing
    outputs: yields a dict ``{"read": s, "write": s}`` filled as the scope
    runs (``find_label_issues`` reports each step's split with it)."""
    spent = {"read": 0.0, "write": 0.0}
    token = _IO_SECONDS.set(spent)
    try:
        yield spent
    finally:
        _IO_SECONDS.reset(token)


def io_timed(kind):
    """Decorator: adds the call's wall time to the active :func:`io_timing`
    under ``kind`` (outermost timed call only, so nesting never counts twice)."""

    def wrap(function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            spent = _IO_SECONDS.get()
            if spent is None or spent.get("_busy"):
                return function(*args, **kwargs)
            spent["_busy"], started = True, time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[kind] += time.perf_counter() - started
                del spent["_busy"]

        return timed

    return wrap


# ------------------------------------------------------------------ reads


def read_columns_uncached(view, paths, embeddings_field=None, keep_row=None, batch_size=None,
                          vector_name="embedding"):
    """Reads ``paths`` (and embeddings) of ``view`` through one cursor.

    One aggregation with the view's own pipeline and a ``$project`` of the
    requested paths streams every sample once; ids come back as strings,
    as from ``values()``. Embeddings are decoded batch by batch into one
    preallocated float32 matrix, so at most one batch of per-sample vectors
    exists as Python objects (1M x 256-d: the 1 GB matrix plus ~60 MB).

    Args:
        view: the target view (a dataset, a view, a patches view)
        paths: field paths, e.g. ``["id", "ground_truth.label"]``
        embeddings_field (None): vector field to stack, or None
        vector_name ("embedding"): what its vectors are, in error messages
            (e.g. "prediction vector")
        keep_row (None): ``callable(row_dict) -> bool``; rows it rejects are
            dropped (their embeddings are not needed)
        batch_size (None): samples decoded per batch (default :data:`READ_BATCH`)

    Returns:
        ``(columns, embeddings)``: ``columns`` maps each path to the list of
        kept values, plus ``"_num_read"``: the number of samples read;
        ``embeddings`` is float32 (n_kept, d) or None

    Raises:
        InputError: kept samples without embedding, with NaN/inf, or with
            vectors of different lengths (after reading every batch, so the
            message counts all of them)
    """
    batch_size = batch_size or READ_BATCH
    keys = ["c%d" % j for j in range(len(paths))]
    project = {"_id": 0}
    project.update({k: "$" + view._handle_db_field(p) for k, p in zip(keys, paths)})
    if embeddings_field:
        project["e"] = "$" + view._handle_db_field(embeddings_field)
    cursor = view._aggregate(pipeline=[{"$project": project}])

    columns = {p: [] for p in paths}
    decoder = VectorDecoder()
    matrix, filled = None, 0  # embeddings of the kept rows, preallocated
    missing, bad = [], []
    dims = Counter()
    odd = None  # (sample id, size) of the first vector of an unexpected size
    num_read = 0
    capacity = None
    pending = []  # (row dict, raw vector) of the current batch

    def decode(batch):
        nonlocal matrix, filled, odd
        ids = [row[paths[0]] for row, _ in batch]
        vectors = [decoder(raw) for _, raw in batch]
        for sid, v in zip(ids, vectors):
            if v is None:
                missing.append(sid)
                continue
            if dims and v.size not in dims and odd is None:
                odd = (sid, v.size)
            dims[v.size] += 1
        if not vectors or missing or len(dims) != 1:
            return  # an error is raised after the last batch
        block = np.stack(vectors).astype(np.float32, copy=False)
        finite = np.isfinite(block).all(axis=1)
        bad.extend(sid for sid, ok in zip(ids, finite) if not ok)
        if matrix is None or filled + len(block) > len(matrix):
            size = max(capacity or 0, 2 * filled, filled + len(block))
            grown = np.empty((size, block.shape[1]), np.float32)
            if matrix is not None:
                grown[:filled] = matrix[:filled]
            matrix = grown
        matrix[filled:filled + len(block)] = block
        filled += len(block)

    for doc in cursor:
        num_read += 1
        row = {p: plain(doc.get(k)) for p, k in zip(paths, keys)}
        if keep_row is not None and not keep_row(row):
            continue
        for p in paths:
            columns[p].append(row[p])
        if embeddings_field:
            if capacity is None:
                capacity = len(view)  # a hint only: the matrix grows if needed
            pending.append((row, doc.get("e")))
            if len(pending) >= batch_size:
                decode(pending)
                pending = []
    if pending:
        decode(pending)

    kept_ids = columns[paths[0]]
    if len(set(kept_ids)) != len(kept_ids):
        raise InputError(
            "The target view changed while it was being read (a sample was "
            "read twice). Run again when no other process is adding or "
            "deleting samples"
        )
    columns["_num_read"] = num_read
    if embeddings_field is None:
        return columns, None
    if missing:
        raise InputError(
            "%d labeled samples have no %s in '%s' (e.g. sample %s). "
            "Compute %ss for the whole target view first, or exclude "
            "those samples: view.exists('%s')"
            % (len(missing), vector_name, embeddings_field, missing[0], vector_name,
               embeddings_field)
        )
    if len(dims) > 1:
        (common, _), = dims.most_common(1)
        if odd is None or odd[1] == common:  # the first vectors were the odd ones
            sid = kept_ids[0]
            odd = (sid, next(d for d in dims if d != common))
        raise InputError(
            "%ss in '%s' have different lengths %s (e.g. sample %s "
            "has %d, most have %d). Recompute them with one model"
            % (vector_name.capitalize(), embeddings_field, sorted(dims), odd[0], odd[1], common)
        )
    if bad:
        raise InputError(
            "%d %ss in '%s' contain NaN or inf (e.g. sample %s). "
            "Recompute them or exclude those samples"
            % (len(bad), vector_name, embeddings_field, bad[0])
        )
    if matrix is None:
        return columns, None
    return columns, matrix[:filled]


# ------------------------------------------------------------------ writes


@io_timed("write")
def write_sample_fields(dataset, ids, values_by_field):
    """Writes one value per sample id for each field, in bulk, all or nothing.

    The values are first bulk-inserted, in batches, as documents
    ``{_id: sample id, <field>: value, ...}`` into a side collection
    (``<samples collection>_ln_staging``). Then one server-side ``$merge``
    sets every staged field on its sample (per sample atomically, all
    fields at once); new fields are declared on the dataset. A process
    killed while staging leaves the samples exactly as they were (the next
    write drops the stale side collection); once the merge is sent, mongod
    completes it even if the client dies. Samples not in ``ids`` are never
    touched.

    Args:
        dataset: the root :class:`fiftyone.core.dataset.Dataset`
        ids: sample ids, aligned with each value list
        values_by_field: dict top-level field name -> list/array/sliceable of
            values (None sets null)

    Raises:
        InputError: an existing field holds another type of value than the
            one written (nothing is changed then)
    """
    from bson import ObjectId

    ids = [str(i) for i in ids]
    if not ids or not values_by_field:
        return
    values_by_field = {
        name: values if hasattr(values, "__getitem__") else list(values)
        for name, values in values_by_field.items()
    }
    fields = {name: infer_field(values) for name, values in values_by_field.items()}
    for name, new in fields.items():
        old = dataset.get_field(name) if dataset.has_sample_field(name) else None
        if old is not None and new is not None and field_kind(old) != field_kind(new):
            raise InputError(
                "Field '%s' already holds %s values; this run writes %s. Pass "
                "another output field or delete '%s' first"
                % (name, field_kind(old), field_kind(new), name)
            )
    # a new field whose values are all None is neither declared nor written
    written = [n for n in values_by_field if fields[n] is not None or dataset.has_sample_field(n)]
    if not written:
        return
    samples = dataset._sample_collection
    side = samples.database[dataset._sample_collection_name + STAGING_SUFFIX]
    side.drop()  # left over by a killed write
    try:
        for start in range(0, len(ids), WRITE_BATCH):
            stop = min(start + WRITE_BATCH, len(ids))
            columns = [stored_column(fields[n], values_by_field[n], start, stop) for n in written]
            docs = [
                dict(zip(written, cells), _id=ObjectId(sid))
                for sid, *cells in zip(ids[start:stop], *columns)
            ]
            side.insert_many(docs, ordered=False)
        declare_fields(dataset, "", {n: fields[n] for n in written})
        list(side.aggregate([{"$merge": {
            "into": dataset._sample_collection_name,
            "on": "_id",
            # the server's clock, as FiftyOne's own writes: never behind the
            # sample's creation time, whatever this machine's clock says
            "whenMatched": [{"$replaceWith": {"$mergeObjects": [
                "$$ROOT", "$$new", {"last_modified_at": "$$NOW"},
            ]}}],
            "whenNotMatched": "discard",
        }}]))
    finally:
        side.drop()
    dataset.reload()


