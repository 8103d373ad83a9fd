"""Operators of the corrections: copy a suggestion into the label field, undo.

- ``apply_label_corrections``: copy a suggestion (``suggested_label``,
  ``corrected_label``, ``dupe_label``, ``knn_label``...) into the label field
  for the target view, through :mod:`store.corrections` (original kept,
  record of the change).
- ``revert_label_corrections``: exact undo.

Aggregations and bulk writes only: no Python loop over samples.
"""

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from ...store import corrections as lnc
from ...store import objects as lno
from ..base import ActionOperator
from ..forms import Param, confirm_input
from ...store.data import InputError, check_label_field
from .tagging import field_choice, output_fields, suggestion_fields

#: the source recorded with the corrections made here (and by the panel)
SOURCE = "curation"


def suggestion_path(collection, field):
    """``field.label`` for a Classification field, ``field`` for a string
    (prefixed with the objects field on a patches view)."""
    schema = output_fields(collection)
    if field not in schema:
        raise InputError(
            "Suggestion field '%s' does not exist. Fields that can hold a "
            "suggested class: %s. Run compute_noise_score (suggested_label) "
            "or a detector that proposes labels first"
            % (field, suggestion_fields(collection) or "none")
        )
    f = schema[field]
    doc = getattr(f, "document_type", None)
    prefix = collection._label_fields[0] + "." if lno.is_patches(collection) else ""
    if doc is not None and issubclass(doc, fo.Classification):
        return prefix + field + ".label", prefix + field + ".confidence"
    if isinstance(f, fof.StringField):
        return prefix + field, None
    raise InputError(
        "Suggestion field '%s' is a %s: it must be an fo.Classification or a "
        "string field" % (field, type(f).__name__)
    )


def corrections_view(view, label_field, source_field, only_tag="", min_confidence=0.0):
    """Samples of ``view`` whose suggestion exists and differs from the label."""
    check_label_field(view, label_field)
    if source_field == label_field:
        raise InputError("The suggestion field cannot be the label field itself")
    label_path, conf_path = suggestion_path(view, source_field)
    out = view
    if only_tag and lno.is_patches(view):  # label tags of the objects
        out = out.match(F(label_field + ".tags").contains(only_tag))
    elif only_tag:
        out = out.match_tags(only_tag)
    out = out.exists(label_path).match(F(label_path) != F(label_field + ".label"))
    if conf_path and min_confidence and float(min_confidence) > 0:
        out = out.match(F(conf_path) >= float(min_confidence))
    return out


class ApplyLabelCorrections(ActionOperator):
    name = "apply_label_corrections"
    label = "Label noise: apply suggested labels"
    description = (
        "Copies a suggested class into the label field for the target view; "
        "the original is kept in <label_field>_original (undo with "
        "revert_label_corrections)"
    )
    destructive = True
    risk = "medium"
    params = (
        Param("label_field", "ground_truth", "Label field", "The labels to correct"),
        Param(
            "source_field", "suggested_label", "Take labels from",
            "suggested_label (consensus), corrected_label (self-learning), "
            "dupe_label (Dupes), knn_label (kNN), or any Classification/string field",
        ),
        Param(
            "only_tag", "", "Only samples tagged",
            "Restrict to samples of the target view with this tag (e.g. "
            "noisy); empty = the whole target view",
        ),
        Param(
            "min_confidence", 0.0, "Minimum confidence",
            "Skip suggestions whose confidence is below this",
        ),
    )

    def form(self, ctx, inputs):
        dataset = ctx.dataset
        for p in self.params:
            if p.name == "source_field" and dataset is not None:
                field_choice(
                    inputs, p.name, suggestion_fields(dataset), p.default, p.label, p.description
                )
            else:
                p.add_to(inputs, ctx)
        if dataset is None:
            return
        params = self.resolved_params(ctx)
        try:
            n = self.target(ctx, params).count()
        except InputError as e:
            bad = inputs.view("preview", types.Warning(label=str(e)))
            bad.invalid = True
            bad.error_message = str(e)
            return
        if n == 0:
            bad = inputs.view(
                "preview", types.Warning(label="No sample of the target view has a different suggestion")
            )
            bad.invalid = True
            bad.error_message = "nothing to correct in the target view"
            return
        confirm_input(
            inputs,
            ctx,
            "relabel %d samples in '%s' with '%s' (originals kept in %s)"
            % (n, params["label_field"], params["source_field"],
               lnc.original_field(params["label_field"])),
        )

    @staticmethod
    def target(ctx, params):
        return corrections_view(
            ctx.target_view(),
            params["label_field"],
            params["source_field"],
            params["only_tag"],
            params["min_confidence"],
        )

    def run(self, ctx, params, progress):
        view = self.target(ctx, params)
        label_path, _ = suggestion_path(view, params["source_field"])
        progress(0.1, "reading suggestions")
        ids, labels = view.values(["id", label_path])
        progress(0.5, "relabeling %d samples" % len(ids))
        if lno.is_patches(view):  # objects: label changed on each Detection
            result = lnc.apply_object_corrections(
                ctx.target_view(), ids, labels, params["label_field"], source=SOURCE
            )
        else:
            result = lnc.apply_corrections(
                ctx.dataset, ids, labels, params["label_field"], source=SOURCE
            )
        original = lnc.original_field(params["label_field"])
        if lno.is_patches(view):
            original = "%s.detections.%s" % (params["label_field"], lnc.OBJECT_ORIGINAL)
        return dict(
            result,
            label_field=params["label_field"],
            source_field=params["source_field"],
            original_field=original,
        )


class RevertLabelCorrections(ActionOperator):
    name = "revert_label_corrections"
    label = "Label noise: undo label corrections"
    description = "Restores the original labels of the corrected samples of the target view"
    risk = "medium"
    params = (
        Param("label_field", "ground_truth", "Label field", "The corrected label field"),
        Param(
            "source", "", "Only corrections by",
            "Only undo corrections recorded with this source (curation, "
            "dupes...); empty = all",
        ),
    )

    def form(self, ctx, inputs):
        super().form(ctx, inputs)
        if ctx.dataset is None:
            return
        params = self.resolved_params(ctx)
        n = len(self._ids(ctx, params))
        inputs.view(
            "preview",
            types.Notice(label="%d corrected samples in the target view will be restored" % n),
        )

    @staticmethod
    def _ids(ctx, params):
        view = ctx.target_view()
        if lno.is_patches(view):
            return lnc.corrected_objects(
                view, params["label_field"], params["source"] or None
            ).values("id")
        corrected = set(
            lnc.corrected_ids(ctx.dataset, params["label_field"], source=params["source"] or None)
        )
        if not corrected:
            return []
        return ctx.target_view().select(list(corrected)).values("id")

    def run(self, ctx, params, progress):
        ids = self._ids(ctx, params)
        view = ctx.target_view()
        if lno.is_patches(view):
            result = lnc.revert_object_corrections(
                view, params["label_field"], ids=ids, source=params["source"] or None
            )
            return {"num_reverted": result["num_reverted"], "label_field": params["label_field"]}
        result = lnc.revert_corrections(
            ctx.dataset, params["label_field"], ids=ids, source=params["source"] or None
        )
        return {"num_reverted": result["num_reverted"], "label_field": params["label_field"]}
