"""Reading a model's predictions (``pred_field``) as class probabilities.

The data layer of :mod:`methods.predictions`: reads one or more prediction
fields of the target view in bulk (one cursor, stored vectors decoded
straight into a matrix: :func:`store.data.read_columns`) and returns,
per field, an ``(n, len(classes))`` probability matrix aligned with the
consensus' rows and label classes. Accepted, per field:

- ``fo.Classification`` with ``logits`` (``apply_model(...,
  store_logits=True)``): the logits' class order is
  ``dataset.classes[field]``, else ``dataset.default_classes``; without
  either, an error says what to set;
- a vector field (``VectorField``/``ArrayField``/list of floats) of width =
  number of classes, probabilities or logits (detected): columns in the
  order of ``dataset.classes[field]`` / ``dataset.default_classes`` when
  set, else the label classes in alphabetical order (stated in the summary);
- ``fo.Classification`` with only ``label`` (+ ``confidence``): usable,
  weaker (no second choice; the summary says so).

On a patches view the field is an attribute of each object
(``<label_field>.<pred_field>``) or a field of the patches themselves.
No operator classes here.
"""

from dataclasses import dataclass, field

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from . import data as lnd
from . import registry
from .objects import is_patches

FORMS = ("logits", "probabilities", "label+confidence")


@dataclass
class Predictions:
    """One prediction field read as evidence.

    Attributes:
        name: the field
        probabilities: float64 (n, k) rows sum to 1, columns = label classes
        form: how the field was read: ``"logits"``, ``"probabilities"`` or
            ``"label+confidence"``
        info: JSON-ready notes (class order used, class-set mismatch, rows
            without a prediction)
    """

    name: str
    probabilities: np.ndarray
    form: str
    info: dict = field(default_factory=dict)


def as_field_list(value):
    """``"a"``, ``"a,b"``, ``["a", "b"]``, None -> ``["a", "b"]`` (no blanks)."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for item in items:
        item = str(item).strip()
        if item and item not in out:
            out.append(item)
    return out


def prediction_fields(view, label_field="ground_truth"):
    """Fields of ``view`` that can serve as ``pred_field``: Classification
    fields other than the labels, and float vector fields (on a patches
    view, the objects' attributes of those types too)."""
    schema = _schema(view, label_field)
    out = []
    width = None  # a vector field qualifies when its width is the number of classes
    for name, f in schema.items():
        if name == label_field or name.startswith("_") or "." in name:
            continue
        kind = _kind(f)
        if kind is None or name in _OWN_FIELDS or name.endswith("_original"):
            continue
        if kind == "vector":
            if width is None:
                width = len(view.distinct(label_field + ".label"))
            first = view.exists(_path(view, label_field, name)).limit(1).values(
                _path(view, label_field, name))
            if not first or np.asarray(first[0]).size != width:
                continue
        out.append(name)
    return sorted(out)


#: the plugin's own Classification outputs (every detector's suggestion and
#: predicted-class fields, from the registry; the consensus' suggestion; the
#: review record): never a model's predictions
_OWN_FIELDS = frozenset(
    [d.suggestion_field for d in registry.DETECTORS.values() if d.suggestion_field]
    + [d.input_field for d in registry.DETECTORS.values() if d.evidence == "label"]
    + ["suggested_label", "label_review"]
)


def _schema(view, label_field):
    if not is_patches(view):
        return view.get_field_schema()
    out = dict(lnd.output_schema(view, label_field))
    for name, f in view.get_field_schema().items():
        if name != label_field:
            out.setdefault(name, f)
    return out


def _kind(f):
    doc = getattr(f, "document_type", None)
    if doc is not None and issubclass(doc, fo.Classification):
        return "classification"
    if isinstance(f, (fof.VectorField, fof.ArrayField)):
        return "vector"
    if isinstance(f, fof.ListField) and isinstance(f.field, (fof.FloatField, fof.IntField)):
        return "vector"
    return None


def _path(view, label_field, name):
    """Where ``name`` is read: a field of the view, else (patches) the
    objects' attribute."""
    if not is_patches(view) or name in view.get_field_schema():
        return name
    return lnd.output_path(view, label_field, name)


def class_order(dataset, name, width, label_classes):
    """``(class names, where from)`` of a ``width``-column prediction of
    field ``name``: ``dataset.classes[name]``, ``default_classes``, else (a
    plain vector field only) the label classes alphabetically."""
    for source, names in (("dataset.classes['%s']" % name, (dataset.classes or {}).get(name)),
                          ("dataset.default_classes", dataset.default_classes)):
        if names:
            if len(names) != width:
                raise lnd.InputError(
                    "Predictions in '%s' have %d columns but %s lists %d classes. Set "
                    "dataset.classes['%s'] = [the model's %d class names in column order]"
                    % (name, width, source, len(names), name, width))
            return [str(c) for c in names], source
    return None, None


def read_predictions(view, label_field, names, ids, classes, labels):
    """Reads each prediction field as class probabilities.

    Args:
        view: the target view (samples, or a patches view)
        label_field: the labels (the patches field on a patches view)
        names: prediction field names (see :func:`as_field_list`)
        ids: the consensus' row ids (labelled items), aligned output rows
        classes: the label classes (output columns)
        labels: int (n,) given labels, indices into ``classes``

    Returns:
        ``[Predictions]`` in the order of ``names``

    Raises:
        InputError: a field that does not exist or is of another type,
            logits without a class order, a width that matches no class
            list, items of the target without a prediction (naming one
            and the fix); all before anything is written
    """
    from ..methods.predictions import align_classes, from_label_confidence, to_probabilities

    schema = _schema(view, label_field)
    dataset = view._root_dataset
    out = []
    for name in as_field_list(names):
        if name == label_field:
            raise lnd.InputError(
                "pred_field '%s' is the label field itself: name the field holding a "
                "model's predictions" % name)
        f = schema.get(name)
        if f is None or _kind(f) is None:
            found = prediction_fields(view, label_field)
            raise lnd.InputError(
                "pred_field '%s' %s. Fields that can hold predictions (fo.Classification "
                "with logits, or a probability/logit vector): %s. Write predictions with "
                "dataset.apply_model(model, label_field='predictions', store_logits=True) "
                "or your own K-fold model (scripts/kfold_predictions.py)"
                % (name, "does not exist" if f is None else "is a %s" % type(f).__name__,
                   found or "none"))
        path = _path(view, label_field, name)
        kind = _kind(f)
        _check_present(view, label_field, name, path, ids)
        if kind == "classification":
            has_logits = bool(view.exists(path + ".logits").limit(1).count())
            if has_logits:
                matrix = _read_vectors(view, label_field, path + ".logits", ids)
                model_classes, source = class_order(dataset, name, matrix.shape[1], classes)
                if model_classes is None:
                    raise lnd.InputError(
                        "'%s' holds logits but their class order is unknown: set "
                        "dataset.classes['%s'] = [the model's class names in logit order] "
                        "(or dataset.default_classes), then save the dataset "
                        "(dataset.save())" % (name, name))
                p, _ = to_probabilities(matrix, kind="logits")
                form = "logits"
            else:
                values = _read_label_confidence(view, label_field, path, ids)
                index = {c: j for j, c in enumerate(classes)}
                predicted = np.array([index.get(v, -1) for v in values[0]], dtype=np.int64)
                conf = np.array([np.nan if c is None else float(c) for c in values[1]])
                unknown = sorted({v for v in values[0] if v is not None and v not in index})
                probs = from_label_confidence(labels, predicted, conf, len(classes))
                out.append(Predictions(name, probs, "label+confidence", dict(
                    form="label+confidence",
                    note="only the predicted class and its confidence: weaker evidence "
                         "than logits (no second choice); store logits for more",
                    extra_classes=unknown[:20],
                    num_uninformative=int((predicted < 0).sum()),
                    confidence_missing=int(np.isnan(conf).sum()),
                )))
                continue
        else:
            matrix = _read_vectors(view, label_field, path, ids)
            model_classes, source = class_order(dataset, name, matrix.shape[1], classes)
            if model_classes is None:
                if matrix.shape[1] != len(classes):
                    raise lnd.InputError(
                        "Vector field '%s' has %d columns but the labels have %d classes %s. "
                        "Set dataset.classes['%s'] = [the model's %d class names in column "
                        "order] and save the dataset" % (
                            name, matrix.shape[1], len(classes), list(classes)[:10], name,
                            matrix.shape[1]))
                model_classes, source = list(classes), "the label classes, alphabetically"
            p, form = to_probabilities(matrix)
        aligned, info = align_classes(p, model_classes, classes, labels)
        info.update(form=form, class_order=source)
        if info["extra_classes"] or info["missing_classes"]:
            info["note"] = _mismatch_note(name, info)
        out.append(Predictions(name, aligned, form, info))
    return out


def _mismatch_note(name, info):
    parts = []
    if info["extra_classes"]:
        parts.append("classes the model knows but no label uses (dropped, their mean "
                     "probability %.1f%% spread over the rest): %s" % (
                         100 * info["mass_outside"], info["extra_classes"][:10]))
    if info["missing_classes"]:
        parts.append("label classes the model does not know (no evidence from '%s' on "
                     "%d items with those labels): %s" % (
                         name, info["num_uninformative"], info["missing_classes"][:10]))
    return "; ".join(parts)


def _check_present(view, label_field, name, path, ids):
    """Every labelled item of the target needs a prediction."""
    lacking = view.exists(label_field + ".label").exists(path, False)
    num = lacking.count()
    if num:
        first = lacking.first()
        raise lnd.InputError(
            "%d of the %d labelled items of the target have no prediction in '%s' (e.g. "
            "%s). Predict every item (apply_model on the whole view) or target only the "
            "items with predictions: view.exists('%s')"
            % (num, len(ids), name, "sample %s" % first.id, path))


def _aligned_rows(read_ids, ids):
    row_of = {sid: r for r, sid in enumerate(read_ids)}
    missing = [i for i in ids if str(i) not in row_of]
    if missing:
        raise lnd.InputError("item %s has no prediction" % missing[0])
    return np.fromiter((row_of[str(i)] for i in ids), dtype=np.int64, count=len(ids))


def _read_vectors(view, label_field, path, ids):
    columns, matrix = lnd.read_columns(view, ["id"], path, vector_name="prediction vector")
    if matrix is None:
        raise lnd.InputError("'%s' holds no prediction vector on the target view" % path)
    return matrix[_aligned_rows(columns["id"], ids)].astype(np.float64)


def _read_label_confidence(view, label_field, path, ids):
    columns, _ = lnd.read_columns(view, ["id", path + ".label", path + ".confidence"])
    rows = _aligned_rows(columns["id"], ids)
    labels, conf = columns[path + ".label"], columns[path + ".confidence"]
    return [labels[r] for r in rows], [conf[r] for r in rows]


def model_classes_of(sample_or_label, classes=None):
    """``(class, probability)`` of one prediction value as the review card
    shows it: a Classification's label and confidence (or its logits'
    softmax), a vector's most probable column (``classes`` names them)."""
    value = sample_or_label
    if value is None:
        return None, None
    if isinstance(value, fo.Classification):
        conf = value.confidence
        if conf is None and value.logits is not None:
            z = np.asarray(value.logits, np.float64)
            conf = float(np.exp(z.max() - np.logaddexp.reduce(z)))
        return value.label, None if conf is None else float(conf)
    from ..methods.predictions import to_probabilities

    x = np.asarray(value, np.float64).reshape(1, -1)
    p, _ = to_probabilities(x)
    j = int(np.nanargmax(p[0]))
    name = classes[j] if classes is not None and j < len(classes) else str(j)
    return name, float(p[0, j])
