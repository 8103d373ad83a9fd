"""Operator: compute image embeddings with a torchvision backbone."""

import numpy as np

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .common import Param, call_operator, delegation_input, progress_reporter, reload_app
from .data import InputError, check_media, is_empty, write_sample_fields


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
            "unreadable_tag",
            "embeddings:unreadable",
            "Tag for unreadable images",
            "Images that cannot be decoded are skipped and get this tag",
        ),
    )

    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_embeddings",
            label="Label noise: compute embeddings",
            description="Embed images with a torchvision backbone",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

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
        from ..methods.embeddings import embed_images, load_backbone

        p = {q.name: ctx.params.get(q.name, q.default) for q in self.params}
        view = ctx.target_view()
        check_media(view)
        if is_empty(view):
            raise InputError("The target view is empty: nothing to embed")
        field = p["embeddings_field"]
        if not field or not field.isidentifier():
            raise InputError("embeddings_field must be a field name, got %r" % field)
        progress = progress_reporter(ctx)
        ids, paths = view.values(["id", "filepath"])
        model, preprocess, device = load_backbone(p["model"], p["weights"] or None)
        features, failed = embed_images(
            paths, model, preprocess, device, int(p["batch_size"]), progress
        )
        ok = np.isfinite(features).all(axis=1) if features.size else np.zeros(len(ids), bool)
        good_ids = [i for i, keep in zip(ids, ok) if keep]
        write_sample_fields(
            ctx.dataset, good_ids, {field: [features[k] for k in np.flatnonzero(ok)]}
        )
        bad_ids = [ids[i] for i, _ in failed]
        if bad_ids and p["unreadable_tag"]:
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
        }

    def __call__(self, sample_collection, delegate=False, **params):
        """Embeds the images of a dataset or view (see README)."""
        return call_operator(self, sample_collection, params, delegate)
