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

from .data import InputError, output_schema, read_outputs
from .objects import is_patches
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


def spec_of(detector, suggestion=None):
    """The :class:`InputSpec` of a registry record (``suggestion``: the
    suggestion field a run named, if any)."""
    return InputSpec(
        detector.evidence,
        detector.higher_is_noisier,
        suggestion if suggestion is not None else detector.suggestion_field,
        detector.disagreement_share,
    )


def known_inputs():
    """``{default input field: InputSpec}`` of every registered detector."""
    return {d.input_field: spec_of(d) for d in registry.DETECTORS.values()}


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


def read_verified(view, ids, verified_field, label_field=""):
    """Verification of each id: 1 = label wrong, 0 = right, -1 = unknown.

    From the boolean ``verified_field`` (True = label correct, False =
    wrong) and/or the tags ``verified:correct`` / ``verified:wrong``; on a
    patches view, the object's attribute and label tags
    (``<label_field>.label_verified``, ``<label_field>.tags``).
    """
    index = {sid: k for k, sid in enumerate(ids)}
    verified = np.full(len(ids), -1, dtype=np.int64)
    schema = output_schema(view, label_field)
    names = ["tags"]
    use_field = bool(verified_field) and verified_field in schema
    if use_field:
        names.append(verified_field)
    read = read_outputs(view, label_field, names)
    columns = [read["id"]] + [read[n] for n in names]
    for k, sid in enumerate(columns[0]):
        row = index.get(sid)
        if row is None:
            continue
        tags = columns[1][k] or ()
        if "verified:wrong" in tags:
            verified[row] = 1
        elif "verified:correct" in tags:
            verified[row] = 0
        if use_field:
            value = columns[2][k]
            if value is True:
                verified[row] = 0
            elif value is False:
                verified[row] = 1
    return verified


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


def corrected_items(view, ids, label_field):
    """Bool per id: its label carries a correction record (sample field
    ``<label>_correction``, or ``correction_source`` on an object)."""
    from .corrections import correction_field

    patches = is_patches(view)
    name = "correction_source" if patches else correction_field(label_field)
    if name not in output_schema(view, label_field):
        return np.zeros(len(ids), dtype=bool)
    path = name if patches else name + ".source"
    values = read_outputs(view, label_field, [path], ids=ids)[path]
    return np.array([v is not None for v in values], dtype=bool)


def original_labels(view, ids, label_field):
    """The class each id had before its first correction (None where it
    was never corrected): ``<label>_original.label`` on samples,
    ``label_original`` on objects."""
    from .corrections import OBJECT_ORIGINAL, original_field

    name = OBJECT_ORIGINAL if is_patches(view) else original_field(label_field)
    if name not in output_schema(view, label_field):
        return [None] * len(ids)
    path = name if is_patches(view) else name + ".label"
    return read_outputs(view, label_field, [path], ids=ids)[path]
