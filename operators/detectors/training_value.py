"""Operator: Training-ValueNet training values (Smyth et al., ICDL 2019).

Thin wrapper around :mod:`methods.training_value`: reads labels, embeddings
and the clean validation set of the target view, runs the method (or, with
``score_new_samples``, the regressors saved by an earlier run), and hands the
values back to :class:`DetectorOperator` to be written.
"""

import base64
import io
import os

import numpy as np

import fiftyone as fo
import fiftyone.operators.types as types

from fiftyone import ViewField as F

from ..base import Computed, DetectorOperator
from ..forms import Param, TAG_PARAM, device_param, resolve_device
from ...store import registry
from ...store.data import InputError, load_inputs, output_path, output_schema
from ...store import runs as lnr

METHOD = registry.get("training_value").method
DIRTY_TAG = "tv:dirty"


class ComputeTrainingValue(DetectorOperator):
    detector = registry.get("training_value")
    name = detector.operator
    label = "Label noise: Training-ValueNet"
    description = (
        "Training value of each sample: the expected improvement in loss on "
        "a clean validation set from one SGD step on it (negative = likely "
        "mislabeled)"
    )
    method = detector.method
    output_field = detector.output_field
    method_params = (
        device_param(),
        Param(
            "validation_tag",
            "validated",
            "Validation tag",
            "Samples with this tag form the clean validation set: their "
            "labels must be correct (50-100 per class)",
        ),
        Param(
            "validation_field",
            "",
            "Validation field",
            "Alternatively, a boolean sample field that is True for verified "
            "samples (used instead of the tag when set)",
        ),
        Param(
            "min_val_per_class",
            50,
            "Min. validation samples per class",
            "The run stops with a message when a class has fewer verified "
            "samples (the paper asks for 50-100 per class)",
        ),
        Param("episodes", 100, "Monte Carlo episodes", "Independent training runs from scratch (paper: 100)"),
        Param(
            "train_per_class",
            1000,
            "Training samples per class",
            "Random subset per class whose values are estimated directly "
            "(paper: 1000); the others are predicted by the regressors",
        ),
        Param(
            "val_per_class",
            100,
            "Validation samples per class",
            "Verified samples per class used for the validation loss (paper: 100)",
        ),
        Param("mc_epochs", 1, "Epochs per episode", "Passes over the training subset per episode"),
        Param("lr", 0.001, "Learning rate", "Vanilla SGD, batch size 1, no momentum (paper: 0.001)"),
        Param(
            "hidden_units",
            100,
            "Classifier hidden units",
            "Hidden ReLU units of the small MLP trained in each episode (0 = softmax regression, faster)",
        ),
        Param("regressor_hidden", 100, "Regressor hidden units", "Hidden units of each per-class Training-ValueNet"),
        Param("regressor_dropout", 0.5, "Regressor dropout", "Dropout after the regressor's hidden layer"),
        Param(
            "regressor_epochs",
            1000,
            "Regressor max epochs",
            "Upper bound; early stopping on a 10% held-out split usually stops far sooner",
        ),
        Param("regressor_patience", 100, "Regressor patience", "Early-stopping patience in epochs (paper: 100)"),
        Param(
            "threshold",
            0.0,
            "Dirty threshold",
            "Samples whose training value is below this are flagged (paper: 0)",
        ),
        Param(
            TAG_PARAM.name,
            TAG_PARAM.default,
            TAG_PARAM.label,
            "If set (e.g. 'tv:dirty'), samples with a negative training value "
            "get this tag (the tag is first removed from the rest of the view)",
        ),
        Param(
            "score_new_samples",
            False,
            "Score with saved regressors",
            "Only predict values with the Training-ValueNets saved by the run "
            "'source_run_key' (no Monte Carlo phase), e.g. for samples added later",
        ),
        Param(
            "source_run_key",
            "",
            "Source run",
            "Run whose regressors score_new_samples uses (default: run_key)",
        ),
        Param(
            "histogram_path",
            "",
            "Histogram PNG path",
            "Where to write the per-class histogram of training values "
            "(default: <fiftyone dataset dir>/label_noise/<dataset>/<run_key>_histogram.png)",
        ),
        Param(
            "map_brain_key",
            "",
            "2-D map brain key",
            "If set, also compute a FiftyOne Brain visualization (PCA) of the "
            "embeddings under this key; color it by training_value in the Embeddings panel",
        ),
        Param(
            "num_threads",
            0,
            "Torch threads",
            "Threads for the Monte Carlo phase (0 = torch's default; 1 is "
            "fastest on a busy machine)",
        ),
    )

    def describe_inputs(self, ctx, inputs):
        if ctx.dataset is None:
            return
        tag = ctx.params.get("validation_tag", "validated") or "validated"
        try:
            num = ctx.target_view().match_tags(tag).count()
        except Exception:
            return
        inputs.view(
            "validation_info",
            types.Notice(
                label="%d samples of the target view are tagged '%s' (the clean "
                "validation set; 50-100 per class are needed)" % (num, tag)
            ),
        )

    def compute(self, ctx, view, params, progress):
        if params["score_new_samples"]:
            return self._score_new(ctx, view, params, progress)
        from ...methods.training_value import training_value

        inputs = load_inputs(view, params["label_field"], params["embeddings_field"])
        val_mask = validation_mask(view, inputs, params)
        check_validation(inputs, val_mask, params)
        _check_training(inputs, val_mask)
        threads = int(params["num_threads"] or 0)
        with _torch_threads(threads):
            found = training_value(
                inputs.embeddings,
                inputs.y,
                val_mask,
                num_classes=len(inputs.classes),
                episodes=int(params["episodes"]),
                train_per_class=int(params["train_per_class"]),
                val_per_class=int(params["val_per_class"]),
                mc_epochs=int(params["mc_epochs"]),
                lr=float(params["lr"]),
                hidden_units=int(params["hidden_units"]),
                regressor_hidden=int(params["regressor_hidden"]),
                regressor_dropout=float(params["regressor_dropout"]),
                regressor_epochs=int(params["regressor_epochs"]),
                regressor_patience=int(params["regressor_patience"]),
                seed=int(params["seed"]),
                device=resolve_device(params["device"]),
                progress=lambda f, m="": progress(0.05 + 0.85 * f, m),
            )
        value = found["value"]
        model = encode_model(found["model"], inputs.classes, inputs.embeddings.shape[1])
        subset = found["subset"]
        results = dict(
            model=model,
            subset_ids=[str(i) for i in inputs.ids[subset]],
            direct_estimates=found["direct_estimate"][subset].tolist(),
            validation_ids=[str(i) for i in inputs.ids[found["val_indices"]]],
            stats=found["stats"],
        )
        info = dict(
            classes=inputs.classes,
            skipped=inputs.skipped,
            num_validation=int(val_mask.sum()),
            mc_seconds=round(found["stats"]["mc_seconds"], 2),
        )
        return self._finish(ctx, view, params, progress, inputs, value, results, info)

    def _score_new(self, ctx, view, params, progress):
        from ...methods.training_value import predict_training_value

        dataset = ctx.dataset
        source = params["source_run_key"] or params["run_key"]
        if source not in dataset.list_runs():
            raise InputError(
                "score_new_samples needs a finished compute_training_value run "
                "'%s' on dataset '%s', which does not exist (runs: %s). Run "
                "compute_training_value first, or set source_run_key"
                % (source, dataset.name, dataset.list_runs() or "none")
            )
        config = dataset.get_run_info(source).config
        saved = lnr.load_results(dataset, source).get("model")
        if getattr(config, "method", None) != METHOD or not saved:
            raise InputError(
                "Run '%s' is not a compute_training_value run with saved "
                "regressors; pick such a run in source_run_key" % source
            )
        inputs = load_inputs(
            view, params["label_field"], params["embeddings_field"], min_classes=1
        )
        classes = saved["classes"]
        unknown = sorted(set(inputs.classes) - set(classes))
        if unknown:
            raise InputError(
                "Classes %s of the target view have no Training-ValueNet in "
                "run '%s' (it knows %s). Re-run compute_training_value "
                "including them, or exclude them from the view"
                % (unknown, source, classes)
            )
        if inputs.embeddings.shape[1] != saved["dim"]:
            raise InputError(
                "Embeddings in '%s' have %d dimensions but run '%s' was "
                "computed on %d: use the same embedding model"
                % (params["embeddings_field"], inputs.embeddings.shape[1], source, saved["dim"])
            )
        progress(0.3, "scoring %d samples" % inputs.num_samples)
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[c] for c in inputs.labels], dtype=np.int64)
        value = predict_training_value(decode_model(saved), inputs.embeddings, y,
                                       device=resolve_device(params["device"]))
        results = lnr.load_results(dataset, source)
        info = dict(
            classes=inputs.classes,
            skipped=inputs.skipped,
            source_run_key=source,
            scored_with_saved_regressors=True,
            source_params=getattr(config, "params", {}),
        )
        return self._finish(ctx, view, params, progress, inputs, value, results, info)

    def _finish(self, ctx, view, params, progress, inputs, value, results, info):
        flagged = value < float(params["threshold"])
        progress(0.92, "drawing histograms")
        png = histogram_png(value, inputs.labels, inputs.classes, float(params["threshold"]))
        path = params["histogram_path"] or os.path.join(
            fo.config.default_dataset_dir,
            "label_noise",
            ctx.dataset.name,
            "%s_histogram.png" % params["run_key"],
        )
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as f:
            f.write(png)
        results = dict(results, histogram_png=base64.b64encode(png).decode("ascii"))
        summary = {
            "histogram_path": path,
            "dirty_per_class": {
                c: int(np.sum(flagged[inputs.labels == c])) for c in inputs.classes
            },
            "skipped": inputs.skipped,
        }
        if params["map_brain_key"]:
            summary["map"] = feature_map(ctx.dataset, view, params)
        return Computed(
            ids=inputs.ids,
            fields={params["output_field"]: value.astype(np.float64)},
            flagged=flagged,
            summary=summary,
            results=results,
            info=info,
        )

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key in (
            "num_samples",
            "num_flagged",
            "fields",
            "run_key",
            "seconds",
            "histogram_path",
            "map",
        ):
            outputs.str(key, label=key.replace("_", " "))
        return types.Property(outputs, view=types.View(label="Done"))


def validation_mask(view, inputs, params):
    """Boolean array aligned with ``inputs.ids``: the verified samples."""
    field = params.get("validation_field") or ""
    label_field = params.get("label_field") or ""
    if field:
        if field not in output_schema(view, label_field):  # objects: attributes
            raise InputError(
                "validation_field '%s' does not exist. Create a boolean field "
                "that is True for verified samples, or leave validation_field "
                "empty to use the '%s' tag" % (field, params["validation_tag"])
            )
        ids, flags = view.values(["id", output_path(view, label_field, field)])
        marked = {i for i, f in zip(ids, flags) if f}
    else:
        tag = params.get("validation_tag") or "validated"
        tags = F(output_path(view, label_field, "tags"))  # objects: label tags
        marked = set(view.match(tags.contains(tag)).values("id"))
    return np.array([str(i) in marked for i in inputs.ids], dtype=bool)


def check_validation(inputs, val_mask, params):
    """Raises an InputError naming the classes without enough verified samples."""
    need = int(params["min_val_per_class"])
    have = {c: int(np.sum(val_mask & (inputs.labels == c))) for c in inputs.classes}
    short = {c: n for c, n in have.items() if n < need}
    if not short:
        return
    source = (
        "samples with True in the boolean field '%s'" % params["validation_field"]
        if params.get("validation_field")
        else "samples tagged '%s'" % (params.get("validation_tag") or "validated")
    )
    listed = ", ".join(
        "'%s' has %d (needs %d more)" % (c, n, need - n) for c, n in sorted(short.items())
    )
    raise InputError(
        "Training-ValueNet needs a clean validation set of at least %d "
        "verified samples per class (%s, label field '%s'). %d class(es) lack "
        "samples: %s. To add them in the App: filter the sidebar on '%s' to "
        "one class, check that the shown labels are right (fix wrong ones), "
        "select correct samples and add the tag '%s' with the tag button; in "
        "Python: dataset.select(ids).tag_samples('%s'). Or set "
        "validation_field to a boolean field of verified samples, or lower "
        "min_val_per_class (the paper uses 50-100)"
        % (
            need,
            source,
            params["label_field"],
            len(short),
            listed,
            params["label_field"],
            params.get("validation_tag") or "validated",
            params.get("validation_tag") or "validated",
        )
    )


def _check_training(inputs, val_mask):
    few = [
        c for c in inputs.classes if np.sum(~val_mask & (inputs.labels == c)) < 2
    ]
    if few:
        raise InputError(
            "Classes %s have fewer than 2 unverified samples: nothing to "
            "estimate a training value from. Widen the view or exclude them"
            % few
        )


def encode_model(model, classes, dim):
    """The method's ``model`` dict as JSON-serializable run results."""
    return dict(
        classes=list(classes),
        dim=int(dim),
        regressors={c: lnr.encode_state_dict(s) for c, s in zip(classes, model["regressors"])},
        feature_mean=np.asarray(model["feature_mean"], np.float64).tolist(),
        feature_scale=float(model["feature_scale"]),
        target_scale=float(model["target_scale"]),
        hidden=int(model["hidden"]),
    )


def decode_model(saved):
    """Inverse of :func:`encode_model` (state dicts loaded weights-only)."""
    return dict(
        regressors=[lnr.decode_state_dict(saved["regressors"][c]) for c in saved["classes"]],
        feature_mean=np.asarray(saved["feature_mean"], np.float32),
        feature_scale=saved["feature_scale"],
        target_scale=saved["target_scale"],
        hidden=saved["hidden"],
    )


def histogram_png(value, labels, classes, threshold=0.0):
    """PNG bytes: one histogram of training values per class."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    k = len(classes)
    cols = min(5, k)
    rows = int(np.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    span = np.percentile(value, [0.5, 99.5]) if len(value) else (0, 1)
    bins = np.linspace(min(span[0], threshold), max(span[1], threshold), 41)
    for ax, c in zip(axes.ravel(), classes):
        v = value[labels == c]
        dirty = v < threshold
        ax.hist(np.clip(v[~dirty], bins[0], bins[-1]), bins=bins, color="tab:blue")
        ax.hist(np.clip(v[dirty], bins[0], bins[-1]), bins=bins, color="tab:red")
        ax.axvline(threshold, color="k", lw=0.8)
        ax.set_title("%s: %d/%d dirty" % (c, dirty.sum(), len(v)), fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    fig.suptitle("Predicted training value per class (red: below %g)" % threshold, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def feature_map(dataset, view, params):
    """A 2-D Brain visualization of the embeddings (PCA), or a note why not."""
    try:
        import fiftyone.brain as fob

        if params["map_brain_key"] in dataset.list_brain_runs():
            dataset.delete_brain_run(params["map_brain_key"])
        fob.compute_visualization(
            view,
            embeddings=params["embeddings_field"],
            method="pca",
            brain_key=params["map_brain_key"],
            seed=int(params["seed"]),
        )
        return (
            "brain key '%s': open the Embeddings panel and color by '%s'"
            % (params["map_brain_key"], params["output_field"])
        )
    except Exception as e:  # optional output: never fail the run on it
        return "2-D map skipped (%s: %s)" % (type(e).__name__, e)


class _torch_threads:
    """Temporarily sets torch's intra-op threads (0 = leave unchanged)."""

    def __init__(self, threads):
        self.threads = threads
        self.saved = None

    def __enter__(self):
        if self.threads > 0:
            import torch

            self.saved = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        if self.saved is not None:
            import torch

            torch.set_num_threads(self.saved)
