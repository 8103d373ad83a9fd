"""Label corrections that can always be reverted (shared by review workflows).

Every workflow that changes a user's labels goes through
:func:`apply_corrections`, and :func:`revert_corrections` undoes them. For a
label field ``F`` (an ``fo.Classification`` field) the bookkeeping is:

- ``F_original``: a full copy of the sample's ``F`` label as it was *before
  its first correction*. It is written once and never overwritten by later
  corrections, so the true original survives repeated corrections.
- ``F_correction``: the record of the latest correction, an embedded document
  with ``source`` (who changed it, e.g. ``"dupes"``), ``previous`` (the label
  just before this correction), ``label`` (the label set), ``count`` (number
  of corrections applied to the sample so far) and ``at`` (UTC time).
  A sample is "corrected" exactly when this field is set.

Only ``F.label`` is changed in place (the label's id, tags and other
attributes are kept; ``confidence`` and ``logits`` are cleared because they
belonged to the old label). Reverting restores the full copy from
``F_original`` and unsets both bookkeeping fields.
"""

from .clock import utc_now
from .data import InputError, check_label_field


def original_field(label_field):
    """Name of the field keeping the pre-correction labels of ``label_field``."""
    return label_field + "_original"


def correction_field(label_field):
    """Name of the field recording the latest correction of ``label_field``."""
    return label_field + "_correction"


def apply_corrections(dataset, ids, new_labels, label_field="ground_truth", source="manual"):
    """Sets new class labels, keeping the originals and a correction record.

    Args:
        dataset: the root dataset (or any collection of it)
        ids: sample ids to relabel
        new_labels: class names (non-empty str), aligned with ``ids``
        label_field ("ground_truth"): the ``fo.Classification`` field to edit
        source ("manual"): who made the change, stored in the record

    Returns:
        a dict: ``num_corrected`` (samples whose label changed),
        ``num_unchanged`` (already had that label; nothing written for them)

    Raises:
        InputError: before anything is written, when the field is not a
            classification field, an id is unknown, a label is not a
            non-empty string, or an id is given twice with different labels
    """
    import fiftyone as fo

    dataset = dataset._root_dataset
    ids = [str(i) for i in ids]
    new_labels = list(new_labels)
    if len(ids) != len(new_labels):
        raise InputError(
            "apply_corrections got %d ids but %d labels" % (len(ids), len(new_labels))
        )
    check_label_field(dataset, label_field)
    for name in (original_field(label_field), correction_field(label_field)):
        if name in dataset.get_field_schema() and _field_kind(dataset, name) is None:
            raise InputError(
                "Field '%s' exists but is not a label-correction field; rename "
                "or delete it before correcting '%s'" % (name, label_field)
            )
    wanted = {}
    for sid, label in zip(ids, new_labels):
        if not isinstance(label, str) or not label:
            raise InputError(
                "New label for sample %s must be a non-empty class name, got %r"
                % (sid, label)
            )
        if wanted.get(sid, label) != label:
            raise InputError(
                "Sample %s is given two different new labels ('%s' and '%s')"
                % (sid, wanted[sid], label)
            )
        wanted[sid] = label
    if not wanted:
        return {"num_corrected": 0, "num_unchanged": 0}
    view = dataset.select(list(wanted))
    if len(view) != len(wanted):
        found = set(view.values("id"))
        missing = [s for s in wanted if s not in found]
        raise InputError(
            "%d sample id(s) are not in dataset '%s' (e.g. %s)"
            % (len(missing), dataset.name, missing[0])
        )

    orig_name = original_field(label_field)
    corr_name = correction_field(label_field)
    has_record = corr_name in dataset.get_field_schema()
    paths = ["id", label_field] + ([corr_name] if has_record else [])
    columns = view.values(paths)
    current = dict(zip(columns[0], columns[1]))
    records = dict(zip(columns[0], columns[2])) if has_record else {}

    now = utc_now()
    originals, new_values, new_records = {}, {}, {}
    unchanged = 0
    for sid, label in wanted.items():
        old = current[sid]
        old_label = old.label if old is not None else None
        if old_label == label:
            unchanged += 1
            continue
        record = records.get(sid)
        if record is None:  # first correction: keep the true original
            originals[sid] = old.copy() if old is not None else None
            if old is not None:  # copy() draws a new id; keep it for exact undo
                originals[sid].id = old.id
        count = (getattr(record, "count", 0) or 0) + 1 if record is not None else 1
        if old is None:
            new_values[sid] = fo.Classification(label=label)
        else:
            updated = old.copy()
            updated.id = old.id
            updated.label = label
            updated.confidence = None
            updated.logits = None
            new_values[sid] = updated
        new_records[sid] = fo.DynamicEmbeddedDocument(
            source=str(source), previous=old_label, label=label, count=count, at=now
        )
    if originals:
        _ensure_field(dataset, orig_name, fo.Classification)
        dataset.set_values(orig_name, originals, key_field="id", validate=False)
    if new_values:
        dataset.set_values(label_field, new_values, key_field="id", validate=False)
        _ensure_field(dataset, corr_name, fo.DynamicEmbeddedDocument)
        dataset.set_values(corr_name, new_records, key_field="id", validate=False)
        dataset.add_dynamic_sample_fields(fields=[corr_name])
    return {"num_corrected": len(new_values), "num_unchanged": unchanged}


def revert_corrections(dataset, label_field="ground_truth", ids=None, source=None):
    """Restores the original labels of corrected samples.

    Args:
        dataset: the root dataset (or any collection of it)
        label_field ("ground_truth"): the corrected field
        ids (None): only these samples (default: every corrected sample)
        source (None): only corrections whose latest record has this source

    Returns:
        a dict: ``num_reverted`` and the ``ids`` that were reverted
    """
    dataset = dataset._root_dataset
    orig_name = original_field(label_field)
    corr_name = correction_field(label_field)
    if corr_name not in dataset.get_field_schema():
        return {"num_reverted": 0, "ids": []}
    view = dataset.exists(corr_name)
    if source is not None:
        view = view.match(_source_expr(corr_name, source))
    if ids is not None:
        view = view.select([str(i) for i in ids])
    sample_ids, originals = view.values(["id", orig_name])
    if not sample_ids:
        return {"num_reverted": 0, "ids": []}
    dataset.set_values(label_field, dict(zip(sample_ids, originals)), key_field="id", validate=False)
    dataset.set_values(orig_name, {s: None for s in sample_ids}, key_field="id")
    dataset.set_values(corr_name, {s: None for s in sample_ids}, key_field="id")
    return {"num_reverted": len(sample_ids), "ids": list(sample_ids)}


def corrected_ids(dataset, label_field="ground_truth", source=None):
    """Ids of the samples with a correction record (optionally of ``source``)."""
    corr_name = correction_field(label_field)
    if corr_name not in dataset.get_field_schema():
        return []
    view = dataset.exists(corr_name)
    if source is not None:
        view = view.match(_source_expr(corr_name, source))
    return view.values("id")


def _source_expr(corr_name, source):
    from fiftyone import ViewField as F

    return F(corr_name + ".source") == source


def _ensure_field(dataset, name, doc_type):
    import fiftyone as fo

    if name not in dataset.get_field_schema():
        dataset.add_sample_field(
            name, fo.EmbeddedDocumentField, embedded_doc_type=doc_type
        )


def _field_kind(dataset, name):
    import fiftyone as fo

    field_ = dataset.get_field_schema()[name]
    doc_type = getattr(field_, "document_type", None)
    if doc_type is None:
        return None
    if issubclass(doc_type, (fo.Classification, fo.DynamicEmbeddedDocument)):
        return doc_type
    return None


# ------------------------------------------------------------------ objects
#
# On a patches view of fo.Detection objects the bookkeeping is kept on each
# corrected object (the dataset's ``<F>.detections.<attribute>``, shown in the
# patches view as ``<F>.<attribute>``): ``label_original`` (the class before
# its first correction, never overwritten), and the record of the latest
# correction: ``correction_source``, ``correction_previous``,
# ``correction_count``, ``corrected_at``. Only ``label`` changes (box, id,
# tags, confidence and other attributes are kept); an object is "corrected"
# exactly when ``correction_source`` is set. Revert restores ``label`` from
# ``label_original`` and removes the bookkeeping attributes, so the object's
# document is the same as before its first correction. All writes
# go through :func:`store.objects.write_label_fields` (staged, bulk).

OBJECT_ORIGINAL = "label_original"
OBJECT_RECORD = ("correction_source", "correction_previous", "correction_count", "corrected_at")


def apply_object_corrections(view, ids, new_labels, label_field="ground_truth", source="manual"):
    """:func:`apply_corrections` for the objects ``ids`` of a patches view.

    Returns:
        a dict: ``num_corrected``, ``num_unchanged``

    Raises:
        InputError: before anything is written (as :func:`apply_corrections`)
    """
    from . import data as lnd
    from . import objects as lno

    check_label_field(view, label_field)
    wanted = _wanted_labels(ids, new_labels, "object")
    if not wanted:
        return {"num_corrected": 0, "num_unchanged": 0}
    names = ["label", OBJECT_ORIGINAL, "correction_source", "correction_count"]
    schema = lnd.output_schema(view, label_field)
    current = lnd.read_outputs(
        view, label_field, [n for n in names if n == "label" or n in schema], ids=list(wanted)
    )
    labels = current["label"]
    missing = [oid for oid, lab in zip(wanted, labels) if lab is None]
    known = set(lnd.read_outputs(view, label_field, [], ids=None)["id"]) if missing else set()
    unknown = [oid for oid in missing if oid not in known]
    if unknown:
        raise InputError(
            "%d object id(s) are not in the target patches view (e.g. %s)"
            % (len(unknown), unknown[0])
        )
    originals = current.get(OBJECT_ORIGINAL, [None] * len(wanted))
    sources = current.get("correction_source", [None] * len(wanted))
    counts = current.get("correction_count", [None] * len(wanted))
    now = utc_now()
    out = {k: [] for k in ("id", "label", OBJECT_ORIGINAL) + OBJECT_RECORD}
    unchanged = 0
    for k, (oid, label) in enumerate(wanted.items()):
        old = labels[k]
        if old == label:
            unchanged += 1
            continue
        first = sources[k] is None
        out["id"].append(oid)
        out["label"].append(label)
        out[OBJECT_ORIGINAL].append(old if first else originals[k])
        out["correction_source"].append(str(source))
        out["correction_previous"].append(old)
        out["correction_count"].append(1 if first else int(counts[k] or 0) + 1)
        out["corrected_at"].append(now)
    if out["id"]:
        changed = out.pop("id")
        lno.write_label_fields(view, label_field, changed, out)
    return {"num_corrected": len(out["label"]), "num_unchanged": unchanged}


def corrected_objects(view, label_field="ground_truth", source=None):
    """The corrected objects of a patches view (optionally by ``source``)."""
    from fiftyone import ViewField as F

    from . import data as lnd

    if "correction_source" not in lnd.output_schema(view, label_field):
        return view.limit(0)
    path = label_field + ".correction_source"
    out = view.exists(path)
    if source is not None:
        out = out.match(F(path) == source)
    return out


def revert_object_corrections(view, label_field="ground_truth", ids=None, source=None):
    """Restores the original class of the corrected objects of a patches view.

    Returns:
        a dict: ``num_reverted`` and the object ``ids`` that were reverted
    """
    from . import objects as lno

    corrected = corrected_objects(view, label_field, source)
    if ids is not None:
        corrected = corrected.select([str(i) for i in ids])
    object_ids, originals = corrected.values(["id", label_field + "." + OBJECT_ORIGINAL])
    if not object_ids:
        return {"num_reverted": 0, "ids": []}
    values = {"label": list(originals)}
    for name in (OBJECT_ORIGINAL,) + OBJECT_RECORD:  # removed: the object as it was
        values[name] = [lno.ABSENT] * len(object_ids)
    lno.write_label_fields(view, label_field, object_ids, values)
    return {"num_reverted": len(object_ids), "ids": list(object_ids)}


def _wanted_labels(ids, new_labels, what="sample"):
    ids = [str(i) for i in ids]
    new_labels = list(new_labels)
    if len(ids) != len(new_labels):
        raise InputError("got %d ids but %d labels" % (len(ids), len(new_labels)))
    wanted = {}
    for sid, label in zip(ids, new_labels):
        if not isinstance(label, str) or not label:
            raise InputError(
                "New label for %s %s must be a non-empty class name, got %r" % (what, sid, label)
            )
        if wanted.get(sid, label) != label:
            raise InputError(
                "%s %s is given two different new labels ('%s' and '%s')"
                % (what.capitalize(), sid, wanted[sid], label)
            )
        wanted[sid] = label
    return wanted
