"""Operator: compute image embeddings with a torchvision backbone.

Patches mode: on a patches view of fo.Detection objects (or with
``patches_field`` on a sample view), each box is cropped with a context
margin and embedded; the vector is written on each object
(``<field>.detections.<embeddings_field>``, the convention of FiftyOne's
``compute_patch_embeddings``), e.g. ``ground_truth.embeddings`` in the
patches view.
"""

import numpy as np

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .common import (
    Param, call_operator, delegation_input, operator_config, progress_reporter, reload_app,
)
from . import objects as lno
from .data import InputError, check_label_field, check_media, is_empty, write_outputs


class ComputeEmbeddings(foo.Operator):
    params = (
        Param(
            "model",
            "resnet18",
            "Backbone",
            "torchvision model whose pooled penultimate features are stored",
            choices=("resnet18", "resnet50", "mobilenet_v3_large"),
        ),
        Param(
            "weights",
            "DEFAULT",
            "Weights",
            "DEFAULT = torchvision's pretrained ImageNet weights (needs "
            "internet once); or a path to a local state_dict file; or empty "
            "for random weights (tests only)",
        ),
        Param(
            "embeddings_field",
            "embeddings",
            "Embeddings field",
            "Sample field in which to store the vectors",
        ),
        Param("batch_size", 32, "Batch size", "Images per forward pass"),
        Param(
            "patches_field",
            "",
            "Objects field (patches mode)",
            "Embed each object of this fo.Detections field instead of the "
            "images (automatic on a patches view); vectors go on each object",
        ),
        Param(
            "patch_margin",
            0.1,
            "Crop margin",
            "Patches mode: context added around each box, as a fraction of "
            "its width/height on each side",
        ),
        Param(
            "unreadable_tag",
            "embeddings:unreadable",
            "Tag for unreadable images",
            "Images that cannot be decoded are skipped and get this tag",
        ),
    )

    name = "compute_embeddings"
    label = "Label noise: compute embeddings"
    description = "Embed images (or each object's box) with a torchvision backbone"

    @property
    def config(self):
        return operator_config(self)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx)
        for param in self.params:
            param.add_to(inputs, ctx)
        delegation_input(inputs)
        return types.Property(inputs, view=types.View(label="Compute embeddings"))

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def execute(self, ctx):
        from ..methods.embeddings import embed_boxes, embed_images, load_backbone

        p = {q.name: ctx.params.get(q.name, q.default) for q in self.params}
        view = ctx.target_view()
        check_media(view)
        if is_empty(view):
            raise InputError("The target view is empty: nothing to embed")
        field = p["embeddings_field"]
        objects_field = p["patches_field"] or ""
        if objects_field or lno.is_patches(view):
            if not lno.is_patches(view):
                view = _patches_of(view, objects_field)
            objects_field = objects_field or view._label_fields[0]
            check_label_field(view, objects_field)
            lno.check_objects(view, objects_field, require_labels=False)
            if field and field.startswith(objects_field + "."):
                field = field[len(objects_field) + 1:]
        if not field or not field.isidentifier():
            raise InputError("embeddings_field must be a field name, got %r" % field)
        progress = progress_reporter(ctx)
        model, preprocess, device = load_backbone(p["model"], p["weights"] or None)
        if objects_field:
            ids, paths, boxes = view.values(["id", "filepath", objects_field + ".bounding_box"])
            features, failed = embed_boxes(
                paths, boxes, model, preprocess, device, int(p["batch_size"]),
                float(p["patch_margin"]), progress,
            )
        else:
            ids, paths = view.values(["id", "filepath"])
            features, failed = embed_images(
                paths, model, preprocess, device, int(p["batch_size"]), progress
            )
        ok = np.isfinite(features).all(axis=1) if features.size else np.zeros(len(ids), bool)
        good_ids = [i for i, keep in zip(ids, ok) if keep]
        written = write_outputs(
            view, objects_field, good_ids, {field: [features[k] for k in np.flatnonzero(ok)]}
        )
        bad_ids = [ids[i] for i, _ in failed]
        if bad_ids and p["unreadable_tag"] and objects_field:
            lno.tag_objects(view, objects_field, bad_ids, p["unreadable_tag"], replace=False)
        elif bad_ids and p["unreadable_tag"]:
            ctx.dataset.select(bad_ids).tag_samples(p["unreadable_tag"])
        reload_app(ctx)
        return {
            "num_embedded": len(good_ids),
            "num_unreadable": len(bad_ids),
            "unreadable": [
                "%s (%s)" % (paths[i], msg) for i, msg in failed[:20]
            ],
            "dim": int(features.shape[1]),
            "device": str(device),
            "fields": written,
        }

    def __call__(self, sample_collection, delegate=False, **params):
        """Embeds the images of a dataset or view (see README)."""
        return call_operator(self, sample_collection, params, delegate)


def _patches_of(view, objects_field):
    """The patches view of ``objects_field`` (an fo.Detections field)."""
    import fiftyone as fo

    field_ = view.get_field_schema().get(objects_field)
    doc_type = getattr(field_, "document_type", None)
    if doc_type is None or not issubclass(doc_type, fo.Detections):
        raise InputError(
            "patches_field '%s' is not an fo.Detections field of this view (it "
            "is %s). Pass the field holding the boxes, or empty to embed images"
            % (objects_field, "missing" if field_ is None else type(field_).__name__)
        )
    return view.to_patches(objects_field)
