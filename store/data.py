"""Bulk reading, validation and writing of detector inputs and outputs.

Every compute operator goes through :func:`load_inputs` (labels and
embeddings of the target view as arrays, validated before anything is
written) and :func:`write_sample_fields` (staged in bulk, then merged into
place at once, keyed by sample id, so samples outside the target view are
never touched and a killed run leaves no half-written field); both live in
:mod:`store.bulk`.
"""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from . import brain_index
from . import objects as lno
from .errors import InputError  # noqa: F401  (raised by every check here)
from .shared import shared_cache, shared_inputs, shared_key  # noqa: F401
from .bulk import (  # noqa: F401  (the bulk I/O is part of this module's API)
    READ_BATCH,
    STAGING_SUFFIX,
    WRITE_BATCH,
    ClassificationColumn,
    io_timed,
    io_timing,
    read_columns_uncached,
    write_sample_fields,
)


@dataclass
class DetectorInputs:
    """Validated arrays of one target view, aligned row by row.

    Attributes:
        ids: sample ids (str) of the usable samples, shape (n,)
        labels: their class names (str), shape (n,)
        classes: sorted list of class names
        y: integer labels, ``classes[y[i]] == labels[i]``, shape (n,)
        embeddings: float32 (n, d) or None when not requested
        filepaths: media paths (str), shape (n,)
        skipped: reason -> number of samples of the view left out
    """

    ids: np.ndarray
    labels: np.ndarray
    classes: list
    y: np.ndarray
    embeddings: np.ndarray = None
    filepaths: np.ndarray = None
    skipped: dict = field(default_factory=dict)

    @property
    def num_samples(self):
        return len(self.ids)

    def class_counts(self):
        return dict(Counter(self.labels.tolist()))


def check_media(view):
    """Rejects collections this plugin does not process (video, groups)."""
    media_type = view.media_type
    if media_type == "group":
        raise InputError(
            "Grouped datasets are not supported yet: select a slice first, "
            "e.g. dataset.select_group_slices('left'), and run on that view"
        )
    if media_type not in ("image", None):
        raise InputError(
            "Only image datasets are supported; this collection has media "
            "type '%s'. Convert videos to frames with "
            "dataset.to_frames(sample_frames=True) first" % media_type
        )


def check_processable(view):
    """Rejects what no operator of this plugin can process: video or grouped
    media (see :func:`check_media`) and empty views."""
    check_media(view)
    if is_empty(view):
        raise InputError(
            "The target view is empty: nothing to process. Pick a view with "
            "samples (or the whole dataset)"
        )


def is_empty(view):
    """Whether ``view`` has no sample, counted by the server.

    ``len(dataset)`` uses MongoDB's collection statistics, which can be stale
    (e.g. 0) after an unclean mongod shutdown until the collection is
    validated; counting a ``limit(1)`` view runs a real query.
    """
    return view.limit(1).count() == 0


def check_label_field(view, label_field):
    """Checks that ``label_field`` is a ``fo.Classification`` field."""
    schema = view.get_field_schema()
    if label_field not in schema:
        candidates = classification_fields(view)
        raise InputError(
            "Label field '%s' does not exist on dataset '%s'. Classification "
            "fields available: %s. Pass label_field=<one of them>"
            % (label_field, view._root_dataset.name, candidates or "none")
        )
    field_ = schema[label_field]
    doc_type = getattr(field_, "document_type", None)
    if lno.is_patches(view) and doc_type is not None and issubclass(doc_type, fo.core.labels.Label):
        lno.check_object_field(view, label_field, doc_type)  # fo.Detection patches
        return
    if doc_type is not None and issubclass(doc_type, fo.Classification):
        return
    if doc_type is not None and issubclass(doc_type, fo.core.labels.Label):
        raise InputError(lno.not_supported_message(label_field, doc_type))
    raise InputError(
        "Label field '%s' is a %s, not an fo.Classification field. Store "
        "labels as fo.Classification(label=...) in a field and pass its name"
        % (label_field, type(field_).__name__)
    )


def classification_fields(view):
    """Names of the top-level ``fo.Classification`` fields of ``view`` (and
    the objects field of a patches view)."""
    names = set(view.get_field_schema(embedded_doc_type=fo.Classification))
    if lno.is_patches(view):
        names.update(getattr(view, "_label_fields", ()) or ())
    return sorted(names)


def vector_fields(view):
    """Names of the top-level fields that can hold embeddings."""
    names = []
    schema = view.get_field_schema(flat=lno.is_patches(view))  # + label attributes
    for name, f in schema.items():
        if name.rpartition(".")[2] in ("bounding_box", "mask", "points"):
            continue  # an object's geometry, not an embedding
        if isinstance(f, (fof.VectorField, fof.ArrayField)):
            names.append(name)
        elif isinstance(f, fof.ListField) and isinstance(
            f.field, (fof.FloatField, fof.IntField)
        ):
            names.append(name)
    return sorted(names)


@io_timed("read")
def load_inputs(
    view,
    label_field="ground_truth",
    embeddings_field="embeddings",
    need_embeddings=True,
    min_classes=2,
    min_per_class=1,
    need_filepaths=False,
):
    """Reads labels (and embeddings) of ``view`` in bulk and validates them.

    Samples without a label are skipped and counted; samples with a label but
    no embedding are an error when embeddings are needed (the fix is to
    compute them), as are NaN/inf or ragged vectors.

    Returns:
        a :class:`DetectorInputs`

    Raises:
        InputError: with a message that names the field/samples and the fix
    """
    check_processable(view)
    check_label_field(view, label_field)
    from_index, embeddings_field = _embeddings_source(
        view, label_field, embeddings_field, need_embeddings)
    skipped = {}
    if lno.is_patches(view):  # one row per object; boxes checked first
        lno.check_objects(view, label_field)
        num_empty = lno.count_empty_samples(view, label_field)
        if num_empty:
            skipped["samples without objects in '%s'" % label_field] = num_empty

    paths = ["id", label_field + ".label"]
    if need_filepaths:
        paths.append("filepath")
    label_path = label_field + ".label"
    columns, embeddings = read_columns(
        view,
        paths,
        embeddings_field if need_embeddings and not from_index else None,
        keep_row=lambda row: row[label_path] is not None,
    )
    ids, labels = columns["id"], columns[label_path]
    if from_index and ids:
        embeddings = brain_index.embeddings(view, label_field, ids)
    filepaths = columns.get("filepath")

    num_unlabeled = columns["_num_read"] - len(ids)
    if num_unlabeled:
        skipped["no label in '%s'" % label_field] = num_unlabeled
    if not ids:
        raise InputError(
            "No sample of the target view has a label in '%s'. Set "
            "sample['%s'] = fo.Classification(label=...) or choose the field "
            "that holds your labels" % (label_field, label_field)
        )

    ids = np.array(ids, dtype=object)
    labels = np.array(labels, dtype=object)
    classes = sorted(set(labels.tolist()))
    _check_classes(labels, classes, label_field, min_classes, min_per_class)
    index = {c: k for k, c in enumerate(classes)}
    y = np.fromiter((index[c] for c in labels), dtype=np.int64, count=len(labels))

    return DetectorInputs(
        ids=ids,
        labels=labels,
        classes=classes,
        y=y,
        embeddings=embeddings,
        filepaths=np.array(filepaths, dtype=object) if need_filepaths else None,
        skipped=skipped,
    )


def embeddings_exist(view, embeddings_field):
    """Whether ``embeddings_field`` (a path of ``view``: see
    :func:`embeddings_path`) is a field, or a dynamic (undeclared) label
    attribute with values, e.g. ``ground_truth.embeddings``."""
    if embeddings_field in view.get_field_schema(flat=True):
        return True
    return "." in embeddings_field and bool(view.exists(embeddings_field).limit(1).count())


def _embeddings_source(view, label_field, embeddings_field, need_embeddings):
    """``(from_index, embeddings path)``: where a run's embeddings come from
    (the active similarity index, or the field), checked before any read."""
    from_index = need_embeddings and bool(brain_index.active())
    if from_index:
        brain_index.check_index(view, brain_index.active(), label_field)
    elif need_embeddings:
        embeddings_field = embeddings_path(view, label_field, embeddings_field)
        _check_embeddings_field(view, embeddings_field)
    return from_index, embeddings_field


def _check_embeddings_field(view, embeddings_field):
    if embeddings_exist(view, embeddings_field):
        return
    raise InputError(
        "Embeddings field '%s' does not exist. Fields that can hold "
        "embeddings: %s. Run the compute_embeddings operator (or any "
        "FiftyOne zoo model with compute_embeddings(..., "
        "embeddings_field='%s')) first, or pass embeddings_field=<name>"
        % (embeddings_field, vector_fields(view) or "none", embeddings_field)
    )


def read_columns(view, paths, embeddings_field=None, keep_row=None, batch_size=None,
                 vector_name="embedding"):
    """:func:`read_columns_uncached`, served from :func:`shared_inputs`'s
    cache when called inside that scope (same arguments and result)."""
    cache = shared_cache()
    if cache is None:
        return read_columns_uncached(view, paths, embeddings_field, keep_row, batch_size, vector_name)
    key = shared_key(view, paths, embeddings_field, keep_row, batch_size)
    if key not in cache:
        cache[key] = read_columns_uncached(view, paths, embeddings_field, keep_row, batch_size, vector_name)
    columns, embeddings = cache[key]
    columns = {k: (list(v) if isinstance(v, list) else v) for k, v in columns.items()}
    return columns, (None if embeddings is None else embeddings.copy())


def _check_classes(labels, classes, label_field, min_classes, min_per_class):
    if len(classes) < min_classes:
        raise InputError(
            "Label field '%s' has %d class(es) (%s) in the target view; this "
            "method needs at least %d. Widen the view or check the labels"
            % (label_field, len(classes), ", ".join(map(str, classes)), min_classes)
        )
    counts = Counter(labels.tolist())
    small = {c: n for c, n in counts.items() if n < min_per_class}
    if small:
        shown = ", ".join("'%s' (%d)" % kv for kv in sorted(small.items())[:10])
        raise InputError(
            "%d class(es) in '%s' have fewer than %d samples, which this "
            "method needs: %s. Add samples, merge or exclude those classes"
            % (len(small), label_field, min_per_class, shown)
        )


@io_timed("read")
def load_unlabeled_inputs(
    view,
    label_field="",
    embeddings_field="embeddings",
    need_embeddings=True,
    need_filepaths=False,
):
    """Reads every sample of ``view`` for methods that do not need labels.

    Unlike :func:`load_inputs`, no sample is skipped for lacking a label:
    labels are optional. When ``label_field`` is empty or not a field of the
    view, the run is unlabeled (``classes == []``, every ``y == -1``).
    Otherwise the field must be an ``fo.Classification`` field; samples
    without a label there get ``labels[i] = None`` and ``y[i] = -1``.
    Embeddings, when needed, must exist for every sample.

    Returns:
        a :class:`DetectorInputs` (``skipped`` is always empty); its
        ``labels`` may contain None and ``y`` uses -1 for "no label"

    Raises:
        InputError: with a message that names the field/samples and the fix
    """
    check_processable(view)
    has_labels = bool(label_field) and label_field in view.get_field_schema()
    if has_labels:
        check_label_field(view, label_field)
    if lno.is_patches(view):
        if not has_labels:
            check_label_field(view, label_field)  # names the patches field
        lno.check_objects(view, label_field, require_labels=False)
    from_index, embeddings_field = _embeddings_source(
        view, label_field, embeddings_field, need_embeddings)

    paths = ["id"]
    if has_labels:
        paths.append(label_field + ".label")
    if need_filepaths:
        paths.append("filepath")
    columns, embeddings = read_columns(
        view, paths, embeddings_field if need_embeddings and not from_index else None
    )
    ids = columns["id"]
    if from_index and ids:
        embeddings = brain_index.embeddings(view, label_field, ids)
    labels = columns[label_field + ".label"] if has_labels else [None] * len(ids)

    classes = sorted({l for l in labels if l is not None})
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index[l] if l is not None else -1 for l in labels], dtype=np.int64)
    return DetectorInputs(
        ids=np.array(ids, dtype=object),
        labels=np.array(labels, dtype=object),
        classes=classes,
        y=y,
        embeddings=embeddings,
        filepaths=(
            np.array(columns["filepath"], dtype=object) if need_filepaths else None
        ),
        skipped={},
    )


# ------------------------------------------------ outputs on samples or objects


def output_path(view, label_field, name):
    """Where output ``name`` lives on ``view``: ``name`` on sample views,
    ``<label_field>.<name>`` (an attribute of each object) on patches views.

    Also maps ``"tags"`` to the label tags and ``"label_verified"`` to the
    object's verification on patches views. A name that already starts
    with ``<label_field>.`` is returned as is.
    """
    if not lno.is_patches(view) or not name or name.startswith(label_field + "."):
        return name
    return "%s.%s" % (label_field, name)


def dataset_output_path(view, label_field, name):
    """The path of output ``name`` on the root dataset: ``name``, or
    ``<label_field>.detections.<name>`` for the objects of a patches view."""
    if not lno.is_patches(view):
        return name
    if name.startswith(label_field + "."):
        name = name[len(label_field) + 1:]
    return "%s.%s" % (lno.label_list_root(view._root_dataset, label_field), name)


def embeddings_path(view, label_field, embeddings_field):
    """``embeddings_field`` as given, or, on a patches view where it is not a
    field, the object attribute ``<label_field>.<embeddings_field>`` (the
    convention of FiftyOne's ``compute_patch_embeddings``)."""
    if not lno.is_patches(view) or not embeddings_field:
        return embeddings_field
    if embeddings_field in view.get_field_schema(flat=True):
        return embeddings_field
    return output_path(view, label_field, embeddings_field)


@io_timed("write")
def write_outputs(view, label_field, ids, values_by_field):
    """Writes a run's outputs for the items ``ids`` of ``view``, in bulk, all
    or nothing: sample fields (:func:`write_sample_fields`) on sample views,
    attributes of each object (:func:`store.objects.write_label_fields`,
    ``ids`` = label ids) on patches views.

    Returns:
        the dataset paths written (what a run record lists)
    """
    if lno.is_patches(view):
        return lno.write_label_fields(view, label_field, ids, values_by_field)
    write_sample_fields(view._root_dataset, ids, values_by_field)
    return list(values_by_field)


@io_timed("read")
def read_outputs(view, label_field, names, ids=None):
    """Reads outputs by name (e.g. ``"knn_disagreement"``,
    ``"knn_label.label"``, ``"tags"``) on samples or objects.

    Args:
        view: a sample view or a patches view
        label_field: the label field (the patches field on patches views)
        names: output names as on a sample view (see :func:`output_path`)
        ids (None): align the values with these item ids (None where an id
            is not in ``view``); default: the view's order, with ``"id"``

    Returns:
        dict name -> list of values
    """
    names = list(names)
    columns = view.values(["id"] + [output_path(view, label_field, n) for n in names])
    if ids is None:
        return dict(zip(["id"] + names, columns))
    row = {sid: k for k, sid in enumerate(columns[0])}
    rows = [row.get(str(i)) for i in ids]
    return {
        n: [None if r is None else col[r] for r in rows]
        for n, col in zip(names, columns[1:])
    }


def output_schema(view, label_field):
    """``{name: field}`` of the outputs that can exist on ``view``: its
    top-level fields, or the attributes of each object on patches views."""
    if not lno.is_patches(view):
        return view.get_field_schema()
    prefix = label_field + "."
    return {
        name[len(prefix):]: f
        for name, f in view.get_field_schema(flat=True).items()
        if name.startswith(prefix) and "." not in name[len(prefix):]
    }


def tag_items(view, label_field, ids, tag, replace=True):
    """Tags the items ``ids`` of ``view``: sample tags, or label tags of the
    objects on patches views; ``replace`` first removes ``tag`` from the rest
    of the view."""
    if lno.is_patches(view):
        return lno.tag_objects(view, label_field, ids, tag, replace=replace)
    if replace:
        view.untag_samples(tag)
    ids = [str(i) for i in ids]
    if ids:
        view._root_dataset.select(ids).tag_samples(tag)
