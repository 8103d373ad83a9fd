"""Operator: image (or object) embeddings through FiftyOne's own machinery.

``model`` is any FiftyOne model zoo name that exposes embeddings
(``foz.list_zoo_models(tags="embeddings")``, custom manifests of
``fo.config.model_zoo_manifest_paths`` included) or, from Python, a
``fiftyone.core.models.Model`` object; the vectors are computed by
FiftyOne's ``compute_embeddings`` (images) or ``compute_patch_embeddings``
(objects: each box with a context margin, ``alpha``), so batching, data
loading, GPU use and progress are FiftyOne's. The default,
:data:`DEFAULT_MODEL`, is the zoo's CLIP ViT-B/32 (README, "Embeddings":
why). The plugin's older backbone names stay valid: ``resnet18`` and
``resnet50`` are the zoo's ImageNet ResNets; with ``weights`` = a local
``state_dict`` file (offline), ``""`` (random, tests), or for
``mobilenet_v3_large`` (not in the zoo), the torchvision network is built
locally (:mod:`methods.embeddings`) and run as a FiftyOne
``TorchImageModel`` through the same FiftyOne path.

Patches mode: on a patches view of fo.Detection objects (or with
``patches_field`` on a sample view) each object gets a vector, written on the
object (``<field>.detections.<embeddings_field>``, FiftyOne's convention),
e.g. ``ground_truth.embeddings`` in the patches view.

Images FiftyOne cannot embed (unreadable, corrupt, missing) are never fatal:
they are re-tried one by one to name each with its error, counted, and
tagged.
"""

import time

import numpy as np

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .base import call_operator, operator_config, progress_reporter, reload_app
from .forms import Param, delegation_input, device_param, resolve_device
from ..store import objects as lno
from ..store.data import InputError, check_label_field, check_media, is_empty, write_outputs

#: the recommended model, offered by the zoo of every supported FiftyOne
DEFAULT_MODEL = "clip-vit-base32-torch"
#: the plugin's older backbone names -> the zoo model they stand for with
#: weights="DEFAULT" (mobilenet_v3_large has no zoo entry: built locally)
ZOO_ALIASES = {"resnet18": "resnet18-imagenet-torch", "resnet50": "resnet50-imagenet-torch"}
#: prefix of the stand-in name of a Model object passed from Python
_OBJECT_PREFIX = "python-model-object:"
_OBJECTS = {}


def model_choices():
    """Names offered in the forms: the default, the zoo's models that expose
    embeddings (custom manifests included), then the older backbone names."""
    import fiftyone.zoo as foz

    from ..methods.embeddings import BACKBONES

    try:
        zoo = sorted(foz.list_zoo_models(tags="embeddings"))
    except Exception:  # a broken custom manifest must not break the form
        zoo = []
    names = [DEFAULT_MODEL] + [n for n in zoo if n != DEFAULT_MODEL]
    return names + [n for n in BACKBONES if n not in names]


def load_embeddings_model(model=DEFAULT_MODEL, weights="DEFAULT", device=None):
    """The ``fiftyone.core.models.Model`` that ``model``/``weights`` name,
    on ``device`` (None: CUDA when present, else CPU; a Model object keeps
    its own).

    Returns:
        ``(model, description)``

    Raises:
        InputError: unknown name, a model without embeddings, weights that
            cannot be had (offline), or weights that do not apply
    """
    import fiftyone.core.models as fom

    from ..methods.embeddings import BACKBONES

    if isinstance(model, str) and model.startswith(_OBJECT_PREFIX):
        model = _OBJECTS.get(model)
        if model is None:
            raise InputError(
                "A Model object can only be passed from Python, in the same "
                "process (not delegated): pass a zoo model name instead"
            )
    if isinstance(model, fom.Model):
        _check_embeds(model, type(model).__name__)
        return model, type(model).__name__
    if not isinstance(model, str) or not model.strip():
        raise InputError(
            "model must be a FiftyOne zoo model name (e.g. '%s'; see "
            "foz.list_zoo_models(tags='embeddings')) or a "
            "fiftyone.core.models.Model, got %r" % (DEFAULT_MODEL, model)
        )
    name = model.strip()
    weights = "" if weights is None else str(weights).strip()
    if name in BACKBONES and (weights != "DEFAULT" or name not in ZOO_ALIASES):
        return _local_model(name, weights, device), "%s (torchvision, weights=%s)" % (
            name, weights or "random")
    if weights != "DEFAULT":
        raise InputError(
            "weights=%r applies to the torchvision backbones %s only; a zoo "
            "model (%s) loads its own weights: leave weights='DEFAULT' (to run "
            "a zoo model offline, put its weights file in fo.config."
            "model_zoo_dir or register a custom manifest, see README)"
            % (weights, BACKBONES, name)
        )
    return _zoo_model(ZOO_ALIASES.get(name, name), device), ZOO_ALIASES.get(name, name)


def _zoo_model(name, device=None):
    import fiftyone.zoo as foz

    available = foz.list_zoo_models()
    if name not in available:
        raise InputError(
            "'%s' is not a FiftyOne zoo model. Pick one that exposes "
            "embeddings: foz.list_zoo_models(tags='embeddings') (e.g. %s), a "
            "model of a manifest in fo.config.model_zoo_manifest_paths, or one "
            "of the torchvision backbones resnet18, resnet50, "
            "mobilenet_v3_large" % (name, DEFAULT_MODEL)
        )
    try:
        model = foz.load_zoo_model(name, **({"device": device} if device else {}))
    except Exception as e:
        downloaded = _is_downloaded(name)
        raise InputError(
            "Could not load zoo model '%s'%s: %s: %s. Offline, use local "
            "weights: model='resnet18' (or resnet50, mobilenet_v3_large) with "
            "weights='/path/to/state_dict.pth', or a custom zoo manifest "
            "(README, 'Embeddings')"
            % (name, "" if downloaded else " (its weights are not downloaded "
               "yet and the download failed: no internet?)", type(e).__name__, e)
        ) from e
    _check_embeds(model, name)
    return model


def _is_downloaded(name):
    import fiftyone.zoo as foz

    try:
        return bool(foz.is_zoo_model_downloaded(name))
    except Exception:
        return False


def _check_embeds(model, name):
    if not getattr(model, "has_embeddings", False):
        raise InputError(
            "Model '%s' does not expose embeddings (has_embeddings is False): "
            "pick one of foz.list_zoo_models(tags='embeddings'), e.g. %s"
            % (name, DEFAULT_MODEL)
        )


def _local_model(name, weights, device=None):
    """A torchvision backbone built here, run as a FiftyOne TorchImageModel
    (embedding = the input of its head, as the zoo's ResNets)."""
    import os

    import fiftyone.utils.torch as fout

    from ..methods.embeddings import build_backbone, head_layer, preprocess

    if weights not in ("", "DEFAULT") and not os.path.isfile(weights):
        raise InputError(
            "weights '%s' is not a file: pass a torchvision state_dict (.pth) "
            "for %s, 'DEFAULT' (download once) or '' (random weights, tests "
            "only)" % (weights, name)
        )
    try:
        network = build_backbone(name, weights or None)
    except Exception as e:
        raise InputError(
            "Could not build %s with weights %r: %s: %s. A state_dict saved "
            "from torchvision.models.%s() is expected" % (name, weights, type(e).__name__, e, name)
        ) from e
    config = fout.TorchImageModelConfig({
        "model": network,
        "transforms": preprocess(name),
        "ragged_batches": False,
        "embeddings_layer": "<" + head_layer(name),
        "device": device,
    })
    return fout.TorchImageModel(config)


class ComputeEmbeddings(foo.Operator):
    params = (
        Param(
            "model",
            DEFAULT_MODEL,
            "Model",
            "FiftyOne zoo model whose embeddings are stored (any model of "
            "foz.list_zoo_models(tags='embeddings')); resnet18/resnet50/"
            "mobilenet_v3_large also take local weights",
        ),
        Param(
            "weights",
            "DEFAULT",
            "Weights",
            "DEFAULT = the model's own pretrained weights (downloaded once); "
            "for resnet18/resnet50/mobilenet_v3_large also a path to a local "
            "torchvision state_dict file (offline), or empty for random "
            "weights (tests only)",
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
        device_param(),
    )

    name = "compute_embeddings"
    label = "Label noise: compute embeddings"
    description = "Embed images (or each object's box) with a FiftyOne zoo model"

    @property
    def config(self):
        return operator_config(self)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx)
        for param in self.params:
            if param.name == "model":
                model_input(ctx, inputs, param)
            else:
                param.add_to(inputs, ctx)
        delegation_input(inputs)
        return types.Property(inputs, view=types.View(label="Compute embeddings"))

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def execute(self, ctx):
        p = {q.name: ctx.params.get(q.name, q.default) for q in self.params}
        view = ctx.target_view()
        check_media(view)
        if is_empty(view):
            raise InputError("The target view is empty: nothing to embed")
        field = p["embeddings_field"]
        objects_field = p["patches_field"] or ""
        source = view  # what FiftyOne embeds: images, or their boxes
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
        batch_size = int(p["batch_size"])
        margin = float(p["patch_margin"])
        if batch_size < 1 or margin < 0:
            raise InputError(
                "batch_size must be >= 1 and patch_margin >= 0, got %r and %r"
                % (p["batch_size"], p["patch_margin"])
            )
        # local weights without a model name: resnet18, the former default
        name = ctx.params.get("model") or (
            DEFAULT_MODEL if p["weights"] == "DEFAULT" else "resnet18")
        model, described = load_embeddings_model(name, p["weights"], resolve_device(p["device"]))
        progress = fiftyone_progress(progress_reporter(ctx), "embedding")
        if objects_field:
            ids, vectors, failed = embed_objects(
                source, objects_field, model, batch_size, margin, progress
            )
        else:
            ids, vectors, failed = embed_samples(source, model, batch_size, progress)
        good = [k for k, v in enumerate(vectors) if v is not None]
        written = write_outputs(
            view, objects_field, [ids[k] for k in good], {field: [vectors[k] for k in good]}
        )
        bad_ids = [ids[k] for k in failed]
        if bad_ids and p["unreadable_tag"] and objects_field:
            lno.tag_objects(view, objects_field, bad_ids, p["unreadable_tag"], replace=False)
        elif bad_ids and p["unreadable_tag"]:
            ctx.dataset.select(bad_ids).tag_samples(p["unreadable_tag"])
        reload_app(ctx)
        return {
            "num_embedded": len(good),
            "num_unreadable": len(bad_ids),
            "unreadable": [failed[k] for k in sorted(failed)[:20]],
            "dim": int(len(vectors[good[0]])) if good else 0,
            "model": described,
            "device": str(getattr(model, "device", "") or getattr(model, "_device", "")),
            "fields": written,
        }

    def __call__(self, sample_collection, delegate=False, **params):
        """Embeds the images of a dataset or view (see README). ``model`` may
        be a ``fiftyone.core.models.Model`` object (not delegated)."""
        import fiftyone.core.models as fom

        model = params.get("model")
        if not isinstance(model, fom.Model):
            return call_operator(self, sample_collection, params, delegate)
        if delegate:
            raise ValueError(
                "A Model object cannot be delegated (the worker runs in another "
                "process): pass a zoo model name, or delegate=False"
            )
        key = "%s%d" % (_OBJECT_PREFIX, id(model))
        _OBJECTS[key] = model
        try:
            return call_operator(self, sample_collection, dict(params, model=key), delegate)
        finally:
            _OBJECTS.pop(key, None)


def model_input(ctx, inputs, param, default=None, first=(), label="%s"):
    """The model as a dropdown: ``first`` (``(value, label, shown)`` choices),
    then :func:`model_choices` (``label`` formats theirs), plus the name the
    call passed when it is another one (so the SDK may name any zoo model)."""
    dropdown = types.DropdownView()
    taken = set()
    for value, text, shown in first:
        dropdown.add_choice(value, label=text, include=shown)
        taken.add(value)
    names = [n for n in model_choices() if n not in taken]
    passed = (ctx.params or {}).get(param.name) if ctx is not None else None
    if isinstance(passed, str) and passed and passed not in taken and passed not in names:
        names.append(passed)
    for name in names:
        dropdown.add_choice(name, label=label % name)
    inputs.enum(
        param.name, dropdown.values(), default=default or param.default, required=False,
        label=param.label, description=param.description, view=dropdown,
    )


def fiftyone_progress(report, noun, every_s=1.0):
    """A FiftyOne progress callback (it receives FiftyOne's progress bar)
    that forwards to ``report(fraction, message)`` at most every ``every_s``
    seconds (a delegated run writes each report to the database)."""
    last = [0.0]

    def callback(pb):
        now = time.monotonic()
        done = getattr(pb, "iteration", 0) or 0
        total = getattr(pb, "total", None) or 0
        if now - last[0] < every_s and done < total:
            return
        last[0] = now
        report(done / total if total else 0.0, "%s %d/%d" % (noun, done, total))

    return callback


def embed_samples(samples, model, batch_size, progress):
    """FiftyOne's ``compute_embeddings`` over ``samples``, in memory.

    FiftyOne drops a whole batch when one image of it fails; those samples
    are embedded again one by one, so each unreadable image is named with its
    own error and the others of its batch still get a vector.

    Returns:
        ``(ids, vectors, failed)``: sample ids, one vector or None per id,
        ``{index: "<filepath>: <error>"}``
    """
    ids, paths = samples.values(["id", "filepath"])
    out = samples.compute_embeddings(
        model, batch_size=batch_size, skip_failures=True, progress=progress
    )
    vectors = [None if v is None else np.asarray(v, np.float32) for v in out]
    failed = {}
    for k in [k for k, v in enumerate(vectors) if v is None]:
        one = samples.select(ids[k])
        try:
            vector = one.compute_embeddings(
                model, batch_size=1, num_workers=0, skip_failures=False, progress=False
            )[0]
            vectors[k] = np.asarray(vector, np.float32)
        except Exception as e:  # unreadable/corrupt/missing file
            failed[k] = "%s: %s: %s" % (paths[k], type(e).__name__, e)
    return ids, _finite(vectors, failed), failed


def embed_objects(samples, objects_field, model, batch_size, margin, progress):
    """FiftyOne's ``compute_patch_embeddings`` of the boxes of
    ``objects_field`` (each widened by ``margin`` of its size on each side:
    ``alpha = 2 * margin``), in memory. ``samples`` is a sample view (its
    fo.Detections field: each image decoded once) or a patches view (one
    fo.Detection per item).

    Returns:
        ``(ids, vectors, failed)`` as :func:`embed_samples`, ids = object ids
    """
    import fiftyone.core.labels as fol

    listed = issubclass(samples._get_label_field_type(objects_field), fol.Detections)
    path = objects_field + (".detections.id" if listed else ".id")
    sample_ids, paths, object_ids = samples.values(["id", "filepath", path])
    kwargs = dict(alpha=2 * margin, handle_missing="skip", batch_size=batch_size)
    out = samples.compute_patch_embeddings(
        model, objects_field, skip_failures=True, progress=progress, **kwargs
    )
    ids, vectors, failed = [], [], {}
    for sid, filepath, oids in zip(sample_ids, paths, object_ids):
        oids = (oids or []) if listed else ([oids] if oids else [])
        if not oids:
            continue
        rows = out.get(sid)
        error = None
        if rows is None:  # FiftyOne skipped the image: ask it again for the error
            try:
                rows = samples.select(sid).compute_patch_embeddings(
                    model, objects_field, num_workers=0, skip_failures=False,
                    progress=False, **kwargs
                )[sid]
            except Exception as e:  # unreadable/corrupt/missing file
                error = "%s: %s: %s" % (filepath, type(e).__name__, e)
        for j, oid in enumerate(oids):
            ids.append(oid)
            if error is not None:
                failed[len(vectors)] = error
                vectors.append(None)
            else:
                vectors.append(np.asarray(rows[j], np.float32))
    return ids, _finite(vectors, failed), failed


def _finite(vectors, failed):
    """Vectors with NaN/inf become failures (never written)."""
    for k, v in enumerate(vectors):
        if v is not None and not np.isfinite(v).all():
            vectors[k] = None
            failed[k] = "the model returned a non-finite vector"
    return vectors


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
