"""Verdicts from a human reviewer, each undoable, and audits.

A reviewer looking at a sample decides one of :data:`VERDICTS`:

- ``correct``: the label is right -> ``label_verified = True``;
- ``suggestion``: the suggested label (``suggested_label`` by default) is
  right -> the label is corrected through :mod:`operators.corrections`
  (original kept in ``<label>_original``, record in ``<label>_correction``)
  and ``label_verified = False`` (the *given* label was wrong);
- ``relabel``: another class is right -> same as ``suggestion`` with that
  class;
- ``skip``: no decision (the sample leaves the review queue).

Every verdict also writes ``label_review`` (an embedded document: verdict,
label, mode, seq, time), which is how review and audit progress is counted
and resumed, and pushes an entry on an **undo log** kept in a FiftyOne
execution store (``label_noise_review``, scoped to the dataset): the exact
values of every field the verdict touched, before it touched them.
:func:`undo_verdicts` pops the latest entry and writes those values back, so
label documents (ids included), the correction bookkeeping, the
verification and the review record are as they were.

An **audit** (:func:`start_audit`) draws a uniform random sample of a view,
seeded, and records it as a run with ``method="label_audit"`` whose results
hold ``sample_ids`` and, after each audit verdict, the estimated share of
wrong labels with its 95% Wilson interval, overall and per class
(:func:`update_audit`). The consensus reads the latest such run as its
unbiased verified set.
"""

import datetime

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.operators.types as types

from . import corrections as lnc
from . import objects as lno
from . import runs as lnr
from .common import ActionOperator, Param
from .data import InputError, check_label_field

VERDICTS = ("correct", "suggestion", "relabel", "skip")
REVIEW_FIELD = "label_review"
VERIFIED_FIELD = "label_verified"
STORE_NAME = "label_noise_review"
SOURCE = "review"
AUDIT_METHOD = "label_audit"
_UNDO_PREFIX = "undo:"
_QUEUE_KEY = "queue"
#: the most samples a review queue keeps (ids live in one store document)
MAX_QUEUE = 5000


def review_store(dataset):
    """The dataset's execution store of this plugin's review state."""
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(STORE_NAME, dataset._root_dataset._doc.id)


# ------------------------------------------------------------------ verdicts


def _suggested(dataset, ids, suggestion_field):
    schema = dataset.get_field_schema()
    if not suggestion_field or suggestion_field not in schema:
        raise InputError(
            "Suggestion field '%s' does not exist: run compute_noise_score "
            "(or find_label_issues) first, or pick another class"
            % suggestion_field
        )
    f = schema[suggestion_field]
    doc = getattr(f, "document_type", None)
    path = suggestion_field + ".label" if doc is not None else suggestion_field
    found = dict(zip(*dataset.select(ids).values(["id", path])))
    return [found.get(i) for i in ids]


def _snapshot(dataset, ids, fields):
    """The current value of ``fields`` for ``ids`` as storable dicts."""
    schema = dataset.get_field_schema()
    present = [f for f in fields if f in schema]
    values = {f: {} for f in fields}
    if present:
        columns = dataset.select(ids).values(["id"] + present)
        for j, f in enumerate(present):
            for sid, v in zip(columns[0], columns[j + 1]):
                values[f][sid] = v.to_dict() if hasattr(v, "to_dict") else v
    return {f: [values[f].get(i) for i in ids] for f in fields}


def _restore(value):
    if not isinstance(value, dict):
        return value
    if value.get("_cls") == "Classification":
        return fo.Classification.from_dict(value)
    return fo.DynamicEmbeddedDocument.from_dict(value)


def _undo_keys(store):
    keys = [k for k in store.list_keys() if k.startswith(_UNDO_PREFIX)]
    return sorted(keys, key=lambda k: int(k[len(_UNDO_PREFIX):]))


def record_verdict(
    dataset,
    ids,
    verdict,
    label_field="ground_truth",
    new_label=None,
    suggestion_field="suggested_label",
    mode="review",
    verified_field=VERIFIED_FIELD,
):
    """Records one reviewer decision for ``ids`` (see module docstring).

    On a patches view of fo.Detection objects, ``ids`` are object ids and
    the verdict is kept on each object (:mod:`operators.object_review`).

    Args:
        dataset: the dataset (or any collection of it), or a patches view
        ids: sample (or object) ids the verdict is about (usually one)
        verdict: one of :data:`VERDICTS`
        label_field ("ground_truth"): the ``fo.Classification`` labels
        new_label (None): the class, for ``verdict="relabel"``
        suggestion_field ("suggested_label"): for ``verdict="suggestion"``
        mode ("review"): ``review`` or ``audit`` (stored in the record)
        verified_field ("label_verified"): boolean verification field

    Returns:
        a dict: ``verdict``, ``num_samples``, ``num_corrected``, ``seq``
        (the undo log entry), ``ids``

    Raises:
        InputError: before anything is written, for an unknown verdict or
            id, a missing suggestion or class
    """
    ids = [str(i) for i in dict.fromkeys(ids)]
    if verdict not in VERDICTS:
        raise InputError("verdict must be one of %s, got %r" % (VERDICTS, verdict))
    if not ids:
        raise InputError("No sample to review: select samples (or pass a view) first")
    if lno.is_patches(dataset):
        return _record_object_verdict(
            dataset, ids, verdict, label_field, new_label, suggestion_field, mode, verified_field
        )
    dataset = dataset._root_dataset
    check_label_field(dataset, label_field)
    found = set(dataset.select(ids).values("id"))
    if len(found) != len(ids):
        missing = [i for i in ids if i not in found]
        raise InputError("Sample %s is not in dataset '%s'" % (missing[0], dataset.name))
    for name in (verified_field, REVIEW_FIELD):
        f = dataset.get_field_schema().get(name)
        ok = (fof.BooleanField,) if name == verified_field else (fof.EmbeddedDocumentField,)
        if f is not None and not isinstance(f, ok):
            raise InputError(
                "Field '%s' exists and is a %s; rename it before reviewing"
                % (name, type(f).__name__)
            )
    given = dict(zip(*dataset.select(ids).values(["id", label_field + ".label"])))
    suggested = _suggested(dataset, ids, suggestion_field) if verdict == "suggestion" else None
    targets = _targets(verdict, ids, given, suggested, new_label, suggestion_field)

    fields = [
        label_field,
        lnc.original_field(label_field),
        lnc.correction_field(label_field),
        verified_field,
        REVIEW_FIELD,
    ]
    seq = _log(dataset, dict(
        ids=ids, verdict=verdict, mode=mode, label_field=label_field, fields=fields,
        before=_snapshot(dataset, ids, fields),
    ))

    num_corrected = 0
    if targets:
        result = lnc.apply_corrections(
            dataset, list(targets), list(targets.values()), label_field, source=SOURCE
        )
        num_corrected = result["num_corrected"]
    if verdict == "correct":
        dataset.set_values(verified_field, {i: True for i in ids}, key_field="id")
    elif verdict in ("suggestion", "relabel"):
        dataset.set_values(verified_field, {i: False for i in targets}, key_field="id")
    records = _records(ids, verdict, targets, given, mode, seq)
    if REVIEW_FIELD not in dataset.get_field_schema():
        dataset.add_sample_field(
            REVIEW_FIELD, fof.EmbeddedDocumentField, embedded_doc_type=fo.DynamicEmbeddedDocument
        )
    dataset.set_values(REVIEW_FIELD, records, key_field="id", validate=False)
    dataset.add_dynamic_sample_fields(fields=[REVIEW_FIELD])
    return dict(
        verdict=verdict, num_samples=len(ids), num_corrected=num_corrected, seq=seq, ids=ids
    )


def _targets(verdict, ids, given, suggested, new_label, suggestion_field):
    """``{id: new class}`` of a verdict (empty for correct/skip).

    Raises:
        InputError: nothing to change for a suggestion / relabel verdict
    """
    targets = {}
    if verdict == "suggestion":
        for sid, s in zip(ids, suggested):
            if isinstance(s, str) and s and s != given.get(sid):
                targets[sid] = s
        if not targets:
            raise InputError(
                "No suggestion in '%s' differs from the label: use 'label is "
                "right' or pick another class" % suggestion_field
            )
    elif verdict == "relabel":
        if not isinstance(new_label, str) or not new_label:
            raise InputError("Pick the class to relabel with (new_label)")
        targets = {sid: new_label for sid in ids if given.get(sid) != new_label}
        if not targets:
            raise InputError(
                "The label already is '%s': use 'label is right' instead" % new_label
            )
    return targets


def _log(dataset, entry):
    """Pushes ``entry`` on the undo log (before any write); returns its seq."""
    store = review_store(dataset)
    keys = _undo_keys(store)
    seq = int(keys[-1][len(_UNDO_PREFIX):]) + 1 if keys else 1
    store.set(_UNDO_PREFIX + "%d" % seq, dict(entry, seq=seq, at=_now()))
    return seq


def _records(ids, verdict, targets, given, mode, seq):
    """The ``label_review`` record of each id."""
    now = _now()
    return {
        sid: fo.DynamicEmbeddedDocument(
            verdict=verdict, label=targets.get(sid, given.get(sid)),
            given=given.get(sid), mode=mode, seq=seq, at=now,
        )
        for sid in ids
    }


def _record_object_verdict(view, ids, verdict, label_field, new_label, suggestion_field,
                           mode, verified_field):
    """:func:`record_verdict` on the objects of a patches view."""
    from . import object_review as lnor

    given = lnor.check_object_review(view, label_field, ids, verified_field, REVIEW_FIELD)
    suggested = None
    if verdict == "suggestion":
        suggested = lnor.suggested_classes(view, label_field, ids, suggestion_field)
    targets = _targets(verdict, ids, given, suggested, new_label, suggestion_field)
    dataset = view._root_dataset
    names = lnor.touched_attributes(verified_field, REVIEW_FIELD)
    seq = _log(dataset, dict(
        ids=ids, verdict=verdict, mode=mode, label_field=label_field, objects=True,
        fields=names, before=lnor.snapshot_objects(dataset, label_field, ids, names),
    ))
    verified = {i: True for i in ids} if verdict == "correct" else {i: False for i in targets}
    num_corrected = lnor.write_object_verdict(
        view, label_field, ids, targets, _records(ids, verdict, targets, given, mode, seq),
        verified, SOURCE, verified_field, REVIEW_FIELD,
    )
    return dict(
        verdict=verdict, num_samples=len(ids), num_corrected=num_corrected, seq=seq, ids=ids
    )


def undo_verdicts(dataset, steps=1):
    """Undoes the latest ``steps`` verdicts exactly (newest first).

    ``dataset``: the dataset, or the view in hand (a patches view is kept
    current when object verdicts are undone).

    Returns:
        a dict: ``num_undone`` (entries), ``ids`` (samples restored, in
        undo order), ``verdicts`` (what was undone)
    """
    target, dataset = dataset, dataset._root_dataset
    store = review_store(dataset)
    keys = _undo_keys(store)
    undone, ids, verdicts = 0, [], []
    for key in reversed(keys[len(keys) - int(steps):] if steps > 0 else []):
        entry = store.get(key)
        if entry.get("objects"):  # attributes of each object, as stored
            from .object_review import restore_objects

            restore_objects(target, entry)
            entry["fields"] = []
        schema = dataset.get_field_schema()
        for f in entry["fields"]:
            if f not in schema:
                continue
            values = {sid: _restore(v) for sid, v in zip(entry["ids"], entry["before"][f])}
            dataset.set_values(f, values, key_field="id", validate=False)
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


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# ------------------------------------------------------------ review queue


def start_queue(dataset, ids, label_field, source):
    """Saves the review queue (``ids`` in review order) so it can be resumed."""
    ids = [str(i) for i in ids][:MAX_QUEUE]
    queue = dict(ids=ids, label_field=label_field, source=source, created=_now())
    review_store(dataset).set(_QUEUE_KEY, queue)
    return queue


def load_queue(dataset):
    """The saved review queue, or None."""
    return review_store(dataset).get(_QUEUE_KEY)


def queue_progress(dataset, ids):
    """``(reviewed, total, next_id)`` of a queue: reviewed = has a
    ``label_review`` record; next = first queued sample without one."""
    if not ids:
        return 0, 0, None
    if lno.is_patches(dataset):  # objects: the record on each object
        from .data import output_schema, read_outputs

        label_field = dataset._label_fields[0]
        if REVIEW_FIELD not in output_schema(dataset, label_field):
            return 0, len(ids), ids[0]
        read = read_outputs(dataset, label_field, [REVIEW_FIELD + ".verdict"])
        found = dict(zip(read["id"], read[REVIEW_FIELD + ".verdict"]))
    elif REVIEW_FIELD not in dataset._root_dataset.get_field_schema():
        return 0, len(ids), ids[0]
    else:
        dataset = dataset._root_dataset
        found = dict(zip(*dataset.select(ids).values(["id", REVIEW_FIELD + ".verdict"])))
    reviewed = sum(1 for i in ids if found.get(i) is not None)
    nxt = next((i for i in ids if i in found and found[i] is None), None)
    return reviewed, len(ids), nxt


# ------------------------------------------------------------------ audits


def start_audit(view, label_field="ground_truth", size=100, seed=51, run_key="label_audit"):
    """Draws a uniform random sample of ``view`` and records it as a run.

    The population is the samples of ``view`` with a label; ids are sorted
    before drawing, so the same view and seed give the same sample whatever
    the view's order. Returns the run's results (see :func:`update_audit`).
    """
    from ..methods.audit import draw_audit_sample

    check_label_field(view, label_field)
    if int(size) < 1:
        raise InputError("The audit size must be at least 1, got %r" % size)
    dataset = view._root_dataset
    population = sorted(view.exists(label_field + ".label").values("id"))
    if not population:
        raise InputError("No sample of the view has a label in '%s'" % label_field)
    picked = [population[i] for i in draw_audit_sample(len(population), size, seed)]
    params = dict(label_field=label_field, size=int(size), seed=int(seed), run_key=run_key)
    with lnr.dataset_write_lock(dataset):
        lnr.record_run(
            dataset, run_key, AUDIT_METHOD, params, [],
            results=dict(
                sample_ids=picked, population=len(population), label_field=label_field,
                seed=int(seed), created=_now().isoformat(),
                objects=lno.is_patches(view),  # ids of fo.Detection objects
            ),
            num_samples=len(picked),
        )
    return update_audit(dataset, run_key)


def audit_runs(dataset):
    """Keys of the audit runs, most recent first."""
    keys = lnr.plugin_runs(dataset, method=AUDIT_METHOD)
    return sorted(keys, key=lambda k: dataset.get_run_info(k).timestamp, reverse=True)


def update_audits(dataset):
    """:func:`update_audit` of every audit run, most recent first."""
    return [update_audit(dataset, key) for key in audit_runs(dataset._root_dataset)]


def update_audit(dataset, run_key=None, verified_field=VERIFIED_FIELD):
    """Recomputes an audit's estimate from the verdicts so far and saves it.

    Wrong = ``label_verified`` False; right = True; unreviewed or skipped
    samples are left out. The class of a sample is its *given* label (the
    original, if a correction was applied since). Results keep
    ``sample_ids``, ``population``, ``reviewed``, ``skipped`` and
    ``estimate`` (see :func:`methods.audit.audit_estimate`).
    """
    from ..methods.audit import audit_estimate

    dataset = dataset._root_dataset
    run_key = run_key or (audit_runs(dataset) or [None])[0]
    if run_key is None:
        raise InputError("This dataset has no audit yet: start one (start_label_audit)")
    results = lnr.load_results(dataset, run_key)
    ids = list(results["sample_ids"])
    label_field = results["label_field"]
    if results.get("objects"):
        from .object_review import audit_rows

        rows = audit_rows(dataset, label_field, ids, verified_field, REVIEW_FIELD)
    else:
        rows = _audit_rows(dataset, label_field, ids, verified_field)
    wrong, labels, skipped = [], [], 0
    for sid in ids:
        if sid not in rows:
            continue
        v, verdict, given = rows[sid]
        if verdict == "skip":
            skipped += 1
            continue
        if v is None:
            continue
        wrong.append(v is False)
        labels.append(given)
    est = audit_estimate(np.array(wrong, bool), labels, population=results["population"])
    results.update(reviewed=len(wrong), skipped=skipped, estimate=est, updated=_now().isoformat())
    run_results = dataset.init_run_results(run_key, **lnr._jsonable(results))
    dataset.save_run_results(run_key, run_results, overwrite=True)
    return dict(results, run_key=run_key)


def _audit_rows(dataset, label_field, ids, verified_field):
    """``{sample id: (verified, verdict, given class)}`` of audited samples."""
    schema = dataset.get_field_schema()
    paths = ["id", label_field + ".label"]
    orig = lnc.original_field(label_field)
    extra = [p for p in (orig + ".label", verified_field, REVIEW_FIELD + ".verdict")
             if p.split(".")[0] in schema]
    columns = dict(zip(paths + extra, dataset.select(ids).values(paths + extra)))
    none = [None] * len(columns["id"])
    return {
        sid: (
            columns.get(verified_field, none)[k],
            columns.get(REVIEW_FIELD + ".verdict", none)[k],
            columns.get(orig + ".label", none)[k] or columns[label_field + ".label"][k],
        )
        for k, sid in enumerate(columns["id"])
    }


# ---------------------------------------------------------------- operators

class RecordLabelVerdict(ActionOperator):
    name = "record_label_verdict"
    label = "Label noise: record a review verdict"
    description = (
        "Label is right / use the suggestion / another class / skip, for the "
        "target samples (usually the selected ones); undo with undo_label_verdict"
    )
    params = (
        Param(
            "verdict", "correct", "Verdict",
            "correct: the label is right; suggestion: use the suggested label; "
            "relabel: use the class below; skip: decide later",
            choices=VERDICTS,
        ),
        Param("label_field", "ground_truth", "Label field", "The reviewed labels", kind="label"),
        Param("new_label", "", "Class (relabel)", "The right class, for verdict=relabel"),
        Param(
            "suggestion_field", "suggested_label", "Suggestion field",
            "Where the suggested label is (verdict=suggestion)", kind="suggestion",
        ),
        Param(
            "mode", "review", "Mode",
            "review, or audit (the estimate of the latest audit is updated)",
            choices=("review", "audit"),
        ),
    )

    def form(self, ctx, inputs):
        super().form(ctx, inputs)
        if ctx.dataset is not None:
            n = ctx.target_view().count()
            inputs.view(
                "preview",
                types.Notice(label="%d samples get the verdict '%s'"
                             % (n, ctx.params.get("verdict") or "correct")),
            )

    def run(self, ctx, params, progress):
        view = ctx.target_view()
        ids = view.values("id")
        with lnr.dataset_write_lock(ctx.dataset):
            result = record_verdict(  # a patches view: verdicts on its objects
                view if lno.is_patches(view) else ctx.dataset, ids, params["verdict"],
                params["label_field"],
                new_label=params["new_label"] or None,
                suggestion_field=params["suggestion_field"], mode=params["mode"],
            )
            audits = update_audits(ctx.dataset)
            if params["mode"] == "audit" and audits:
                result["audit"] = audits[0]["estimate"]
        return result


class UndoLabelVerdict(ActionOperator):
    name = "undo_label_verdict"
    label = "Label noise: undo review verdicts"
    description = "Undoes the latest review verdicts exactly (labels, corrections, verification)"
    params = (Param("steps", 1, "Verdicts to undo", "How many of the latest verdicts"),)

    def form(self, ctx, inputs):
        super().form(ctx, inputs)
        if ctx.dataset is None:
            return
        log = undo_log(ctx.dataset)
        if not log:
            inputs.view("preview", types.Notice(label="No verdict to undo"))
            return
        last = log[-1]
        inputs.view(
            "preview",
            types.Notice(label="%d verdicts can be undone; the latest: '%s' on %d sample(s)"
                         % (len(log), last["verdict"], len(last["ids"]))),
        )

    def run(self, ctx, params, progress):
        with lnr.dataset_write_lock(ctx.dataset):
            result = undo_verdicts(ctx.target_view(), int(params["steps"]))
            update_audits(ctx.dataset)
        return result


class StartLabelAudit(ActionOperator):
    name = "start_label_audit"
    label = "Label noise: start an audit (how many wrong labels are left?)"
    description = (
        "Draws a uniform random sample of the target view to review; its "
        "verdicts estimate the share of wrong labels (95% Wilson interval)"
    )
    params = (
        Param("label_field", "ground_truth", "Label field", "The audited labels", kind="label"),
        Param("size", 100, "Sample size", "Number of samples to review"),
        Param("seed", 51, "Random seed", "Same seed and view, same sample"),
        Param("run_key", "label_audit", "Run key", "Name of the audit run"),
    )

    def run(self, ctx, params, progress):
        results = start_audit(
            ctx.target_view(), params["label_field"], int(params["size"]),
            int(params["seed"]), params["run_key"],
        )
        if not ctx.delegated:
            base = ctx.view if results.get("objects") else ctx.dataset  # the patches
            ctx.ops.set_view(base.select(results["sample_ids"], ordered=True))
        return dict(
            run_key=params["run_key"], num_samples=len(results["sample_ids"]),
            population=results["population"], estimate=results["estimate"],
        )
