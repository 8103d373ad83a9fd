"""Operators of the review loop: tag, correct, undo, export.

- ``tag_noisy_samples``: tag the samples beyond a threshold / the top-k of a
  score (overall or per class); the form previews the count.
- ``apply_label_corrections``: copy a suggestion (``suggested_label``,
  ``corrected_label``, ``dupe_label``, ``knn_label``...) into the label field
  for the target view, through :mod:`store.corrections` (original kept,
  record of the change).
- ``revert_label_corrections``: exact undo.
- ``export_curated_dataset``: write the clean part and the suspect part
  separately (``clean/<class>/...`` and ``dirty/<class>/...``, or a FiftyOne
  format), confined to the chosen directory.

Everything here is aggregations (``count``, ``values``, ``count_values``) and
bulk writes: no Python loop over samples except when copying files.
"""

import json
import math
import os
import shutil

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from ...store import corrections as lnc
from ...store import objects as lno
from ...store import safe_paths as sp
from ..base import ActionOperator
from ..forms import Param, confirm_input
from ...store.data import InputError, check_label_field, output_path, output_schema, tag_items
from .object_export import OBJECT_FORMATS, export_objects

SOURCE = "curation"
SELECTION_MODES = ("threshold", "top_k", "top_fraction")


# --------------------------------------------------------------- selection


def _outputs(collection):
    """Top-level fields, or each object's attributes on a patches view."""
    if lno.is_patches(collection):
        return output_schema(collection, collection._label_fields[0])
    return collection.get_field_schema()


def score_fields(collection):
    """Numeric fields of ``collection`` (candidate scores); on a patches view
    the numeric attributes of its objects (e.g. ``noise_score``)."""
    return sorted(
        name
        for name, f in _outputs(collection).items()
        if isinstance(f, (fof.FloatField, fof.IntField)) and not name.startswith("_")
    )


def suggestion_fields(collection):
    """Fields that can hold a proposed class: Classification or string."""
    out = []
    for name, f in _outputs(collection).items():
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


def _field_choice(inputs, name, choices, default, label, description):
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
                _field_choice(inputs, p.name, fields, default, p.label, p.description)
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


# ------------------------------------------------------- apply corrections


def suggestion_path(collection, field):
    """``field.label`` for a Classification field, ``field`` for a string
    (prefixed with the objects field on a patches view)."""
    schema = _outputs(collection)
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
                _field_choice(
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


# ------------------------------------------------------------------ export

EXPORT_FORMATS = ("image_tree", "fiftyone_dataset", "fiftyone_image_classification")
#: formats of a patches view (objects): detection datasets
OBJECT_EXPORT_FORMATS = tuple(OBJECT_FORMATS)
MANIFEST = "curation.json"


class ExportCuratedDataset(ActionOperator):
    name = "export_curated_dataset"
    label = "Label noise: export clean and suspect parts"
    description = (
        "Writes the clean part and the suspect part of the target view "
        "separately: <dir>/clean/<class>/... and <dir>/dirty/<class>/...; "
        "samples a reviewer marked ambiguous or excluded (no class fits) go "
        "to ambiguous/ and excluded/, never to clean/"
    )
    params = (
        Param("export_dir", "", "Export directory", "Created if missing; nothing is written outside it"),
        Param(
            "split_by", "tag", "Suspect samples are",
            "tag: samples with the dirty tag; score: samples beyond the threshold",
            choices=("tag", "score"),
        ),
        Param("dirty_tag", "noisy", "Dirty tag", "Used by split_by=tag"),
        Param("score_field", "noise_score", "Score field", "Used by split_by=score"),
        Param("threshold", 0.8, "Threshold", "Used by split_by=score (above = suspect)"),
        Param("label_field", "ground_truth", "Label field", "Class of each sample"),
        Param(
            "labels", "current", "Labels",
            "current: the label field as it is now (with applied corrections); "
            "original: the labels before any correction",
            choices=("current", "original"),
        ),
        Param(
            "format", "image_tree", "Format",
            "image_tree: <split>/<class>/<image>; or a FiftyOne format per split; "
            "objects (patches view): coco_detection, fiftyone_image_detection "
            "or fiftyone_dataset",
            choices=EXPORT_FORMATS + OBJECT_EXPORT_FORMATS,
        ),
        Param("include_dirty", True, "Export the suspect part", "Untick to export only clean/"),
        Param(
            "overwrite", False, "Replace a previous export",
            "Delete clean/, dirty/, ambiguous/, excluded/ and curation.json of a previous "
            "export in this directory first",
        ),
    )

    def form(self, ctx, inputs):
        super().form(ctx, inputs)
        if ctx.dataset is None:
            return
        params = self.resolved_params(ctx)
        try:
            clean, dirty = self.split(ctx.target_view(), params)
            msg = "%d clean and %d suspect samples" % (clean.count(), dirty.count())
            marked = [(n, v.count()) for n, v in reviewed_parts(ctx.target_view(), params["label_field"])]
            if any(c for _, c in marked):
                msg += "; " + ", ".join("%d %s" % (c, n) for n, c in marked)
        except InputError as e:
            bad = inputs.view("preview", types.Warning(label=str(e)))
            bad.invalid = True
            bad.error_message = str(e)
            return
        inputs.view("preview", types.Notice(label=msg))

    @staticmethod
    def split(view, params):
        label_field = params["label_field"]
        check_label_field(view, label_field)
        view = view.exists(label_field)
        if params["split_by"] == "tag" and not params["dirty_tag"]:
            raise InputError("dirty_tag is required when split_by=tag")
        if params["split_by"] == "tag" and lno.is_patches(view):  # label tags
            tagged = F(label_field + ".tags").contains(params["dirty_tag"])
            dirty, clean = view.match(tagged), view.match(~tagged)
        elif params["split_by"] == "tag":
            dirty = view.match_tags(params["dirty_tag"])
            clean = view.match_tags(params["dirty_tag"], bool=False)
        elif params["split_by"] == "score":
            check_score_field(view, params["score_field"])
            score = output_path(view, label_field, params["score_field"])
            expr = F(score) > float(params["threshold"])
            dirty = view.match(expr)
            clean = view.match(~expr)
        else:
            raise InputError("split_by must be 'tag' or 'score', got %r" % params["split_by"])
        marked = _verdict(view, label_field).is_in(list(REVIEWED_PARTS.values()))
        return clean.match(~marked), dirty.match(~marked)

    def run(self, ctx, params, progress):
        if lno.is_patches(ctx.target_view()):
            return self.run_objects(ctx, params, progress)
        if params["format"] not in EXPORT_FORMATS:
            raise InputError("format must be one of %s" % (EXPORT_FORMATS,))
        if params["labels"] not in ("current", "original"):
            raise InputError("labels must be 'current' or 'original'")
        root = _export_root(params["export_dir"])
        clean, dirty = self.split(ctx.target_view(), params)
        label_field = params["label_field"]
        path = label_field
        orig = lnc.original_field(label_field)
        use_original = params["labels"] == "original" and orig in ctx.dataset.get_field_schema()
        parts = [("clean", clean)] + ([("dirty", dirty)] if params["include_dirty"] else [])
        parts += [(n, v) for n, v in reviewed_parts(ctx.target_view(), label_field) if v.count()]
        _prepare_export_dir(root, params["overwrite"])
        summary = {"dir": root, "format": params["format"], "labels": params["labels"]}
        manifest = {"label_field": label_field, "labels": params["labels"], "splits": {}}
        total = sum(v.count() for _, v in parts) or 1
        done = 0
        for split, view in parts:
            labels = view.values(path + ".label")
            if use_original:
                originals = view.values(orig + ".label")
                labels = [o if o is not None else c for o, c in zip(originals, labels)]
            target = sp.join_inside(root, split)
            os.makedirs(target, exist_ok=True)
            if params["format"] == "image_tree":
                rows, missing = _copy_tree(view, labels, target, progress, done, total)
                manifest["splits"][split] = {"files": rows, "classes": _folders(labels)}
            else:
                rows, missing = _export_fiftyone(
                    view, target, params["format"], label_field, orig if use_original else None
                )
                manifest["splits"][split] = {"num_samples": rows}
            done += view.count()
            summary["num_" + split] = rows if isinstance(rows, int) else len(rows)
            summary["missing_" + split] = missing[:20]
        with open(sp.join_inside(root, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
        progress(1.0, "exported")
        return summary


    def run_objects(self, ctx, params, progress):
        """The export of a patches view: detection datasets of the clean and
        the suspect objects (see :mod:`operators.curation.object_export`)."""
        if params["format"] not in OBJECT_EXPORT_FORMATS:
            raise InputError(
                "format '%s' exports image classifications; the target view is "
                "a patches view (objects): pass format='coco_detection', "
                "'fiftyone_image_detection' or 'fiftyone_dataset'" % params["format"]
            )
        if params["labels"] not in ("current", "original"):
            raise InputError("labels must be 'current' or 'original'")
        root = _export_root(params["export_dir"])
        clean, dirty = self.split(ctx.target_view(), params)
        parts = [("clean", clean)] + ([("dirty", dirty)] if params["include_dirty"] else [])
        parts += [(n, v) for n, v in reviewed_parts(ctx.target_view(), params["label_field"]) if v.count()]
        _prepare_export_dir(root, params["overwrite"])
        summary = {"dir": root, "format": params["format"], "labels": params["labels"]}
        manifest = {"label_field": params["label_field"], "labels": params["labels"],
                    "objects": True, "splits": {}}
        for k, (split, view) in enumerate(parts):
            target = sp.join_inside(root, split)
            os.makedirs(target, exist_ok=True)
            num_objects, num_images = export_objects(
                view, target, params["format"], params["label_field"],
                use_original=params["labels"] == "original",
            )
            manifest["splits"][split] = {"num_objects": num_objects, "num_images": num_images}
            summary["num_" + split] = num_objects
            summary["num_images_" + split] = num_images
            progress((k + 1) / len(parts), "exported %s" % split)
        with open(sp.join_inside(root, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
        return summary


#: export folder -> review verdict of the items it holds
REVIEWED_PARTS = {"ambiguous": "ambiguous", "excluded": "exclude"}


def _verdict(view, label_field):
    """The review verdict of each item (sample record, or object attribute)."""
    from ...store.review import REVIEW_FIELD

    if lno.is_patches(view):
        return F(output_path(view, label_field, "review_verdict"))
    return F(REVIEW_FIELD + ".verdict")


def reviewed_parts(view, label_field):
    """``[(folder, view)]`` of the items a reviewer marked ambiguous or
    excluded (left out of ``clean/`` and ``dirty/``)."""
    view = view.exists(label_field)
    verdict = _verdict(view, label_field)
    return [(folder, view.match(verdict == v)) for folder, v in REVIEWED_PARTS.items()]


def _export_root(path):
    if not path or not isinstance(path, str):
        raise InputError("export_dir is required: the folder to export into")
    root = os.path.realpath(os.path.expanduser(path))
    if root == os.path.sep or root == os.path.realpath(os.path.expanduser("~")):
        raise InputError("Refusing to export into '%s': pick a dedicated folder" % root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise InputError("'%s' exists and is not a folder" % root)
    return root


def _prepare_export_dir(root, overwrite):
    os.makedirs(root, exist_ok=True)
    ours = [n for n in ("clean", "dirty", *REVIEWED_PARTS, MANIFEST)
            if os.path.lexists(os.path.join(root, n))]
    if not ours:
        return
    if not overwrite:
        raise InputError(
            "'%s' already holds %s from a previous export: pick another "
            "folder or pass overwrite=True" % (root, ", ".join(ours))
        )
    for name in ours:
        path = os.path.join(root, name)
        if os.path.islink(path):
            os.unlink(path)  # removes the link only, never its target
        elif os.path.isdir(path):
            if not sp.inside(root, path):
                raise InputError("refusing to delete '%s': outside '%s'" % (path, root))
            shutil.rmtree(path)
        else:
            os.remove(path)


def _folders(labels):
    return {sp.safe_name(c): c for c in sorted({x for x in labels if isinstance(x, str) and x})}


def _copy_tree(view, labels, target, progress, done, total):
    ids, paths = view.values(["id", "filepath"])
    folder_of = {c: f for f, c in _folders(labels).items()}
    used, rows, missing = {}, [], []
    for k, (sid, src, label) in enumerate(zip(ids, paths, labels)):
        if label not in folder_of:
            continue
        folder = folder_of[label]
        os.makedirs(sp.join_inside(target, folder), exist_ok=True)
        name = sp.unique_name(
            sp.safe_file_name(os.path.basename(src)), used.setdefault(folder, set())
        )
        dest = sp.join_inside(target, folder, name)
        try:
            shutil.copyfile(src, dest)
        except OSError as e:
            missing.append("%s (%s)" % (src, type(e).__name__))
            continue
        rows.append({"file": folder + "/" + name, "label": label, "id": sid})
        if k % 500 == 0:
            progress((done + k) / total, "copied %d/%d" % (done + k, total))
    return rows, missing


def _export_fiftyone(view, target, fmt, label_field, original=None):
    """Exports ``view`` in a FiftyOne format; ``original``: the field of the
    pre-correction labels to export instead (a view stage, nothing written
    to the dataset)."""
    if original:
        view = view.set_field(
            label_field,
            F(original).exists().if_else(F(original), F(label_field)),
        )
    dataset_type = {
        "fiftyone_dataset": fo.types.FiftyOneDataset,
        "fiftyone_image_classification": fo.types.FiftyOneImageClassificationDataset,
    }[fmt]
    kwargs = dict(export_dir=target, dataset_type=dataset_type)
    if fmt != "fiftyone_dataset":
        kwargs["label_field"] = label_field
    view.export(**kwargs)
    return view.count(), []
