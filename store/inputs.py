"""What the consensus combines: detector outputs and human verdicts.

Discovers the detector outputs present on a dataset (by their default field
names and through this plugin's run records, so renamed outputs are found
too) or parses the user's list, and reads the verdicts (``label_verified``,
``verified:*`` tags, corrections made since the detectors ran).
"""

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof

from .corrections import OBJECT_ORIGINAL, correction_field, original_field
from .data import InputError, load_inputs, output_schema, read_outputs
from .objects import is_patches
from .predictions import read_predictions
from . import registry
from . import runs as lnr


@dataclass(frozen=True)
class InputSpec:
    """How the consensus reads one input field.

    kind: ``score`` (a number) or ``label`` (an fo.Classification predicting
    a class, with a confidence); higher_is_noisier: orientation of a score;
    suggestion: the field holding that detector's proposed class, if any;
    disagreement_share: the score is the share of the detector's evidence
    (e.g. neighbours) *against* the given label, so ``1 - score`` is its
    share for the given label. A detector's spec comes from its registry
    record (:func:`spec_of`).
    """

    kind: str
    higher_is_noisier: bool = True
    suggestion: str = None
    disagreement_share: bool = False


def spec_of(detector):
    """The :class:`InputSpec` of a registry record."""
    return InputSpec(
        detector.evidence,
        detector.higher_is_noisier,
        detector.suggestion_field,
        detector.disagreement_share,
    )


def known_inputs():
    """``{default input field: InputSpec}`` of every registered detector."""
    return {d.input_field: spec_of(d) for d in registry.DETECTORS.values()}


#: the tags of a verdict: label verified right, verified wrong
VERIFIED_TAGS = ("verified:correct", "verified:wrong")


def discover_inputs(dataset, exclude=(), schema=None):
    """Detector outputs available on ``dataset``: ``{field: InputSpec}``.

    Default field names that exist with the right type, plus outputs of this
    plugin's runs written under other names. ``exclude``: fields to ignore
    (e.g. the consensus' own outputs). ``schema``: the outputs to look in
    (default the dataset's fields; :func:`store.data.output_schema` of a
    patches view for object outputs).
    """
    if schema is None:
        schema = dataset.get_field_schema()
    found = {}
    for name, spec in known_inputs().items():
        if name in schema and name not in exclude and _fits(schema[name], spec):
            found[name] = spec
    for key in lnr.plugin_runs(dataset):
        config = dataset.get_run_info(key).config
        detector = registry.by_method(getattr(config, "method", ""))
        if detector is None:
            continue
        params = getattr(config, "params", None) or {}
        field = params.get(detector.evidence_param) if isinstance(params, dict) else None
        spec = spec_of(detector)
        if spec.suggestion and isinstance(params, dict):
            suggestion = params.get("suggestion_field") or None
            if suggestion != spec.suggestion:
                spec = dataclasses.replace(spec, suggestion=suggestion)
        if (
            field
            and field not in found
            and field not in exclude
            and field in schema
            and _fits(schema[field], spec)
        ):
            found[field] = spec
    return found


def higher_is_noisier(collection, label_field, field):
    """The orientation of the score ``field`` of these items (samples, or
    the objects of a patches view: ``label_field`` is the patches field).

    From the run record that wrote it, through the registry: a detector's
    output keeps its detector's direction under any field name (a
    Training-ValueNet run with ``output_field="tv"`` is higher = cleaner);
    the consensus' outputs, and numbers no run of this plugin wrote, are
    higher = noisier.
    """
    schema = output_schema(collection, label_field)
    spec = discover_inputs(collection._root_dataset, schema=schema).get(field)
    if spec is None or spec.kind != "score":
        return True
    return spec.higher_is_noisier


def parse_inputs(dataset, text, exclude=(), schema=None):
    """User list ``"a,b,-c"`` -> ``{field: InputSpec}``; empty = discover.

    Known detector fields keep their orientation; other numeric fields are
    read as higher = noisier, or higher = cleaner with a leading ``-``.
    ``schema``: as for :func:`discover_inputs`.
    """
    if not text or not str(text).strip():
        return discover_inputs(dataset, exclude, schema)
    if schema is None:
        schema = dataset.get_field_schema()
    known = known_inputs()
    known.update(discover_inputs(dataset, exclude, schema))
    out = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        flip = item.startswith("-")
        name = item.lstrip("-").strip()
        if name not in schema:
            raise InputError(
                "Input field '%s' does not exist on dataset '%s'. Detector "
                "fields found: %s"
                % (name, dataset.name, sorted(discover_inputs(dataset, schema=schema)) or "none")
            )
        spec = known.get(name)
        if spec is None:
            if is_classification(schema[name]):
                spec = InputSpec("label")
            elif _is_number(schema[name]):
                spec = InputSpec("score", higher_is_noisier=not flip)
            else:
                raise InputError(
                    "Input field '%s' is a %s; inputs must be numeric score "
                    "fields or fo.Classification predictions"
                    % (name, type(schema[name]).__name__)
                )
        elif flip and spec.kind == "score":
            spec = InputSpec("score", not spec.higher_is_noisier, spec.suggestion)
        if not _fits(schema[name], spec):
            raise InputError("Input field '%s' does not hold a %s" % (name, spec.kind))
        out[name] = spec
    return out


def _is_number(field):
    return isinstance(field, (fof.FloatField, fof.IntField))


def is_classification(field):
    doc = getattr(field, "document_type", None)
    return doc is not None and issubclass(doc, fo.Classification)


def _fits(field, spec):
    return is_classification(field) if spec.kind == "label" else _is_number(field)


def orientation(spec):
    if spec.kind == "label":
        return "predicted class"
    return "higher = noisier" if spec.higher_is_noisier else "higher = cleaner"


@dataclass(frozen=True)
class Verdicts:
    """Human verdicts, read two ways.

    ``given``: 1 = verified wrong, 0 = verified right, -1 = none, as
    recorded: a "use suggestion" / "another class" verdict says the label
    *as it was* was wrong, and the label was then corrected. ``corrected``:
    bool, the label was changed by a correction since the detectors ran.
    """

    given: np.ndarray
    corrected: np.ndarray
    #: class before the first correction per item (None: never corrected)
    original: Optional[Sequence] = None

    @property
    def current(self):
        """Verdicts on the labels as they are now: a label the reviewer
        corrected is the reviewer's choice, i.e. verified right."""
        out = self.given.copy()
        out[self.corrected & (out == 1)] = 0
        return out

    @property
    def for_weights(self):
        """Verdicts usable to learn detector weights: the detectors scored
        the labels before correction, so corrected samples are left out."""
        out = self.given.copy()
        out[self.corrected] = -1
        return out

    def original_labels(self, labels, classes):
        """``labels`` (int, current) with each label judged wrong and then
        corrected put back to its class before the correction: the labels
        as the labelling process produced them, which is what a model-based
        noise estimate measures."""
        out = np.asarray(labels, dtype=np.int64).copy()
        if self.original is None:
            return out
        index = {c: i for i, c in enumerate(classes)}
        fixed = np.flatnonzero(self.corrected & (self.given == 1))
        for row in fixed:
            before = index.get(self.original[row])
            if before is not None:
                out[row] = before
        return out

    @property
    def num_fixed(self):
        """Labels judged wrong and corrected since the detectors ran."""
        return int((self.corrected & (self.given == 1)).sum())


def read_verdicts(view, ids, verified_field, label_field, with_original=True):
    """The human verdicts on ``ids`` (samples, or the objects of a patches
    view) as :class:`Verdicts`, in one read.

    ``given`` (1 = label wrong, 0 = right, -1 = unknown) is from the boolean
    ``verified_field`` (True = label correct, False = wrong; on objects the
    attribute ``<label_field>.<verified_field>``) and the tags
    ``verified:correct`` / ``verified:wrong`` (label tags on objects), the
    field deciding when both exist; ``corrected``: the label carries a
    correction record (``<label>_correction`` on samples,
    ``correction_source`` on objects); ``original`` (with ``with_original``):
    the class before the first correction (None where never corrected).
    """
    ids = list(ids)
    patches = is_patches(view)
    schema = output_schema(view, label_field)
    use_field = bool(verified_field) and verified_field in schema
    correction = "correction_source" if patches else correction_field(label_field)
    has_correction = correction in schema
    original = OBJECT_ORIGINAL if patches else original_field(label_field)
    has_original = with_original and original in schema
    paths = {"tags": "tags"}
    if use_field:
        paths["verified"] = verified_field
    if has_correction:
        paths["corrected"] = correction if patches else correction + ".source"
    if has_original:
        paths["original"] = original if patches else original + ".label"
    read = read_outputs(view, label_field, list(paths.values()), ids=ids)
    column = {key: read[path] for key, path in paths.items()}
    correct_tag, wrong_tag = VERIFIED_TAGS
    given = np.full(len(ids), -1, dtype=np.int64)
    for row, tags in enumerate(column["tags"]):
        tags = tags or ()
        if wrong_tag in tags:
            given[row] = 1
        elif correct_tag in tags:
            given[row] = 0
        if use_field:
            value = column["verified"][row]
            if value is True:
                given[row] = 0
            elif value is False:
                given[row] = 1
    if has_correction:
        corrected = np.array([v is not None for v in column["corrected"]], dtype=bool)
    else:
        corrected = np.zeros(len(ids), dtype=bool)
    before = None
    if with_original:
        before = column["original"] if has_original else [None] * len(ids)
    return Verdicts(given, corrected, before)


@dataclass
class ConsensusInputs:
    """Everything a consensus combines, read in one pass and aligned with
    ``data.ids`` (see :func:`read_consensus_inputs`)."""

    #: labels of the target items (:class:`store.data.DetectorInputs`)
    data: object
    #: the label classes, then any other class a detector suggests
    classes: list
    #: input field -> float array, higher = noisier (NaN: not scored)
    scores: dict
    #: input field -> (class index array, confidence array or None)
    suggestions: dict
    #: input field -> how it was read (kind, direction, suggestion, count)
    used: dict
    #: the model predictions read from ``pred_field`` (store.predictions)
    predictions: object
    #: the human verdicts (:class:`Verdicts`)
    verdicts: Verdicts


def read_consensus_inputs(view, label_field, specs, pred_names, verified_field, progress=None):
    """Reads what the consensus combines, once: the labels, the model
    predictions ``pred_names``, each input of ``specs`` (``{field:
    InputSpec}``) as a score oriented higher = noisier (a predicted class
    becomes :func:`methods.consensus.label_agreement_score`) with its
    suggested class, and the verdicts. Inputs without any value on the
    target items are left out."""
    from ..methods.consensus import label_agreement_score

    progress = progress or (lambda fraction, message="": None)
    data = load_inputs(view, label_field, need_embeddings=False)
    progress(0.1, "reading predictions %s" % ", ".join(pred_names) if pred_names else "")
    predictions = read_predictions(view, label_field, pred_names, data.ids, data.classes, data.y)
    progress(0.2, "reading %d inputs" % len(specs))
    classes = list(data.classes)
    class_index = {c: k for k, c in enumerate(classes)}

    def to_index(names):
        out = np.full(len(names), -1, dtype=np.int64)
        for k, name in enumerate(names):
            if name is None or name == "":
                continue
            if name not in class_index:
                class_index[name] = len(classes)
                classes.append(name)
            out[k] = class_index[name]
        return out

    schema = output_schema(view, label_field)
    paths = ["id"]
    for name, spec in specs.items():
        if spec.kind == "label":
            paths += [name + ".label", name + ".confidence"]
        else:
            paths.append(name)
        if spec.suggestion and spec.suggestion in schema:
            if is_classification(schema[spec.suggestion]):
                paths += [spec.suggestion + ".label", spec.suggestion + ".confidence"]
            else:
                paths.append(spec.suggestion)
    columns = read_outputs(view, label_field, paths[1:])
    row_of = {sid: k for k, sid in enumerate(columns["id"])}
    rows = np.array([row_of[sid] for sid in data.ids], dtype=np.int64)

    def aligned(path, dtype=object):
        values = columns[path]
        return np.array([values[r] for r in rows], dtype=dtype)

    def floats(path):
        return np.array(
            [np.nan if v is None else float(v) for v in aligned(path)],
            dtype=np.float64,
        )

    scores, suggestions, used = {}, {}, {}
    for name, spec in specs.items():
        if spec.kind == "label":
            predicted = to_index(aligned(name + ".label"))
            conf = floats(name + ".confidence")
            scores[name] = label_agreement_score(data.y, predicted, conf)
            suggestions[name] = (predicted, conf)
        else:
            s = floats(name)
            scores[name] = s if spec.higher_is_noisier else -s
            if spec.suggestion and spec.suggestion + ".label" in columns:
                suggestions[name] = (
                    to_index(aligned(spec.suggestion + ".label")),
                    floats(spec.suggestion + ".confidence"),
                )
            elif spec.suggestion and spec.suggestion in columns:
                suggestions[name] = (to_index(aligned(spec.suggestion)), None)
        num = int(np.isfinite(scores[name]).sum())
        if num == 0:
            del scores[name]
            suggestions.pop(name, None)
            continue
        used[name] = dict(
            kind=spec.kind,
            higher_is_noisier=spec.higher_is_noisier,
            suggestion=spec.suggestion if name in suggestions else None,
            num_scored=num,
        )
    verdicts = read_verdicts(view, list(data.ids), verified_field, label_field)
    return ConsensusInputs(data, classes, scores, suggestions, used, predictions, verdicts)
