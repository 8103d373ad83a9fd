"""Object labels on the shared data path: patches views of ``fo.Detection``.

A patches view (``dataset.to_patches("ground_truth")`` or the App's patches
button) has one item per object: its ``id`` is the Detection's id, its
``sample_id`` the image's, and ``ground_truth`` is the ``fo.Detection``
itself. Operators read it like a sample view (``ground_truth.label``,
``ground_truth.embeddings``: see :mod:`store.data`); this module holds
what differs:

- :func:`check_object_field` / :func:`check_objects`: which patches views are
  processed, and the per-object validation (label, box) done before anything
  is written;
- :func:`write_label_fields`: outputs written on the dataset's labels
  (``ground_truth.detections.<name>``), keyed by label id, staged then moved
  into place by one server-side update (the same all-or-nothing property as
  :func:`store.data.write_sample_fields`); a value :data:`ABSENT`
  removes the attribute (:func:`write_object_rows` does the writing);
- :func:`raw_objects`, :func:`snapshot_objects`, :func:`restore_objects`:
  objects as stored, for exact undo (review verdicts);
- :func:`tag_objects`: label tags;
- :func:`count_empty_samples`: images without objects (skipped and counted).
"""


import numpy as np

import fiftyone as fo

from .columns import ABSENT, declare_fields, field_kind, infer_field, to_mongo
from .errors import InputError

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


def write_label_fields(view, label_field, ids, values_by_field, batch_size=100_000):
    """Writes one value per object for each output, on the dataset's labels.

    ``values_by_field[name][i]`` goes to attribute ``name`` of the object
    ``ids[i]`` (a label id = patch id of ``view``), i.e. to
    ``<label_field>.detections.<name>`` of the root dataset; a value
    :data:`ABSENT` removes the attribute. See :func:`write_object_rows`
    for how (staged, then one server-side move). Objects not in ``ids`` are
    never touched. New attributes are declared on the dataset (so they show
    in the App's label filters and in the patches view as
    ``<label_field>.<name>``).

    Returns:
        the dataset paths written, e.g. ``["ground_truth.detections.noise_score"]``

    Raises:
        InputError: an id is not an object of ``view``, or an existing
            attribute holds another type of value (nothing is changed then)
    """
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
    sample_of = _sample_ids(view, ids)
    unknown = [i for i in ids if i not in sample_of]
    if unknown:
        raise InputError(
            "%d object id(s) are not in the target patches view (e.g. %s)"
            % (len(unknown), unknown[0])
        )
    fields = {name: infer_field(values) for name, values in values_by_field.items()}
    for name, new in fields.items():
        old = dataset.get_field(root + "." + name)
        if old is not None and new is not None and field_kind(old) != field_kind(new):
            raise InputError(
                "Attribute '%s.%s' already holds %s values; this run writes %s. "
                "Pass another output field or delete it first: "
                "dataset.delete_sample_field('%s.%s')"
                % (root, name, field_kind(old), field_kind(new), root, name)
            )

    def rows():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            columns = {}
            for name, values in values_by_field.items():
                if not hasattr(values, "__getitem__"):
                    values = list(values)
                columns[name] = to_mongo(fields[name], values[start:start + batch_size])
            for k, oid in enumerate(chunk):
                cells = {name: column[k] for name, column in columns.items()}
                yield (
                    sample_of[oid], oid,
                    {n: v for n, v in cells.items() if v is not ABSENT},
                    [n for n, v in cells.items() if v is ABSENT],
                )

    write_object_rows(dataset, label_field, rows(), mirror=view, fields=fields, batch_size=batch_size)
    return paths


def _sample_ids(view, ids):
    """``{object id: sample id}`` of the objects ``ids`` found in ``view``."""
    target = view.select(ids) if len(ids) <= 10_000 else view  # a $in of 10k ids at most
    patch_ids, sample_ids = target.values(["id", "sample_id"])
    return dict(zip(patch_ids, sample_ids))


def write_object_rows(dataset, label_field, rows, mirror=None, fields=None, batch_size=100_000):
    """Sets and removes attributes of objects, all or nothing per image.

    ``rows``: iterable of ``(sample id, object id, {attribute: value as
    stored}, [attributes to remove])``. The changes are first staged on
    each label (attribute ``_ln_staging``, by bulk writes keyed by sample id
    and label id); then one server-side update merges every staged change
    into its label and removes the stage (per image atomically). A process
    killed while staging leaves the objects as they were (the next write
    discards stale stages). The key order of an object is kept (a set
    attribute stays in place, a new one is appended), so removing what was
    added gives back the same document. ``fields`` (``{attribute: field}``)
    are declared on the dataset when new; ``mirror``: the patches view
    whose generated dataset gets the same changes (:func:`mirror_to_patches`).
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    root = label_list_root(dataset, label_field)
    collection = dataset._sample_collection
    _discard_stages(collection, root)  # left over by a killed write
    stage = root + ".$[obj]." + STAGING_ATTR
    mirrored = []
    batch = []

    def flush():
        if batch:
            collection.bulk_write(batch, ordered=False)
            batch.clear()

    for sid, oid, values, removed in rows:
        staged = dict(values)
        if removed:
            staged[_UNSET_KEY] = list(removed)
        batch.append(UpdateOne(
            {"_id": ObjectId(sid)}, {"$set": {stage: staged}},
            array_filters=[{"obj._id": ObjectId(oid)}],
        ))
        if mirror is not None:
            mirrored.append((oid, values, removed))
        if len(batch) >= batch_size:
            flush()
    flush()
    merged = {"$mergeObjects": ["$$obj", "$$obj." + STAGING_ATTR]}
    dropped = {"$concatArrays": [
        [STAGING_ATTR, _UNSET_KEY], {"$ifNull": ["$$obj.%s.%s" % (STAGING_ATTR, _UNSET_KEY), []]},
    ]}
    collection.update_many(
        {root + "." + STAGING_ATTR: {"$exists": True}},
        [{"$set": {
            root: {"$map": {
                "input": "$" + root,
                "as": "obj",
                "in": {"$cond": [
                    {"$eq": [{"$type": "$$obj." + STAGING_ATTR}, "missing"]},
                    "$$obj",
                    {"$arrayToObject": {"$filter": {
                        "input": {"$objectToArray": merged},
                        "as": "kv",
                        "cond": {"$not": [{"$in": ["$$kv.k", dropped]}]},
                    }}},
                ]},
            }},
            "last_modified_at": "$$NOW",
        }}],
    )
    if fields:
        declare_fields(dataset, root, fields)
    if mirror is not None:
        mirror_to_patches(mirror, label_field, mirrored, fields, batch_size)
    dataset.reload()


#: key of a staged change that lists the attributes to remove
_UNSET_KEY = "_ln_unset"


def mirror_to_patches(view, label_field, rows, fields=None, batch_size=100_000):
    """Copies object changes into the patches view's own (generated) dataset.

    FiftyOne backs a patches view by a generated dataset that it reuses for
    every view of the same patches (the App's, the SDK's) and does not
    regenerate when the source labels change; writing the same values there
    (keyed by patch id = label id) keeps those views current without
    regenerating them. The source dataset stays the record (written first).
    ``rows``: ``(object id, {attribute: value as stored}, [removed])``.
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    patches = view._dataset
    if patches is view._root_dataset or not is_patches(view):
        return
    collection = patches._sample_collection
    ops = []
    for oid, values, removed in rows:
        update = {}
        if values:
            update["$set"] = {label_field + "." + n: v for n, v in values.items()}
        if removed:
            update["$unset"] = {label_field + "." + n: "" for n in removed}
        if update:
            ops.append(UpdateOne({"_id": ObjectId(oid)}, update))
        if len(ops) >= batch_size:
            collection.bulk_write(ops, ordered=False)
            ops = []
    if ops:
        collection.bulk_write(ops, ordered=False)
    if fields:
        declare_fields(patches, label_field, fields)
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


def raw_objects(dataset, label_field, ids, names=None):
    """The objects ``ids`` as stored: ``{object id: (sample id, document)}``.

    ``names``: keep only these attributes of each document (default all).
    Reads the root dataset directly (no patches view needed); ids not found
    are left out.
    """
    from bson import ObjectId

    root = label_list_root(dataset._root_dataset, label_field)
    wanted = {ObjectId(str(i)) for i in ids}
    out = {}
    if not wanted:
        return out
    pipeline = [
        {"$match": {root + "._id": {"$in": list(wanted)}}},
        {"$project": {root: 1}},
    ]
    for doc in dataset._root_dataset._sample_collection.aggregate(pipeline):
        value = doc
        for part in root.split("."):
            value = (value or {}).get(part)
        for obj in value or ():
            if obj.get("_id") in wanted:
                kept = obj if names is None else {n: obj[n] for n in names if n in obj}
                out[str(obj["_id"])] = (str(doc["_id"]), kept)
    return out


def tag_objects(view, label_field, ids, tag, replace=True):
    """Label tags: ``tag`` on the objects ``ids`` of a patches view (and, with
    ``replace``, removed from its other objects first). Uses FiftyOne's
    ``tag_labels``/``untag_labels``, which patches views sync to the dataset."""
    if replace:
        view.untag_labels(tag, label_fields=[label_field])
    ids = [str(i) for i in ids]
    if ids:
        view.select(ids).tag_labels(tag, label_fields=[label_field])


def snapshot_objects(dataset, label_field, ids, names):
    """The attributes ``names`` of the objects ``ids`` as stored, for an undo
    log: a canonical extended-JSON string (BSON types kept exactly) of
    ``{"names": names, "objects": {id: [sample id, {name: value}]}}``;
    attributes an object lacks are left out."""
    from bson import json_util
    from bson.json_util import CANONICAL_JSON_OPTIONS

    raw = raw_objects(dataset, label_field, ids, names=names)
    return json_util.dumps(
        {"names": list(names), "objects": {oid: [sid, doc] for oid, (sid, doc) in raw.items()}},
        json_options=CANONICAL_JSON_OPTIONS,
    )


def restore_objects(dataset, label_field, snapshot, mirror=None):
    """Writes a :func:`snapshot_objects` back: the stored values, and the
    attributes an object lacked then are removed, so each object's document
    is as it was (``mirror``: a patches view to keep current)."""
    from bson import json_util
    from bson.json_util import CANONICAL_JSON_OPTIONS

    before = json_util.loads(snapshot, json_options=CANONICAL_JSON_OPTIONS)
    names = before["names"]
    rows = [
        (sid, oid, {n: doc[n] for n in names if n in doc}, [n for n in names if n not in doc])
        for oid, (sid, doc) in before["objects"].items()
    ]
    write_object_rows(dataset, label_field, rows, mirror=mirror)
