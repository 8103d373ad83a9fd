"""Review and audit sessions of the "Label noise" panel.

A session is a queue of item ids (samples, or objects of a patches view)
saved in the dataset's review store (:func:`store.review.start_queue`),
so it survives leaving the panel or reloading the App: the next item is
always the first queued item without a review record, and the counter is
the number of queued items with one ("reviewed 37 of 412"). Verdicts go
through :func:`store.review.record_verdict` (the correction bookkeeping
of ``apply_label_corrections``, an undo log); audits are runs
(:mod:`store.audit`).

Everything here takes plain arguments (a collection, a queue dict) so it is
tested without the App; :mod:`operators.panel.panel` wires it to panel events.
"""

from ...store import registry
from ...store import review as lnv
from ...store.audit import update_audit, update_audits
from ...store.data import InputError, output_path, output_schema, read_outputs
from ...store.predictions import model_classes_of
from .charts import beyond, consensus_run, higher_is_noisier, suggestion_path

SOURCES = ("flagged", "selected", "view")
#: keyboard shortcuts (digits relabel to the class of that number)
KEYS = {"y": "correct", "s": "suggestion", "r": "relabel", "n": "skip", "u": "undo",
        "a": "ambiguous", "x": "exclude"}
DIGITS = "1234567890"


def queue_ids(base, label_field, source, score_field=None, threshold=None,
              selected=None, view=None):
    """Item ids to review, in order: ``flagged`` (beyond the threshold,
    largest score first), ``selected`` (the App's selection, largest score
    first) or ``view`` (the App's view, in its order)."""
    if source not in SOURCES:
        raise InputError("source must be one of %s, got %r" % (SOURCES, source))
    scored = score_field and score_field in output_schema(base, label_field)
    if source == "flagged":
        if not scored or threshold is None:
            raise InputError("No score to review by: run find_label_issues first")
        found = beyond(base, label_field, score_field, threshold,
                       higher_is_noisier(base, label_field, score_field))
    elif source == "selected":
        if not selected:
            raise InputError("Select samples in the grid first")
        found = base.select(list(selected))
        if scored:
            path = output_path(base, label_field, score_field)
            found = found.sort_by(path, reverse=higher_is_noisier(base, label_field, score_field))
    else:
        found = view if view is not None else base
    ids = found.limit(lnv.MAX_QUEUE).values("id")
    if not ids:
        raise InputError("Nothing to review: the %s items are empty" % source)
    return ids


def start_session(base, label_field, ids, kind="review", score_field="noise_score",
                  suggestion_field="suggested_label", audit_key=None, source="flagged"):
    """Saves a review (or audit) queue; returns it."""
    items = lnv.items_for(base, label_field)
    classes = sorted(c for c in base.distinct(label_field + ".label") if c)
    return lnv.start_queue(
        items.dataset, ids, label_field, source, objects=items.objects, kind=kind,
        score_field=score_field, suggestion_field=suggestion_field,
        audit_key=audit_key, classes=classes,
    )


def session_items(base, queue):
    """:class:`store.review.Items` of a saved queue on ``base``, or an
    :class:`InputError` saying how to get there."""
    objects = bool(queue.get("objects"))
    if objects != lnv.is_patches(base) or (
        objects and queue["label_field"] not in base._label_fields
    ):
        where = ("the patches view of '%s' (the patches button)" % queue["label_field"]
                 if objects else "the samples (leave the patches view)")
        raise InputError("This %s is on %s: go there to continue" % (queue.get("kind", "review"), where))
    return lnv.Items(base, queue["label_field"])


def progress(items, queue):
    """``(reviewed, total, next id)``."""
    return lnv.queue_progress(items, list(queue["ids"]))


def card(items, item_id, queue):
    """What the reviewer sees of one item (a dict, see keys below)."""
    lf = items.label_field
    one = items.select([item_id])
    score_field = queue.get("score_field")
    sugg = queue.get("suggestion_field")
    schema = output_schema(items.view, lf)
    filepath = one.values("filepath")[0]
    box = one.values(lf + ".bounding_box")[0] if items.objects else None
    got = items.read([item_id], ["given", "original", "verified"])
    out = dict(
        id=item_id, filepath=filepath, box=list(box) if box else None,
        given=got["given"][0], original=got["original"][0], score=None,
        suggestion=None, confidence=None, detectors=detector_line(items, item_id, got["given"][0], score_field),
    )
    models = model_line(items, item_id, score_field, queue.get("classes"))
    if models:
        out["detectors"] = " · ".join(p for p in (out["detectors"], models) if p)
    if score_field and score_field in schema:
        out["score"] = read_outputs(one, lf, [score_field])[score_field][0]
    if sugg and sugg in schema:
        path = suggestion_path(items.view, lf, sugg)
        names = [path[len(lf) + 1:] if items.objects else path]
        if path.endswith(".label"):
            names.append(names[0][: -len(".label")] + ".confidence")
        values = read_outputs(one, lf, names)
        out["suggestion"] = values[names[0]][0]
        if len(names) > 1:
            out["confidence"] = values[names[1]][0]
    return out


def detector_line(items, item_id, given, score_field="noise_score"):
    """One line: each input of the consensus that wrote ``score_field``,
    its value and whether the class it proposes agrees (✓) or not (✗)."""
    _, config = consensus_run(items.view, score_field or "noise_score")
    inputs = dict(getattr(config, "inputs", None) or {}) if config is not None else {}
    if not inputs:
        return ""
    lf = items.label_field
    schema = output_schema(items.view, lf)
    names = []
    for name, spec in inputs.items():
        if name not in schema:
            continue
        names.append(name + ".label" if spec.get("kind") == "label" else name)
        s = spec.get("suggestion")
        if s and s in schema:
            doc = getattr(schema[s], "document_type", None)
            names.append(s + ".label" if doc is not None else s)
    if not names:
        return ""
    values = {k: v[0] for k, v in read_outputs(items.select([item_id]), lf, names).items()}
    parts = []
    for name, spec in inputs.items():
        if name not in schema:
            continue
        title = _detector_title(name)
        if spec.get("kind") == "label":
            said = values.get(name + ".label")
            parts.append("%s %s" % (title, "✓" if said == given else "✗ %s" % said))
            continue
        value = values.get(name)
        s = spec.get("suggestion")
        said = values.get(s + ".label", values.get(s)) if s else None
        text = "%s %s" % (title, _fmt(value))
        if said is not None:
            text += " ✓" if said == given else " ✗ %s" % said
        parts.append(text)
    return " · ".join(parts)


def model_line(items, item_id, score_field="noise_score", classes=None):
    """The model predictions (``pred_field``) the consensus used: each
    field's class and probability for this item, e.g. ``model resnet18:
    cat 0.93``; in-sample predictions are marked."""
    _, config = consensus_run(items.view, score_field or "noise_score")
    report = dict(getattr(config, "predictions", None) or {}) if config is not None else {}
    schema = output_schema(items.view, items.label_field)
    names = [n for n in report if n in schema]
    if not names:
        return ""
    values = read_outputs(items.select([item_id]), items.label_field, names)
    dataset = items.view._root_dataset
    parts = []
    for name in names:
        order = (dataset.classes or {}).get(name) or dataset.default_classes or classes
        label, prob = model_classes_of(values[name][0], order)
        text = "model %s: %s %s" % (name, label if label is not None else "–", _fmt(prob))
        if report[name].get("in_sample"):
            text += " (in-sample: not used)"
        parts.append(text)
    return " · ".join(parts)


def _detector_title(name):
    detector = registry.by_field(name)
    return detector.short_label if detector is not None else name


def _fmt(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        return "%.2f" % value
    return str(value)


def act(items, queue, action, item_id=None, new_label=None):
    """Applies one reviewer action to the current item of a queue.

    ``action``: ``correct``, ``suggestion``, ``relabel`` (``new_label``),
    ``ambiguous`` (the suggestion, if it differs, recorded as the second
    class), ``exclude``, ``skip`` or ``undo``. ``item_id``: the item the reviewer saw; a stale
    one (already decided, e.g. a repeated key press) changes nothing.

    Returns a short message for the reviewer, or None when nothing changed.
    """
    if action == "undo":
        undone = lnv.undo_verdicts(items.view, 1)
        _update_audits(items, queue)
        if not undone["num_undone"]:
            return "Nothing to undo"
        return "Undid '%s'" % undone["verdicts"][0]
    if action not in lnv.VERDICTS:
        raise InputError("Unknown action %r" % action)
    _, _, current = progress(items, queue)
    if current is None:
        return "Every item of this %s is reviewed" % queue.get("kind", "review")
    if item_id is not None and str(item_id) != current:
        return None
    lnv.record_verdict(
        items.view, [current], action, items.label_field, new_label=new_label,
        suggestion_field=queue.get("suggestion_field"), mode=queue.get("kind", "review"),
    )
    _update_audits(items, queue)
    return None


def _update_audits(items, queue):
    if queue.get("kind") == "audit" and queue.get("audit_key"):
        update_audit(items.view, queue["audit_key"])
    else:
        update_audits(items.view)


def key_action(key, classes):
    """``(action, new_label)`` of a key press, or ``(None, None)``."""
    key = str(key or "").lower()
    if key in KEYS:
        return KEYS[key], None
    if key and key in DIGITS:
        k = DIGITS.index(key)
        if k < len(classes):
            return "relabel", classes[k]
    return None, None


def key_hint(classes):
    digits = " · ".join("%s %s" % (DIGITS[k], c) for k, c in enumerate(classes[: len(DIGITS)]))
    return ("Keys: y label is right · s use suggestion · r the class in the list · %sa ambiguous "
            "(two classes fit) · x exclude (no class fits) · n skip · u undo" % (
                digits + " · " if digits else ""))


def audit_summary(estimate):
    """Markdown: overall and per-class share of wrong labels with the 95%
    Wilson interval."""
    if not estimate or not estimate.get("n"):
        return "No audit verdict yet."
    lines = [
        "**Estimated share of wrong labels: %.1f%%** (95%% interval %.1f%%–%.1f%%, "
        "%d wrong of %d reviewed)"
        % (100 * estimate["rate"], 100 * estimate["low"], 100 * estimate["high"],
           estimate["wrong"], estimate["n"]),
    ]
    if estimate.get("population"):
        lines[0] += " ≈ %s–%s of %s labels" % (
            f"{estimate['count_low']:,}", f"{estimate['count_high']:,}", f"{estimate['population']:,}")
    types = estimate.get("types") or {}
    if any(v.get("count") for k, v in types.items() if k in ("ambiguous", "exclude")):
        lines += ["", "| outcome | reviewed | share | 95% interval |", "|---|---|---|---|"]
        for name, title in (("right", "label right"), ("wrong", "another class is right"),
                            ("ambiguous", "ambiguous (two classes fit)"),
                            ("exclude", "no class fits")):
            v = types.get(name)
            if v and v.get("n"):
                lines.append("| %s | %d | %.0f%% | %.0f%%–%.0f%% |"
                             % (title, v["count"], 100 * v["rate"], 100 * v["low"], 100 * v["high"]))
    per_class = estimate.get("per_class") or {}
    if per_class:
        lines += ["", "| class | reviewed | wrong | share | 95% interval |", "|---|---|---|---|---|"]
        for c, v in sorted(per_class.items()):
            lines.append("| %s | %d | %d | %.0f%% | %.0f%%–%.0f%% |"
                         % (c, v["n"], v["wrong"], 100 * v["rate"], 100 * v["low"], 100 * v["high"]))
    if estimate.get("too_few"):
        lines.append("")
        lines.append("Too few reviewed for a per-class estimate: %s" % ", ".join(
            "%s (%d)" % kv for kv in sorted(estimate["too_few"].items())))
    return "\n".join(lines)
