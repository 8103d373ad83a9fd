"""Verdicts from a human reviewer, each undoable, on samples or objects.

A reviewer looking at an item (a sample, or an object of a patches view)
decides one of :data:`VERDICTS`:

- ``correct``: the label is right -> ``label_verified = True``;
- ``suggestion``: the suggested label (``suggested_label`` by default) is
  right -> the label is corrected through :mod:`store.corrections`
  (original kept in ``<label>_original``, record in ``<label>_correction``;
  on objects ``label_original`` and the ``correction_*`` attributes) and
  ``label_verified = False`` (the *given* label was wrong);
- ``relabel``: another class is right -> same as ``suggestion`` with that
  class;
- ``skip``: no decision (the item leaves the review queue);
- ``ambiguous``: the image plausibly shows two classes; the label stays,
  ``label_verified`` is cleared (neither right nor wrong: re-score trains on
  it with its usual weight), and the second class, when given (or the
  suggestion when it differs from the label), is recorded in
  ``label_alternatives`` (an ``fo.Classifications``; objects: the attribute
  ``review_alternative``);
- ``exclude``: no class of the dataset fits (an outlier, background); the
  label stays, ``label_verified`` is cleared, the item is left out of the
  clean export (``excluded/``) and out of the label-quality training at
  re-score.

The last two are marked by their review record (``label_review.verdict``,
objects ``review_verdict``), which is what the export, the audit and
re-score read (:func:`excluded_ids`).

Every verdict also writes a review record (samples: the embedded document
``label_review`` with verdict, label, given, mode, seq, time; objects: the
attributes ``review_verdict``, ``review_mode``, ``review_seq``,
``review_at``), which is how review and audit progress is counted and
resumed, and pushes an entry on an **undo log** kept in a FiftyOne execution
store (``label_noise_review``, scoped to the dataset): the exact values of
every field the verdict touched, before it touched them.
:func:`undo_verdicts` pops the latest entry and writes those values back, so
labels (ids included), the correction bookkeeping, the verification and the
review record are as they were.

Audits (uniform random samples whose verdicts estimate the share of wrong
labels) are in :mod:`store.audit`.
"""

import fiftyone as fo
import fiftyone.core.fields as fof

from . import corrections as lnc
from .clock import utc_now
from .data import InputError, check_label_field, output_schema, read_outputs
from .objects import is_patches, restore_objects, snapshot_objects, write_label_fields

VERDICTS = ("correct", "suggestion", "relabel", "skip", "ambiguous", "exclude")
#: verdicts that say the label is neither right nor wrong
NEITHER = ("ambiguous", "exclude")
REVIEW_FIELD = "label_review"
#: the second plausible class of an ambiguous sample (fo.Classifications)
ALTERNATIVES_FIELD = "label_alternatives"
#: ... of an ambiguous object (a string attribute)
OBJECT_ALTERNATIVE = "review_alternative"
VERIFIED_FIELD = "label_verified"
#: the review record of an object (flat attributes: objects hold no documents)
OBJECT_REVIEW = ("review_verdict", "review_mode", "review_seq", "review_at")
#: key of an undo-log snapshot of objects as stored
OBJECTS_BEFORE = "objects_as_stored"
STORE_NAME = "label_noise_review"
SOURCE = "review"
_UNDO_PREFIX = "undo:"
_QUEUE_KEY = "queue"
#: the most items a review queue keeps (ids live in one store document)
MAX_QUEUE = 5000


def review_store(dataset):
    """The dataset's execution store of this plugin's review state."""
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(STORE_NAME, dataset._root_dataset._doc.id)


# ------------------------------------------------------------------- items


class Items:
    """The reviewed items of ``label_field``: the samples of a dataset, or
    the objects of a patches view (``collection`` a patches view of
    ``label_field``, or ``objects=True`` to build one of the dataset).

    Reads and writes go through the shared data path
    (:func:`store.data.read_outputs`, the correction bookkeeping of
    :mod:`store.corrections`, :func:`store.objects.write_label_fields`).
    Logical names: ``given`` (the current class), ``original`` (the class
    before the first correction), ``verified``, ``verdict`` (review record),
    ``suggestion`` (the class a suggestion field proposes).
    """

    def __init__(self, collection, label_field, objects=None):
        self.label_field = label_field
        self.dataset = collection._root_dataset
        if objects is None:
            objects = is_patches(collection)
        self.objects = bool(objects)
        if not self.objects:
            self.view = self.dataset
        elif is_patches(collection) and label_field in (collection._label_fields or ()):
            self.view = collection._base_view  # the App's patches, all of them
        else:
            self.view = self.dataset.to_patches(label_field)

    # names of the fields / attributes one verdict may touch
    def fields(self):
        if self.objects:
            return ["label", lnc.OBJECT_ORIGINAL, *lnc.OBJECT_RECORD, VERIFIED_FIELD, *OBJECT_REVIEW,
                    OBJECT_ALTERNATIVE]
        lf = self.label_field
        return [lf, lnc.original_field(lf), lnc.correction_field(lf), VERIFIED_FIELD, REVIEW_FIELD,
                ALTERNATIVES_FIELD]

    def schema(self):
        if self.objects:
            return output_schema(self.view, self.label_field)
        return self.dataset.get_field_schema()

    def path(self, name, suggestion_field=None):
        """The readable path of a logical name (see class docstring)."""
        if self.objects:
            paths = dict(given="label", original=lnc.OBJECT_ORIGINAL,
                         verified=VERIFIED_FIELD, verdict="review_verdict")
        else:
            lf = self.label_field
            paths = dict(given=lf + ".label", original=lnc.original_field(lf) + ".label",
                         verified=VERIFIED_FIELD, verdict=REVIEW_FIELD + ".verdict")
        if name == "suggestion":
            f = self.schema().get(suggestion_field)
            doc = getattr(f, "document_type", None)
            return suggestion_field + ".label" if doc is not None else suggestion_field
        return paths[name]

    def select(self, ids):
        return self.view.select([str(i) for i in ids])

    def read(self, ids, names, suggestion_field=None):
        """``{name: [value per id]}`` (None where the field does not exist)."""
        ids = [str(i) for i in ids]
        schema = self.schema()
        wanted = {n: self.path(n, suggestion_field) for n in names}
        present = {n: p for n, p in wanted.items() if p and p.split(".")[0] in schema}
        out = {n: [None] * len(ids) for n in names}
        if present and ids:
            if self.objects:
                got = read_outputs(self.select(ids), self.label_field, list(present.values()), ids=ids)
                out.update({n: got[p] for n, p in present.items()})
            else:
                columns = self.select(ids).values(["id"] + list(present.values()))
                row = {sid: k for k, sid in enumerate(columns[0])}
                for j, n in enumerate(present):
                    col = columns[j + 1]
                    out[n] = [col[row[i]] if i in row else None for i in ids]
        return out

    def found(self, ids):
        return set(self.select(ids).values("id"))

    def snapshot(self, ids):
        """The current value of every field a verdict touches, storable.

        Objects: each touched attribute as stored, absent ones left out
        (:func:`store.objects.snapshot_objects`), so :meth:`restore`
        gives back each object's document byte for byte."""
        if self.objects:
            return {OBJECTS_BEFORE: snapshot_objects(self.dataset, self.label_field, ids, self.fields())}
        schema = self.schema()
        present = [f for f in self.fields() if f in schema]
        values = {f: [None] * len(ids) for f in self.fields()}
        if present:
            if self.objects:
                got = read_outputs(self.select(ids), self.label_field, present, ids=ids)
            else:
                columns = self.select(ids).values(["id"] + present)
                row = {sid: k for k, sid in enumerate(columns[0])}
                got = {f: [columns[j + 1][row[i]] for i in ids] for j, f in enumerate(present)}
            for f in present:
                values[f] = [v.to_dict() if hasattr(v, "to_dict") else v for v in got[f]]
        return values

    def restore(self, ids, before):
        """Writes a :meth:`snapshot` back."""
        if self.objects and OBJECTS_BEFORE in before:
            mirror = self.view if is_patches(self.view) else None
            restore_objects(self.dataset, self.label_field, before[OBJECTS_BEFORE], mirror)
            return
        schema = self.schema()
        if self.objects:  # an entry logged before snapshots kept objects as stored
            kept = {f: vals for f, vals in before.items() if f in schema or any(v is not None for v in vals)}
            if kept:
                write_label_fields(self.select(ids), self.label_field, ids, kept)
            return
        for f, vals in before.items():
            if f not in schema:
                continue
            self.dataset.set_values(
                f, {sid: _restore(v) for sid, v in zip(ids, vals)}, key_field="id", validate=False
            )

    def correct(self, ids, labels):
        if self.objects:
            return lnc.apply_object_corrections(
                self.select(ids), ids, labels, self.label_field, source=SOURCE
            )
        return lnc.apply_corrections(self.dataset, ids, labels, self.label_field, source=SOURCE)

    def write(self, values_by_id):
        """``{field: {id: value}}``: verification and review records."""
        for name, values in values_by_id.items():
            if not values:
                continue
            ids = list(values)
            if self.objects:
                write_label_fields(self.select(ids), self.label_field, ids, {name: list(values.values())})
                continue
            if name == REVIEW_FIELD and REVIEW_FIELD not in self.dataset.get_field_schema():
                self.dataset.add_sample_field(
                    REVIEW_FIELD, fof.EmbeddedDocumentField,
                    embedded_doc_type=fo.DynamicEmbeddedDocument,
                )
            if name == ALTERNATIVES_FIELD and name not in self.dataset.get_field_schema():
                self.dataset.add_sample_field(
                    name, fof.EmbeddedDocumentField, embedded_doc_type=fo.Classifications,
                )
            self.dataset.set_values(name, values, key_field="id", validate=False)
            if name == REVIEW_FIELD:
                self.dataset.add_dynamic_sample_fields(fields=[REVIEW_FIELD])

    def check_writable(self):
        """Refuses fields of the wrong type before anything is written."""
        schema = self.schema()
        wanted = {VERIFIED_FIELD: (fof.BooleanField,)}
        if not self.objects:
            wanted[REVIEW_FIELD] = (fof.EmbeddedDocumentField,)
            wanted[ALTERNATIVES_FIELD] = (fof.EmbeddedDocumentField,)
        for name, ok in wanted.items():
            f = schema.get(name)
            if f is not None and not isinstance(f, ok):
                where = "%s.%s" % (self.label_field, name) if self.objects else name
                raise InputError(
                    "Field '%s' exists and is a %s; rename it before reviewing"
                    % (where, type(f).__name__)
                )


def _restore(value):
    if not isinstance(value, dict):
        return value
    if value.get("_cls") == "Classification":
        return fo.Classification.from_dict(value)
    if value.get("_cls") == "Classifications":
        return fo.Classifications.from_dict(value)
    return fo.DynamicEmbeddedDocument.from_dict(value)


def items_for(collection, label_field):
    """:class:`Items` of ``collection`` after checking ``label_field``."""
    check_label_field(collection, label_field)
    return Items(collection, label_field)


# ------------------------------------------------------------------ verdicts


def _undo_keys(store):
    keys = [k for k in store.list_keys() if k.startswith(_UNDO_PREFIX)]
    return sorted(keys, key=lambda k: int(k[len(_UNDO_PREFIX):]))


def record_verdict(
    collection,
    ids,
    verdict,
    label_field="ground_truth",
    new_label=None,
    suggestion_field="suggested_label",
    mode="review",
    alternative=None,
):
    """Records one reviewer decision for ``ids`` (see module docstring).

    Args:
        collection: the dataset (or any view of it: samples are reviewed),
            or a patches view (its objects are reviewed)
        ids: sample ids, or object ids on a patches view (usually one)
        verdict: one of :data:`VERDICTS`
        label_field ("ground_truth"): the ``fo.Classification`` labels, or
            the patches field
        new_label (None): the class, for ``verdict="relabel"``
        suggestion_field ("suggested_label"): for ``verdict="suggestion"``
        mode ("review"): ``review`` or ``audit`` (stored in the record)
        alternative (None): for ``verdict="ambiguous"``, the second
            plausible class (default: the suggestion, where it differs from
            the label)

    Returns:
        a dict: ``verdict``, ``num_samples``, ``num_corrected``, ``seq``
        (the undo log entry), ``ids``

    Raises:
        InputError: before anything is written, for an unknown verdict or
            id, a missing suggestion or class
    """
    items = items_for(collection, label_field)
    what = "object" if items.objects else "sample"
    ids = [str(i) for i in dict.fromkeys(ids)]
    if verdict not in VERDICTS:
        raise InputError("verdict must be one of %s, got %r" % (VERDICTS, verdict))
    if not ids:
        raise InputError("No %s to review: select %ss (or pass a view) first" % (what, what))
    found = items.found(ids)
    if len(found) != len(ids):
        missing = [i for i in ids if i not in found]
        raise InputError("%s %s is not in dataset '%s'" % (what.capitalize(), missing[0], items.dataset.name))
    items.check_writable()
    given = dict(zip(ids, items.read(ids, ["given"])["given"]))
    targets = {}
    if verdict == "suggestion":
        if not suggestion_field or suggestion_field not in items.schema():
            raise InputError(
                "Suggestion field '%s' does not exist: run compute_noise_score "
                "(or find_label_issues) first, or pick another class" % suggestion_field
            )
        suggested = items.read(ids, ["suggestion"], suggestion_field)["suggestion"]
        for sid, s in zip(ids, suggested):
            if isinstance(s, str) and s and s != given.get(sid):
                targets[sid] = s
        if not targets:
            raise InputError(
                "No suggestion in '%s' differs from the label: use 'label is "
                "right' or pick another class" % suggestion_field
            )
    elif verdict == "ambiguous":
        alternatives = _alternatives(items, ids, given, alternative, suggestion_field)
    elif verdict == "relabel":
        if not isinstance(new_label, str) or not new_label:
            raise InputError("Pick the class to relabel with (new_label)")
        targets = {sid: new_label for sid in ids if given.get(sid) != new_label}
        if not targets:
            raise InputError(
                "The label already is '%s': use 'label is right' instead" % new_label
            )

    store = review_store(items.dataset)
    keys = _undo_keys(store)
    seq = int(keys[-1][len(_UNDO_PREFIX):]) + 1 if keys else 1
    entry = dict(
        seq=seq, ids=ids, verdict=verdict, mode=mode, label_field=label_field,
        objects=items.objects, fields=items.fields(), before=items.snapshot(ids), at=utc_now(),
    )
    store.set(_UNDO_PREFIX + "%d" % seq, entry)  # logged before any write

    num_corrected = 0
    if targets:
        num_corrected = items.correct(list(targets), list(targets.values()))["num_corrected"]
    if verdict == "correct":
        verified = {i: True for i in ids}
    elif verdict in ("suggestion", "relabel"):
        verified = {i: False for i in targets}
    elif verdict in NEITHER and VERIFIED_FIELD in items.schema():
        verified = {i: None for i in ids}  # neither right nor wrong
    else:
        verified = {}
    now = utc_now()
    if items.objects:
        records = {
            "review_verdict": {i: verdict for i in ids},
            "review_mode": {i: mode for i in ids},
            "review_seq": {i: seq for i in ids},
            "review_at": {i: now for i in ids},
        }
    else:
        records = {REVIEW_FIELD: {
            sid: fo.DynamicEmbeddedDocument(
                verdict=verdict, label=targets.get(sid, given.get(sid)),
                given=given.get(sid), mode=mode, seq=seq, at=now,
            )
            for sid in ids
        }}
    if verdict == "ambiguous" and alternatives:
        if items.objects:
            records[OBJECT_ALTERNATIVE] = alternatives
        else:
            records[ALTERNATIVES_FIELD] = {
                i: fo.Classifications(classifications=[fo.Classification(label=c)])
                for i, c in alternatives.items()
            }
    items.write(dict({VERIFIED_FIELD: verified}, **records))
    return dict(
        verdict=verdict, num_samples=len(ids), num_corrected=num_corrected, seq=seq, ids=ids
    )


def _alternatives(items, ids, given, alternative, suggestion_field):
    """``{id: second class}`` of an ambiguous verdict: ``alternative``, or
    the suggestion where it differs from the label (none: nothing)."""
    if alternative:
        if not isinstance(alternative, str):
            raise InputError("alternative must be a class name, got %r" % (alternative,))
        same = [i for i in ids if given.get(i) == alternative]
        if same:
            raise InputError(
                "The label of %s already is '%s': the alternative must be another class"
                % (same[0], alternative)
            )
        return {i: alternative for i in ids}
    if not suggestion_field or suggestion_field not in items.schema():
        return {}
    suggested = items.read(ids, ["suggestion"], suggestion_field)["suggestion"]
    return {i: s for i, s in zip(ids, suggested)
            if isinstance(s, str) and s and s != given.get(i)}


def excluded_ids(collection, label_field="ground_truth", verdicts=("exclude",)):
    """Ids of the items (samples, or objects of a patches view) whose
    current review verdict is one of ``verdicts``."""
    items = Items(collection, label_field)
    if items.objects:
        if "review_verdict" not in output_schema(items.view, label_field):
            return set()
        ids, values = items.view.values(["id", "%s.review_verdict" % label_field])
        return {i for i, v in zip(ids, values) if v in verdicts}
    if REVIEW_FIELD not in collection.get_field_schema():
        return set()
    ids, values = collection.values(["id", REVIEW_FIELD + ".verdict"])
    return {i for i, v in zip(ids, values) if v in verdicts}


def undo_verdicts(collection, steps=1):
    """Undoes the latest ``steps`` verdicts exactly (newest first).

    ``collection``: the dataset, or the patches view the verdicts were given
    on (objects; else a patches view of the dataset is used).

    Returns:
        a dict: ``num_undone`` (entries), ``ids`` (items restored, in undo
        order), ``verdicts`` (what was undone)
    """
    store = review_store(collection._root_dataset)
    keys = _undo_keys(store)
    undone, ids, verdicts = 0, [], []
    for key in reversed(keys[len(keys) - int(steps):] if steps > 0 else []):
        entry = store.get(key)
        objects = bool(entry.get("objects"))
        items = Items(collection if objects == is_patches(collection) else collection._root_dataset,
                      entry["label_field"], objects=objects)
        items.restore(entry["ids"], entry["before"])
        store.delete(key)
        undone += 1
        ids += entry["ids"]
        verdicts.append(entry["verdict"])
    return dict(num_undone=undone, ids=ids, verdicts=verdicts)


def undo_log(dataset):
    """The undo log, oldest first: ``[{seq, verdict, ids, mode, at}]``."""
    store = review_store(dataset)
    out = []
    for key in _undo_keys(store):
        e = store.get(key)
        out.append({k: e[k] for k in ("seq", "verdict", "ids", "mode", "at")})
    return out


# ------------------------------------------------------------ review queue


def start_queue(dataset, ids, label_field, source, objects=False, **info):
    """Saves the review queue (``ids`` in review order) so it can be resumed."""
    ids = [str(i) for i in ids][:MAX_QUEUE]
    queue = dict(ids=ids, label_field=label_field, source=source, objects=bool(objects),
                 created=utc_now(), **info)
    review_store(dataset).set(_QUEUE_KEY, queue)
    return queue


def load_queue(dataset):
    """The saved review queue, or None."""
    return review_store(dataset).get(_QUEUE_KEY)


def clear_queue(dataset):
    review_store(dataset).delete(_QUEUE_KEY)


def queue_progress(items, ids):
    """``(reviewed, total, next_id)`` of a queue of :class:`Items`:
    reviewed = has a review record; next = first queued item without one."""
    if not ids:
        return 0, 0, None
    verdicts = items.read(ids, ["verdict"])["verdict"]
    exists = items.found(ids)
    reviewed = sum(1 for v in verdicts if v is not None)
    nxt = next((i for i, v in zip(ids, verdicts) if v is None and i in exists), None)
    return reviewed, len(ids), nxt
