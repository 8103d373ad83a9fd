"""Operator: one noise score from whichever detectors have run.

Discovers the detector outputs present on the dataset (by their default
field names and through this plugin's run records, so renamed outputs are
found too), orients and rank-normalises them, learns their weights from
verified samples when there are enough, and writes ``noise_score`` (in
[0, 1], higher = more likely mislabeled) and ``suggested_label``.
"""

from dataclasses import dataclass

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.operators.types as types

from .common import Computed, DetectorOperator, Param, TAG_PARAM
from .data import ClassificationColumn, InputError, load_inputs
from . import runs as lnr


@dataclass(frozen=True)
class Evidence:
    """How to read one detector output.

    kind: ``score`` (a number) or ``label`` (an fo.Classification predicting
    a class, with a confidence); higher_is_noisier: orientation of a score;
    suggestion: the field holding that detector's proposed class, if any.
    """

    kind: str
    higher_is_noisier: bool = True
    suggestion: str = None


#: default output fields of the plugin's detectors
KNOWN_INPUTS = {
    "training_value": Evidence("score", higher_is_noisier=False),
    "cleannet_similarity": Evidence("score", higher_is_noisier=False),
    "dupe_count": Evidence("score", True, suggestion="dupe_label"),
    "corrected_label": Evidence("label"),
    "scan_label": Evidence("label"),
    "knn_disagreement": Evidence("score", True, suggestion="knn_label"),
}

#: run-record method name fragments -> the kind of output they write
_METHOD_KINDS = (
    ("knn", "knn_disagreement"),
    ("training_value", "training_value"),
    ("valuenet", "training_value"),
    ("cleannet", "cleannet_similarity"),
    ("dupe", "dupe_count"),
    ("self_learning", "corrected_label"),
    ("selflearning", "corrected_label"),
    ("scan", "scan_label"),
)

VERIFIED_TAGS = ("verified:correct", "verified:wrong")


def discover_inputs(dataset, exclude=()):
    """Detector outputs available on ``dataset``: ``{field: Evidence}``.

    Default field names that exist with the right type, plus outputs of this
    plugin's runs written under other names. ``exclude``: fields to ignore
    (e.g. the consensus' own outputs).
    """
    schema = dataset.get_field_schema()
    found = {}
    for name, spec in KNOWN_INPUTS.items():
        if name in schema and name not in exclude and _fits(schema[name], spec):
            found[name] = spec
    for key in lnr.plugin_runs(dataset):
        config = dataset.get_run_info(key).config
        method = str(getattr(config, "method", "") or "").lower()
        if method == "consensus":
            continue
        kind = next((k for frag, k in _METHOD_KINDS if frag in method), None)
        if kind is None:
            continue
        params = getattr(config, "params", None) or {}
        field = params.get("output_field") if isinstance(params, dict) else None
        spec = KNOWN_INPUTS[kind]
        if spec.suggestion and isinstance(params, dict):
            suggestion = params.get("suggestion_field") or None
            if suggestion != spec.suggestion:
                spec = Evidence(spec.kind, spec.higher_is_noisier, suggestion)
        if (
            field
            and field not in found
            and field not in exclude
            and field in schema
            and _fits(schema[field], spec)
        ):
            found[field] = spec
    return found


def parse_inputs(dataset, text, exclude=()):
    """User list ``"a,b,-c"`` -> ``{field: Evidence}``; empty = discover.

    Known detector fields keep their orientation; other numeric fields are
    read as higher = noisier, or higher = cleaner with a leading ``-``.
    """
    if not text or not str(text).strip():
        return discover_inputs(dataset, exclude)
    schema = dataset.get_field_schema()
    known = dict(KNOWN_INPUTS)
    known.update(discover_inputs(dataset, exclude))
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
                "fields found: %s" % (name, dataset.name, sorted(discover_inputs(dataset)) or "none")
            )
        spec = known.get(name)
        if spec is None:
            if _is_classification(schema[name]):
                spec = Evidence("label")
            elif _is_number(schema[name]):
                spec = Evidence("score", higher_is_noisier=not flip)
            else:
                raise InputError(
                    "Input field '%s' is a %s; inputs must be numeric score "
                    "fields or fo.Classification predictions"
                    % (name, type(schema[name]).__name__)
                )
        elif flip and spec.kind == "score":
            spec = Evidence("score", not spec.higher_is_noisier, spec.suggestion)
        if not _fits(schema[name], spec):
            raise InputError("Input field '%s' does not hold a %s" % (name, spec.kind))
        out[name] = spec
    return out


def _is_number(field):
    return isinstance(field, (fof.FloatField, fof.IntField))


def _is_classification(field):
    doc = getattr(field, "document_type", None)
    return doc is not None and issubclass(doc, fo.Classification)


def _fits(field, spec):
    return _is_classification(field) if spec.kind == "label" else _is_number(field)


def read_verified(view, ids, verified_field):
    """Verification of each id: 1 = label wrong, 0 = right, -1 = unknown.

    From the boolean ``verified_field`` (True = label correct, False =
    wrong) and/or the tags ``verified:correct`` / ``verified:wrong``.
    """
    index = {sid: k for k, sid in enumerate(ids)}
    verified = np.full(len(ids), -1, dtype=np.int64)
    schema = view.get_field_schema()
    paths = ["id", "tags"]
    use_field = bool(verified_field) and verified_field in schema
    if use_field:
        paths.append(verified_field)
    columns = view.values(paths)
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


class ComputeNoiseScore(DetectorOperator):
    name = "compute_noise_score"
    label = "Label noise: consensus noise score"
    description = (
        "Combines every detector that has run (kNN, Training-ValueNet, "
        "CleanNet, Dupes, self-learning, SCAN) into one noise score in "
        "[0, 1] and a suggested label"
    )
    method = "consensus"
    output_field = "noise_score"
    needs_embeddings = False
    method_params = (
        Param(
            "inputs",
            "",
            "Inputs",
            "Comma-separated detector fields to combine; empty = every "
            "detector output found on the dataset. Prefix a custom score "
            "with '-' when higher means cleaner",
        ),
        Param(
            "verified_field",
            "label_verified",
            "Verified field",
            "Boolean field: True = label checked correct, False = checked "
            "wrong (tags verified:correct / verified:wrong work too). With "
            "10+ of each, the weights are learned; else equal",
        ),
        Param(
            "normalisation",
            "auto",
            "Normalisation",
            "How scores are put on one scale: per_class ranks, global ranks, "
            "blend (mean of both), auto (best on verified samples, else blend)",
            choices=("auto", "blend", "per_class", "global"),
        ),
        Param(
            "suggestion_field",
            "suggested_label",
            "Suggested label field",
            "Where to store the class the evidence points to (empty: skip)",
        ),
        Param(
            "flag_mode",
            "estimated_rate",
            "Flag",
            "estimated_rate: flag as many samples (highest noise score first) "
            "as the estimated noise rate: the share of verified samples found "
            "mislabeled (50+ verified), else the share whose suggested label "
            "differs from their own (an overestimate with weak detectors). "
            "threshold: flag noise score > threshold (the score is a rank: "
            "0.8 flags about 20% at any noise rate; also used when no input "
            "suggests labels)",
            choices=("estimated_rate", "threshold"),
        ),
        Param("threshold", 0.8, "Flag threshold", "Used by flag mode 'threshold'"),
        Param(
            "flag_field",
            "noise_flagged",
            "Flag field",
            "Boolean field marking the flagged samples (empty: skip); they "
            "are also tagged if a tag is set",
        ),
        TAG_PARAM,
    )

    def describe_inputs(self, ctx, inputs):
        if ctx.dataset is None:
            return
        exclude = self._own_fields(ctx.params)
        found = discover_inputs(ctx.dataset, exclude)
        if found:
            text = ", ".join(
                "%s (%s)" % (name, _orientation(spec)) for name, spec in found.items()
            )
            inputs.view("found", types.Notice(label="Detector outputs found: " + text))
        else:
            inputs.view(
                "found",
                types.Warning(
                    label="No detector output on this dataset yet: run a "
                    "detector (e.g. compute_knn_disagreement) first"
                ),
            )

    @staticmethod
    def _own_fields(params):
        return {
            params.get("output_field") or "noise_score",
            params.get("suggestion_field") or "suggested_label",
            params.get("flag_field") or "noise_flagged",
        }

    def compute(self, ctx, view, params, progress):
        from ..methods.consensus import (
            flag_estimated_rate,
            label_agreement_score,
            noise_consensus,
        )

        dataset = ctx.dataset
        own = {params["output_field"], params["suggestion_field"], params["flag_field"]} - {""}
        if params["label_field"] in own:
            raise InputError(
                "output/suggestion field would overwrite the label field '%s'"
                % params["label_field"]
            )
        specs = parse_inputs(dataset, params["inputs"], exclude=own)
        specs = {k: v for k, v in specs.items() if k not in own and k != params["label_field"]}
        if not specs:
            raise InputError(
                "No detector output to combine on dataset '%s': run at least "
                "one detector first (e.g. compute_knn_disagreement), or name "
                "numeric score fields in 'inputs'" % dataset.name
            )
        data = load_inputs(view, params["label_field"], need_embeddings=False)
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

        schema = view.get_field_schema()
        paths = ["id"]
        for name, spec in specs.items():
            if spec.kind == "label":
                paths += [name + ".label", name + ".confidence"]
            else:
                paths.append(name)
            if spec.suggestion and spec.suggestion in schema:
                if _is_classification(schema[spec.suggestion]):
                    paths += [spec.suggestion + ".label", spec.suggestion + ".confidence"]
                else:
                    paths.append(spec.suggestion)
        columns = dict(zip(paths, view.values(paths)))
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
        if not scores:
            raise InputError(
                "The detector fields %s have no value on the target view: "
                "run the detectors on these samples first" % sorted(specs)
            )
        verified = read_verified(view, list(data.ids), params["verified_field"])
        progress(0.5, "combining %s" % ", ".join(scores))
        found = noise_consensus(
            scores,
            data.y,
            suggestions=suggestions,
            verified=verified,
            normalisation=params["normalisation"],
            seed=params["seed"],
        )
        noise = found["noise_score"].astype(np.float64)
        fields = {params["output_field"]: noise}
        if params["suggestion_field"] and suggestions:
            fields[params["suggestion_field"]] = ClassificationColumn(
                classes, found["suggested_label"], found["suggested_confidence"]
            )
        flag_rate = flag_rate_source = None
        if params["flag_mode"] == "estimated_rate":
            flagged, flag_rate, flag_rate_source = flag_estimated_rate(
                noise, data.y, found["suggested_label"], verified
            )
        if flag_rate is None:  # asked for, or no input suggests labels
            flagged = np.nan_to_num(noise, nan=0.0) > params["threshold"]
        if params["flag_field"]:
            fields[params["flag_field"]] = flagged
        num_verified = {
            "mislabeled": int((verified == 1).sum()),
            "correct": int((verified == 0).sum()),
        }
        info = dict(
            inputs=used,
            weights=found["weights"],
            weights_source=found["weights_source"],
            normalisation_used=found["normalisation"],
            flag_rate=flag_rate,
            flag_rate_source=flag_rate_source,
            num_verified=num_verified,
            skipped=data.skipped,
            classes=data.classes,
        )
        return Computed(
            ids=data.ids,
            fields=fields,
            flagged=flagged,
            summary=dict(
                inputs=sorted(scores),
                weights=found["weights"],
                weights_source=found["weights_source"],
                normalisation=found["normalisation"],
                flag_rate=flag_rate,
                flag_rate_source=flag_rate_source,
            ),
            results=dict(verified_auc=found["verified_auc"], **info),
            info=info,
        )

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key in (
            "num_samples", "num_flagged", "flag_rate", "inputs", "weights", "weights_source",
            "normalisation", "fields", "run_key", "seconds",
        ):
            outputs.str(key, label=key.replace("_", " "))
        return types.Property(outputs, view=types.View(label="Noise score computed"))


def _orientation(spec):
    if spec.kind == "label":
        return "predicted class"
    return "higher = noisier" if spec.higher_is_noisier else "higher = cleaner"
