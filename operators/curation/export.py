"""The export of the curated dataset: the clean part and the suspect part
written separately.

``export_curated_dataset`` writes ``clean/<class>/...`` and
``dirty/<class>/...`` (or a FiftyOne format per part), plus ``ambiguous/`` and
``excluded/`` for what a reviewer marked so, confined to the chosen
directory (:mod:`store.safe_paths`); a patches view exports detection
datasets (:mod:`.object_export`).
"""

import json
import os
import shutil

import fiftyone as fo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from ...store import corrections as lnc
from ...store import objects as lno
from ...store import safe_paths as sp
from ..base import ActionOperator
from ..forms import Param
from ...store.data import InputError, check_label_field, output_path
from ...store.review import REVIEW_FIELD
from .object_export import OBJECT_FORMATS, export_objects
from .tagging import check_score_field

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
    """The folder named by ``export_dir``: not the filesystem root nor the
    home folder, not a file."""
    return sp.resolve_dir(
        path, "export_dir", "the folder to export into",
        "Refusing to export into '{root}': pick a dedicated folder",
        refuse_home=True, must_be_folder=True,
    )


def _prepare_export_dir(root, overwrite):
    """``root`` may hold other things; a previous export's split folders and
    manifest are replaced only with ``overwrite``."""
    sp.prepare_dir(root, overwrite, owned=("clean", "dirty", *REVIEWED_PARTS, MANIFEST))


def _folders(labels):
    """The class folders of the image tree: one per class; two classes whose
    shortened names clash get ``<name>`` and ``<name>~2`` (as the Dupes
    exports; before, the later class silently replaced the earlier one and
    its images were left out of the tree)."""
    return sp.class_folders(labels, rename_clashes=True)


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
