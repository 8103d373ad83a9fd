"""Object labels on the shared data path: patches views of ``fo.Detection``.

A patches view (``dataset.to_patches("ground_truth")`` or the App's patches
button) has one item per object: its ``id`` is the Detection's id, its
``sample_id`` the image's, and ``ground_truth`` is the ``fo.Detection``
itself. Operators read it like a sample view (``ground_truth.label``,
``ground_truth.embeddings``: see :mod:`operators.data`); this module holds
what differs:

- :func:`check_object_field` / :func:`check_objects`: which patches views are
  processed, and the per-object validation (label, box) done before anything
  is written;
- :func:`write_label_fields`: outputs written on the dataset's labels
  (``ground_truth.detections.<name>``), keyed by label id, staged then moved
  into place by one server-side update (the same all-or-nothing property as
  :func:`operators.data.write_sample_fields`);
- :func:`count_empty_samples`: images without objects (skipped and counted).
"""

import datetime

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

#: attribute that holds a label's staged outputs until they are moved in place
STAGING_ATTR = "_ln_staging"

#: label types of a patches view this plugin processes (one object per item)
OBJECT_TYPES = (fo.Detection,)

_NOT_SUPPORTED = (
    "Label field '%s' holds %s labels: not supported. Objects are supported "
    "as fo.Detection patches (dataset.to_patches('<detections field>')); "
    "polylines, keypoints and multi-label fo.Classifications are not"
)


def is_patches(view):
    """Whether ``view`` is a patches view (one item per label)."""
    return bool(getattr(view, "_is_patches", False))


def check_object_field(view, label_field, doc_type):
    """Accepts ``label_field`` of a patches view when it holds fo.Detection.

    Raises:
        InputError: the field is not the view's patches field, or holds
            polylines/keypoints (not supported)
    """
    from .data import InputError

    patch_fields = list(getattr(view, "_label_fields", ()) or ())
    if label_field not in patch_fields:
        raise InputError(
            "This patches view has one item per label of %s, not of '%s'. "
            "Pass label_field='%s'" % (patch_fields, label_field, patch_fields[0] if patch_fields else "")
        )
    if not issubclass(doc_type, OBJECT_TYPES):
        raise InputError(_NOT_SUPPORTED % (label_field, doc_type.__name__))


def not_supported_message(label_field, doc_type):
    """The error for a label type that no operator processes."""
    if issubclass(doc_type, fo.Detections):
        return (
            "Label field '%s' holds fo.Detections (objects): not supported on "
            "the sample level. Run on a patches view, one item per object: "
            "dataset.to_patches('%s') (in the App: the patches button), "
            "label_field='%s'; outputs go on each object "
            "('%s.detections.<output>'). Multi-label fo.Classifications are "
            "not supported" % (label_field, label_field, label_field, label_field)
        )
    if issubclass(doc_type, fo.Classifications):
        return (
            "Label field '%s' holds fo.Classifications (multi-label): not "
            "supported (only single-label fo.Classification fields, and "
            "fo.Detections through dataset.to_patches('<field>')). Convert to "
            "one Classification per sample, or pick another field" % label_field
        )
    return _NOT_SUPPORTED % (label_field, doc_type.__name__)


def label_list_root(dataset, label_field):
    """``ground_truth.detections``: where the objects of ``label_field`` live."""
    _, root = dataset._get_label_field_path(label_field)
    return root


def count_empty_samples(view, label_field):
    """Images of the patches view's source without any object in ``label_field``."""
    from fiftyone import ViewField as F

    source = getattr(view, "_source_collection", None)
    if source is None:
        return 0
    root = label_list_root(source._root_dataset, label_field)
    total = source.count()
    with_objects = source.match(F(root).length() > 0).count()
    return total - with_objects


def check_objects(view, label_field, require_labels=True, batch_size=50_000):
    """Validates every object of a patches view before anything is written.

    Boxes must be 4 finite numbers ``[x, y, w, h]`` with ``w, h > 0`` inside
    ``[0, 1]`` (1e-6 slack); with ``require_labels``, every object must have a
    class (an unlabeled box is a broken annotation, not an unlabeled image).

    Raises:
        InputError: naming the object, its sample and the fix
    """
    from .data import InputError

    eps = 1e-6
    no_label, bad_box = [], []
    paths = ["id", "sample_id", label_field + ".label", label_field + ".bounding_box"]
    for start in range(0, 1 << 62, batch_size):
        ids, sids, labels, boxes = view.skip(start).limit(batch_size).values(paths)
        for oid, sid, label, box in zip(ids, sids, labels, boxes):
            if require_labels and (label is None or label == ""):
                no_label.append((oid, sid))
            reason = _box_problem(box, eps)
            if reason:
                bad_box.append((oid, sid, box, reason))
        if len(ids) < batch_size:
            break
    if bad_box:
        oid, sid, box, reason = bad_box[0]
        raise InputError(
            "%d object(s) of '%s' have an invalid bounding box (e.g. object %s "
            "of sample %s: %s, %s). Boxes must be [x, y, width, height] "
            "relative to the image, inside [0, 1], with width and height > 0. "
            "Fix or delete them, or exclude them from the view, e.g. "
            "dataset.filter_labels('%s', (F('bounding_box')[2] > 0) & "
            "(F('bounding_box')[3] > 0)).to_patches('%s')"
            % (len(bad_box), label_field, oid, sid, box, reason, label_field, label_field)
        )
    if no_label:
        oid, sid = no_label[0]
        raise InputError(
            "%d object(s) of '%s' have no label (e.g. object %s of sample %s). "
            "Give each box a class (detection.label = ...) or exclude them: "
            "dataset.filter_labels('%s', F('label') != None).to_patches('%s')"
            % (len(no_label), label_field, oid, sid, label_field, label_field)
        )


def _box_problem(box, eps):
    if box is None:
        return "no bounding box"
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        return "not numbers"
    if len(values) != 4:
        return "%d numbers instead of 4" % len(values)
    if not all(np.isfinite(values)):
        return "NaN or inf"
    x, y, w, h = values
    if w <= 0 or h <= 0:
        return "zero or negative area"
    if x < -eps or y < -eps or x + w > 1 + eps or y + h > 1 + eps:
        return "outside [0, 1]"
    return ""


# ------------------------------------------------------------------ writes


def infer_field(values):
    """A FiftyOne field instance for a column of output values."""
    from .data import ClassificationColumn

    if isinstance(values, ClassificationColumn):
        return fof.EmbeddedDocumentField(fo.Classification)
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 1:
        kind = values.dtype.kind
        if kind == "b":
            return fof.BooleanField()
        if kind in "iu":
            return fof.IntField()
        if kind == "f":
            return fof.FloatField()
        if kind in "US":
            return fof.StringField()
    first = next((v for v in values if v is not None), None)
    if isinstance(first, fo.core.labels.Label):
        return fof.EmbeddedDocumentField(type(first))
    if isinstance(first, np.ndarray):
        return fof.VectorField()
    if isinstance(first, (bool, np.bool_)):
        return fof.BooleanField()
    if isinstance(first, (int, np.integer)):
        return fof.IntField()
    if isinstance(first, (float, np.floating)):
        return fof.FloatField()
    if isinstance(first, str):
        return fof.StringField()
    if isinstance(first, datetime.datetime):
        return fof.DateTimeField()
    return None


def _to_mongo(field, values):
    from .data import _to_python

    if isinstance(field, (fof.EmbeddedDocumentField, fof.VectorField)):
        return [None if v is None else field.to_mongo(v) for v in values]
    return _to_python(values)


def write_label_fields(view, label_field, ids, values_by_field, batch_size=100_000):
    """Writes one value per object for each output, on the dataset's labels.

    ``values_by_field[name][i]`` goes to attribute ``name`` of the object
    ``ids[i]`` (a label id = patch id of ``view``), i.e. to
    ``<label_field>.detections.<name>`` of the root dataset. The values are
    first staged on each label (attribute ``_ln_staging``, by a bulk write
    keyed by sample id and label id), then one server-side update merges
    every staged value into its label and removes the stage (per image
    atomically, all outputs at once). A process killed while staging leaves
    the outputs as they were (the next write discards stale stages). Objects
    not in ``ids`` are never touched. New attributes are declared on the
    dataset (so they show in the App's label filters and in the patches
    view as ``<label_field>.<name>``).

    Returns:
        the dataset paths written, e.g. ``["ground_truth.detections.noise_score"]``

    Raises:
        InputError: an id is not an object of ``view``, or an existing
            attribute holds another type of value (nothing is changed then)
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    from .data import InputError, _field_kind

    dataset = view._root_dataset
    root = label_list_root(dataset, label_field)
    ids = [str(i) for i in ids]
    paths = [root + "." + name for name in values_by_field]
    if not ids or not values_by_field:
        return paths
    for name in values_by_field:
        if not name or "." in name or name.startswith("_") or not name.isidentifier():
            raise InputError(
                "Output '%s' must be an attribute name (letters, digits, _) to "
                "store on each object of '%s'" % (name, label_field)
            )
    patch_ids, sample_ids = view.values(["id", "sample_id"])
    sample_of = dict(zip(patch_ids, sample_ids))
    unknown = [i for i in ids if i not in sample_of]
    if unknown:
        raise InputError(
            "%d object id(s) are not in the target patches view (e.g. %s)"
            % (len(unknown), unknown[0])
        )
    fields = {name: infer_field(values) for name, values in values_by_field.items()}
    for name, new in fields.items():
        old = dataset.get_field(root + "." + name)
        if old is not None and new is not None and _field_kind(old) != _field_kind(new):
            raise InputError(
                "Attribute '%s.%s' already holds %s values; this run writes %s. "
                "Pass another output field or delete it first: "
                "dataset.delete_sample_field('%s.%s')"
                % (root, name, _field_kind(old), _field_kind(new), root, name)
            )
    collection = dataset._sample_collection
    _discard_stages(collection, root)  # left over by a killed write
    stage = root + ".$[obj]." + STAGING_ATTR
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        columns = {}
        for name, values in values_by_field.items():
            if not hasattr(values, "__getitem__"):
                values = list(values)
            columns[name] = _to_mongo(fields[name], values[start:start + batch_size])
        ops = []
        for k, oid in enumerate(chunk):
            staged = {name: column[k] for name, column in columns.items()}
            ops.append(
                UpdateOne(
                    {"_id": ObjectId(sample_of[oid])},
                    {"$set": {stage: staged}},
                    array_filters=[{"obj._id": ObjectId(oid)}],
                )
            )
        collection.bulk_write(ops, ordered=False)
        del ops, columns
    merged = {
        "$map": {
            "input": "$" + root,
            "as": "obj",
            "in": {
                "$cond": [
                    {"$eq": [{"$type": "$$obj." + STAGING_ATTR}, "missing"]},
                    "$$obj",
                    {
                        "$unsetField": {
                            "field": STAGING_ATTR,
                            "input": {"$mergeObjects": ["$$obj", "$$obj." + STAGING_ATTR]},
                        }
                    },
                ]
            },
        }
    }
    collection.update_many(
        {root + "." + STAGING_ATTR: {"$exists": True}},
        [{"$set": {root: merged, "last_modified_at": "$$NOW"}}],
    )
    _declare(dataset, root, fields)
    mirror_to_patches(view, label_field, ids, values_by_field, fields, batch_size)
    dataset.reload()
    return paths


def _declare(dataset, prefix, fields):
    for name, new in fields.items():
        path = prefix + "." + name
        if new is None or dataset.get_field(path) is not None:
            continue
        kwargs = {}
        if isinstance(new, fof.EmbeddedDocumentField):
            kwargs["embedded_doc_type"] = new.document_type
        dataset.add_sample_field(path, type(new), **kwargs)


def mirror_to_patches(view, label_field, ids, values_by_field, fields=None, batch_size=100_000):
    """Copies object values into the patches view's own (generated) dataset.

    FiftyOne backs a patches view by a generated dataset that it reuses for
    every view of the same patches (the App's, the SDK's) and does not
    regenerate when the source labels change; writing the same values there
    (keyed by patch id = label id) keeps those views current without
    regenerating them. The source dataset stays the record (written first).
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    patches = view._dataset
    if patches is view._root_dataset:
        return
    if fields is None:
        fields = {name: infer_field(values) for name, values in values_by_field.items()}
    collection = patches._sample_collection
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        columns = {}
        for name, values in values_by_field.items():
            if not hasattr(values, "__getitem__"):
                values = list(values)
            columns[name] = _to_mongo(fields[name], values[start:start + batch_size])
        ops = [
            UpdateOne(
                {"_id": ObjectId(oid)},
                {"$set": {label_field + "." + name: column[k] for name, column in columns.items()}},
            )
            for k, oid in enumerate(chunk)
        ]
        collection.bulk_write(ops, ordered=False)
    _declare(patches, label_field, fields)
    patches.reload()


def _discard_stages(collection, root):
    collection.update_many(
        {root + "." + STAGING_ATTR: {"$exists": True}},
        [
            {
                "$set": {
                    root: {
                        "$map": {
                            "input": "$" + root,
                            "as": "obj",
                            "in": {"$unsetField": {"field": STAGING_ATTR, "input": "$$obj"}},
                        }
                    }
                }
            }
        ],
    )


def tag_objects(view, label_field, ids, tag, replace=True):
    """Label tags: ``tag`` on the objects ``ids`` of a patches view (and, with
    ``replace``, removed from its other objects first). Uses FiftyOne's
    ``tag_labels``/``untag_labels``, which patches views sync to the dataset."""
    if replace:
        view.untag_labels(tag, label_fields=[label_field])
    ids = [str(i) for i in ids]
    if ids:
        view.select(ids).tag_labels(tag, label_fields=[label_field])
