"""Tagging of the suspicious samples, and the score / suggestion fields the
curation operators offer.

- ``tag_noisy_samples``: tag the samples beyond a threshold / the top-k of a
  score (overall or per class); the form previews the count.
- :func:`score_fields`, :func:`suggestion_fields`: the fields a score or a
  suggested class can be read from (also used by the panel);
  :func:`flagged_view` / :func:`flagged_count`: what a selection rule flags.

The corrections are in :mod:`.corrections`, the export in :mod:`.export`.
Everything here is aggregations (``count``, ``values``, ``count_values``) and
bulk writes: no Python loop over samples.
"""

import math

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from ...store import objects as lno
from ..base import ActionOperator
from ..forms import Param
from ...store.data import InputError, check_label_field, output_path, output_schema, tag_items

SELECTION_MODES = ("threshold", "top_k", "top_fraction")


# --------------------------------------------------------------- selection


def output_fields(collection):
    """Top-level fields, or each object's attributes on a patches view."""
    if lno.is_patches(collection):
        return output_schema(collection, collection._label_fields[0])
    return collection.get_field_schema()


def score_fields(collection):
    """Numeric fields of ``collection`` (candidate scores); on a patches view
    the numeric attributes of its objects (e.g. ``noise_score``)."""
    return sorted(
        name
        for name, f in output_fields(collection).items()
        if isinstance(f, (fof.FloatField, fof.IntField)) and not name.startswith("_")
    )


def suggestion_fields(collection):
    """Fields that can hold a proposed class: Classification or string."""
    out = []
    for name, f in output_fields(collection).items():
        doc = getattr(f, "document_type", None)
        if doc is not None and issubclass(doc, fo.Classification):
            out.append(name)
        elif isinstance(f, fof.StringField) and name not in ("filepath", "label"):
            out.append(name)
    return sorted(out)


def check_score_field(collection, score_field):
    if score_field not in score_fields(collection):
        raise InputError(
            "Score field '%s' is not a numeric field of dataset '%s'. Numeric "
            "fields: %s. Run compute_noise_score (or a detector) first"
            % (score_field, collection._root_dataset.name, score_fields(collection) or "none")
        )


def flagged_view(
    view,
    score_field="noise_score",
    mode="threshold",
    threshold=0.5,
    top_k=100,
    fraction=0.1,
    per_class=False,
    label_field="ground_truth",
    higher_is_noisier=True,
):
    """The samples of ``view`` a selection rule flags (a view, not a list).

    ``threshold``: score beyond ``threshold`` (above when higher = noisier,
    else below); ``top_k`` / ``top_fraction``: the k (or the fraction) most
    suspicious samples overall, or in each class of ``label_field`` when
    ``per_class``. Samples without a score are never flagged.
    """
    if mode not in SELECTION_MODES:
        raise InputError("mode must be one of %s, got %r" % (SELECTION_MODES, mode))
    score_field = output_path(view, label_field, score_field)  # objects: <label>.<score>
    scored = view.exists(score_field)
    if mode == "threshold":
        expr = F(score_field) > threshold if higher_is_noisier else F(score_field) < threshold
        return scored.match(expr)
    if per_class:
        check_label_field(view, label_field)
        counts = scored.count_values(label_field + ".label")
        ids = []
        for label, n in counts.items():
            if label is None:
                continue
            k = _how_many(mode, n, top_k, fraction)
            if k <= 0:
                continue
            part = scored.match(F(label_field + ".label") == label)
            ids += part.sort_by(score_field, reverse=higher_is_noisier).limit(k).values("id")
        return scored.select(ids, ordered=False)
    k = _how_many(mode, scored.count(), top_k, fraction)
    return scored.sort_by(score_field, reverse=higher_is_noisier).limit(max(k, 0))


def flagged_count(view, per_class_counts=False, **rule):
    """Number flagged by ``rule`` (see :func:`flagged_view`), by aggregation."""
    mode = rule.get("mode", "threshold")
    if mode != "threshold" and rule.get("per_class") and not per_class_counts:
        label_field = rule.get("label_field", "ground_truth")
        check_label_field(view, label_field)
        score = output_path(view, label_field, rule.get("score_field", "noise_score"))
        counts = view.exists(score).count_values(label_field + ".label")
        return sum(
            max(_how_many(mode, n, rule.get("top_k", 100), rule.get("fraction", 0.1)), 0)
            for c, n in counts.items()
            if c is not None
        )
    return flagged_view(view, **rule).count()


def _how_many(mode, n, top_k, fraction):
    if mode == "top_k":
        return min(int(top_k), n)
    return min(int(math.ceil(float(fraction) * n)), n)


# ---------------------------------------------------------- shared plumbing


def field_choice(inputs, name, choices, default, label, description):
    """A dropdown of existing fields that still accepts any typed value."""
    dropdown = types.AutocompleteView()
    for choice in choices:
        dropdown.add_choice(choice, label=choice)
    inputs.str(
        name,
        default=default,
        required=False,
        label=label,
        description=description,
        view=dropdown,
    )


# -------------------------------------------------------------- tag samples


class TagNoisySamples(ActionOperator):
    name = "tag_noisy_samples"
    label = "Label noise: tag suspicious samples"
    description = (
        "Tags the samples beyond a score threshold, or the top-k / top "
        "fraction (overall or per class)"
    )
    params = (
        Param("score_field", "noise_score", "Score field", "Numeric field to rank by"),
        Param(
            "mode", "threshold", "Select by",
            "threshold: score beyond a value; top_k: the k most suspicious; "
            "top_fraction: that fraction of the samples",
            choices=SELECTION_MODES,
        ),
        Param("threshold", 0.8, "Threshold", "Used by mode=threshold"),
        Param("top_k", 100, "k", "Used by mode=top_k"),
        Param("fraction", 0.1, "Fraction", "Used by mode=top_fraction (0-1)"),
        Param(
            "per_class", False, "Per class",
            "top_k / top_fraction within each class of the label field",
        ),
        Param("label_field", "ground_truth", "Label field", "Classes for per-class selection"),
        Param(
            "higher_is_noisier", True, "Higher = noisier",
            "Untick for scores where higher means cleaner (training_value, "
            "cleannet_similarity)",
        ),
        Param("tag", "noisy", "Tag", "Sample tag to add"),
        Param(
            "replace", True, "Replace previous tags",
            "First remove this tag from the rest of the target view",
        ),
    )

    def form(self, ctx, inputs):
        dataset = ctx.dataset
        fields = score_fields(dataset) if dataset is not None else []
        default = "noise_score" if "noise_score" in fields else (fields[0] if fields else "noise_score")
        for p in self.params:
            if p.name == "score_field":
                field_choice(inputs, p.name, fields, default, p.label, p.description)
            else:
                p.add_to(inputs, ctx)
        if dataset is None:
            return
        params = self.resolved_params(ctx)
        if not ctx.params.get("score_field"):
            params["score_field"] = default
        try:
            view = ctx.target_view()
            check_score_field(view, params["score_field"])
            n = flagged_count(view, **_rule(params))
        except InputError as e:
            bad = inputs.view("preview", types.Warning(label=str(e)))
            bad.invalid = True
            bad.error_message = str(e)
            return
        inputs.view(
            "preview",
            types.Notice(
                label="%d of %d samples will be tagged '%s'"
                % (n, view.count(), params["tag"])
            ),
        )

    def run(self, ctx, params, progress):
        view = ctx.target_view()
        check_score_field(view, params["score_field"])
        if not params["tag"]:
            raise InputError("tag must be a non-empty tag name")
        progress(0.1, "selecting")
        chosen = flagged_view(view, **_rule(params))
        ids = chosen.values("id")
        # sample tags, or label tags of the objects of a patches view
        tag_items(view, params["label_field"], ids, params["tag"], replace=params["replace"])
        per_class = {}
        if lno.is_patches(view):
            per_class = {
                str(k): v for k, v in chosen.count_values(params["label_field"] + ".label").items()
            }
        elif params["label_field"] in view.get_field_schema():
            per_class = {
                str(k): v
                for k, v in ctx.dataset.select(ids).count_values(
                    params["label_field"] + ".label"
                ).items()
            } if ids else {}
        return {"num_tagged": len(ids), "tag": params["tag"], "per_class": per_class}


def _rule(params):
    return dict(
        score_field=params["score_field"],
        mode=params["mode"],
        threshold=float(params["threshold"]),
        top_k=int(params["top_k"]),
        fraction=float(params["fraction"]),
        per_class=bool(params["per_class"]),
        label_field=params["label_field"],
        higher_is_noisier=bool(params["higher_is_noisier"]),
    )
