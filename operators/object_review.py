"""Review verdicts and audits on objects (a patches view of fo.Detection).

The object path of :mod:`operators.review`: the same verdicts, undo log
and audits, with the state kept on each object instead of the sample
(attributes of ``<field>.detections``, shown as ``<field>.<attribute>`` in
the patches view):

- ``label_verified`` (bool): True = the class is right, False = it was wrong;
- ``label_review``: the verdict record (verdict, label, given, mode, seq, at);
- a correction changes only the object's ``label``, with the original in
  ``label_original`` and the record in ``correction_*`` (see
  :func:`operators.corrections.apply_object_corrections`).

Before a verdict writes anything, the undo log gets each touched
attribute of each object *as stored* (BSON types kept through canonical
extended JSON) and the list of those it lacked; undo writes the stored
values back and removes the attributes the verdict added, so each object's
document is the same, byte for byte, as before the verdict.
"""

from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

import fiftyone as fo
import fiftyone.core.fields as fof

from . import corrections as lnc
from . import objects as lno
from .data import InputError, check_label_field, output_schema, read_outputs


def touched_attributes(verified_field, review_field):
    """Every attribute a verdict may write on an object."""
    return ["label", lnc.OBJECT_ORIGINAL] + list(lnc.OBJECT_RECORD) + [verified_field, review_field]


def check_object_review(view, label_field, ids, verified_field, review_field):
    """Validates a verdict on objects before anything is written.

    Returns:
        ``{object id: given class}`` of ``ids``

    Raises:
        InputError: an id is not an object of the view, or the verified /
            review attribute already holds another type of value
    """
    check_label_field(view, label_field)
    given = dict(zip(*view.select(ids).values(["id", label_field + ".label"])))
    missing = [i for i in ids if i not in given]
    if missing:
        raise InputError(
            "Object %s is not in the target patches view of '%s'" % (missing[0], label_field)
        )
    schema = output_schema(view, label_field)
    for name, ok in ((verified_field, fof.BooleanField), (review_field, fof.EmbeddedDocumentField)):
        f = schema.get(name)
        if f is not None and not isinstance(f, ok):
            raise InputError(
                "Attribute '%s.%s' exists and is a %s; rename it before reviewing"
                % (label_field, name, type(f).__name__)
            )
    # undeclared (dynamic) attributes of the same names: checked as stored
    stored = lno.raw_objects(view._root_dataset, label_field, ids, [verified_field, review_field])
    for oid, (_, doc) in stored.items():
        for name, ok in ((verified_field, bool), (review_field, dict)):
            if doc.get(name) is not None and not isinstance(doc[name], ok):
                raise InputError(
                    "Object %s has an attribute '%s' holding %r (not a review "
                    "value); rename it before reviewing" % (oid, name, doc[name])
                )
    return given


def suggested_classes(view, label_field, ids, suggestion_field):
    """The suggested class of each object (``<field>.<suggestion_field>``)."""
    schema = output_schema(view, label_field)
    f = schema.get(suggestion_field) if suggestion_field else None
    if f is None:
        raise InputError(
            "Suggestion attribute '%s.%s' does not exist: run compute_noise_score "
            "(or find_label_issues) on the patches view first, or pick another class"
            % (label_field, suggestion_field)
        )
    name = suggestion_field + ".label" if getattr(f, "document_type", None) else suggestion_field
    return read_outputs(view, label_field, [name], ids=ids)[name]


def snapshot_objects(dataset, label_field, ids, names):
    """The attributes ``names`` of the objects ``ids`` as stored, for the
    undo log: a canonical extended-JSON string of ``{id: [sample id, {name:
    value}]}`` (absent attributes are left out)."""
    raw = lno.raw_objects(dataset, label_field, ids, names=names)
    return json_util.dumps(
        {oid: [sid, doc] for oid, (sid, doc) in raw.items()}, json_options=CANONICAL_JSON_OPTIONS
    )


def write_object_verdict(view, label_field, ids, targets, records, verified, source,
                         verified_field, review_field):
    """The writes of one verdict: corrections (``targets``: id -> class),
    then ``verified`` (id -> bool) and the review ``records`` (id -> doc).

    Returns:
        the number of objects whose class changed
    """
    num_corrected = 0
    if targets:
        result = lnc.apply_object_corrections(
            view, list(targets), list(targets.values()), label_field, source=source
        )
        num_corrected = result["num_corrected"]
    if verified:
        lno.write_label_fields(view, label_field, list(verified), {verified_field: list(verified.values())})
    lno.write_label_fields(view, label_field, ids, {review_field: [records[i] for i in ids]})
    _declare_record(view, label_field, review_field)
    return num_corrected


def _declare_record(view, label_field, review_field):
    """Declares the record's own attributes (verdict, label...) so the App
    can filter the patches by verdict."""
    root = lno.label_list_root(view._root_dataset, label_field)
    try:
        view._root_dataset.add_dynamic_sample_fields(fields=[root + "." + review_field])
    except Exception:  # older FiftyOne: the record stays undeclared inside
        pass


def restore_objects(target, entry):
    """Writes back the attributes of an undo-log entry of objects (see the
    module docstring); ``target``: the dataset or a patches view to keep
    current (the App's)."""
    dataset = target._root_dataset
    label_field = entry["label_field"]
    names = list(entry["fields"])
    before = json_util.loads(entry["before"], json_options=CANONICAL_JSON_OPTIONS)
    rows = [
        (sid, oid, {n: doc[n] for n in names if n in doc}, [n for n in names if n not in doc])
        for oid, (sid, doc) in before.items()
    ]
    patches = lno.is_patches(target) and label_field in (target._label_fields or ())
    lno.write_object_rows(dataset, label_field, rows, mirror=target if patches else None)


def audit_rows(dataset, label_field, ids, verified_field, review_field):
    """``{object id: (verified, verdict, given class)}`` of audited objects
    (given = the class before any correction)."""
    names = ["label", lnc.OBJECT_ORIGINAL, verified_field, review_field]
    out = {}
    for oid, (_, doc) in lno.raw_objects(dataset, label_field, ids, names=names).items():
        review = doc.get(review_field) or {}
        given = doc.get(lnc.OBJECT_ORIGINAL) or doc.get("label")
        out[oid] = (doc.get(verified_field), review.get("verdict"), given)
    return out


def review_record(**values):
    """The ``label_review`` document of one object."""
    return fo.DynamicEmbeddedDocument(**values)
