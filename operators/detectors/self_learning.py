"""Operators: Deep Self-Learning corrected labels, and its prototypes as a view."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..base import Computed, DetectorOperator, call_operator
from ..forms import Param, TAG_PARAM, device_param, resolve_device, run_key_input
from ...store import registry
from ...store.data import ClassificationColumn, InputError, load_inputs
from ...store.runs import load_results, plugin_runs

METHOD = registry.get("self_learning").method


class ComputeCorrectedLabels(DetectorOperator):
    detector = registry.get("self_learning")
    name = detector.operator
    label = "Label noise: Deep Self-Learning corrected labels"
    description = (
        "Corrects labels with class prototypes (Deep Self-Learning, Han et al. "
        "ICCV 2019): each sample gets the class whose prototypes it is most "
        "similar to. Never overwrites the label field"
    )
    method = detector.method
    output_field = detector.output_field
    method_params = (
        device_param(),
        Param(
            "samples_per_class",
            1280,
            "Samples per class (m)",
            "Random samples per class among which prototypes are chosen "
            "(all when a class has fewer)",
        ),
        Param("num_prototypes", 8, "Prototypes per class (p)", "Paper default 8"),
        Param(
            "top_fraction",
            0.4,
            "Density cut (top fraction of S)",
            "S_c is the value at this top fraction of the similarity matrix; "
            "density rho_i counts similarities above S_c minus those below",
        ),
        Param(
            "eta_max",
            0.95,
            "Max similarity to a denser sample (eta)",
            "Only samples with eta below this can be prototypes (paper 0.95)",
        ),
        Param(
            "changed_field",
            "label_changed",
            "Changed flag field",
            "Boolean field: True where the corrected label differs from the "
            "given one (empty: skip)",
        ),
        TAG_PARAM,
        Param(
            "train",
            False,
            "Iterative mode (train a classifier)",
            "Train a classifier with L = (1-alpha) CE(y) + alpha CE(corrected) "
            "and re-correct labels on its features after every epoch",
        ),
        Param(
            "model",
            "mlp",
            "Classifier (iterative mode)",
            "mlp: on the embeddings (fast, CPU); cnn: a torchvision CNN on the "
            "images (slow without a GPU)",
            choices=("mlp", "cnn"),
        ),
        Param("epochs", 10, "Epochs (iterative mode)", "One correction phase after each"),
        Param(
            "alpha",
            0.5,
            "Alpha (iterative mode)",
            "Weight of the corrected labels in the loss from epoch 2 (epoch 1 "
            "uses 0); paper 0.5",
        ),
        Param("hidden_dim", 512, "MLP hidden units", "Width of the MLP's 2 hidden layers"),
        Param("learning_rate", 0.001, "Learning rate", "Adam learning rate"),
        Param("batch_size", 256, "Batch size", "Training batch size"),
        Param(
            "cnn_arch",
            "resnet18",
            "CNN architecture",
            "torchvision model for model=cnn",
            choices=("resnet18", "resnet50", "mobilenet_v3_large"),
        ),
        Param(
            "cnn_weights",
            "",
            "CNN initial weights",
            "Empty = random init; DEFAULT = torchvision's ImageNet weights "
            "(downloaded once)",
        ),
        Param("image_size", 32, "CNN image size", "Images are resized to this square"),
        Param(
            "prediction_field",
            "self_learning_prediction",
            "Model prediction field",
            "Iterative mode: where to store the trained model's prediction "
            "(empty: skip)",
        ),
    )

    def compute(self, ctx, view, params, progress):
        from ...methods.self_learning import self_learning

        if params["model"] not in ("mlp", "cnn"):
            raise InputError("model must be 'mlp' or 'cnn', got %r" % params["model"])
        train = bool(params["train"])
        cnn = train and params["model"] == "cnn"
        out_fields = _check_fields(params, train)
        inputs = load_inputs(
            view,
            params["label_field"],
            params["embeddings_field"],
            need_embeddings=not cnn,
            min_classes=2,
            need_filepaths=cnn,
        )
        progress(0.05, "correcting labels of %d samples" % inputs.num_samples)
        try:
            found = self_learning(
                inputs.embeddings,
                inputs.y,
                num_classes=len(inputs.classes),
                train=train,
                model=params["model"],
                image_paths=inputs.filepaths,
                epochs=int(params["epochs"]),
                alpha=float(params["alpha"]),
                hidden_dim=int(params["hidden_dim"]),
                lr=float(params["learning_rate"]),
                batch_size=int(params["batch_size"]),
                cnn_arch=params["cnn_arch"],
                cnn_weights=params["cnn_weights"] or None,
                image_size=int(params["image_size"]),
                samples_per_class=int(params["samples_per_class"]),
                num_prototypes=int(params["num_prototypes"]),
                top_fraction=float(params["top_fraction"]),
                eta_max=float(params["eta_max"]),
                seed=int(params["seed"]),
                device=resolve_device(params["device"]),
                progress=lambda f, m: progress(0.05 + 0.9 * f, m),
            )
        except (ValueError, OSError) as e:
            raise InputError("Deep Self-Learning could not run: %s" % e) from e

        classes = inputs.classes
        corrected = found["corrected"]
        changed = corrected != inputs.y
        fields = {
            out_fields["output"]: ClassificationColumn(classes, corrected, found["confidence"])
        }
        if out_fields.get("changed"):
            fields[out_fields["changed"]] = changed
        if out_fields.get("prediction"):
            fields[out_fields["prediction"]] = ClassificationColumn(
                classes, found["prediction"], found["prediction_confidence"]
            )
        prototypes = {
            classes[c]: [str(inputs.ids[i]) for i in rows]
            for c, rows in enumerate(found["prototypes"])
        }
        changed_per_class = {
            classes[c]: int(changed[inputs.y == c].sum()) for c in range(len(classes))
        }
        results = {
            "classes": classes,
            "prototypes": prototypes,
            "prototype_ids": [i for c in classes for i in prototypes[c]],
            "num_changed": int(changed.sum()),
            "changed_per_class": changed_per_class,
            "fallback_classes": [classes[c] for c in found["fallback_classes"]],
            "confidence": "best minus second-best mean cosine similarity to a "
            "class's prototypes, in [0, 2]",
        }
        if train:
            results["history"] = found["history"]
        summary = {
            "num_changed": int(changed.sum()),
            "changed_fraction": round(float(changed.mean()), 4),
            "skipped": inputs.skipped,
        }
        return Computed(
            ids=inputs.ids,
            fields=fields,
            flagged=changed,
            summary=summary,
            results=results,
            info={"skipped": inputs.skipped, "classes": classes},
        )


def _check_fields(params, train):
    """Output field names, validated before anything runs or is written."""
    names = {"output": params["output_field"], "changed": params["changed_field"]}
    if train:
        names["prediction"] = params["prediction_field"]
    names = {k: v for k, v in names.items() if v}
    if not names.get("output"):
        raise InputError("output_field must be set (e.g. 'corrected_label')")
    for key, value in names.items():
        if not str(value).isidentifier():
            raise InputError("%s field must be a field name, got %r" % (key, value))
        if value == params["label_field"]:
            raise InputError(
                "%s field '%s' is the label field: this operator never "
                "overwrites labels. Pick another name" % (key, value)
            )
    if len(set(names.values())) < len(names):
        raise InputError("output, changed and prediction fields must differ: %s" % names)
    return names


class LoadPrototypesView(foo.Operator):
    """Shows the prototypes of a compute_corrected_labels run in the App."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="load_prototypes_view",
            label="Label noise: show Deep Self-Learning prototypes",
            description="Load the class prototypes of a corrected-labels run as a view",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=False,  # it only changes the App's view
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        keys = run_key_input(
            ctx, inputs, method=METHOD, missing="No compute_corrected_labels run on this dataset"
        )
        if keys is None:
            return types.Property(inputs)
        inputs.str(
            "class_name",
            default="",
            required=False,
            label="Class",
            description="Only this class's prototypes (empty: every class)",
        )
        return types.Property(inputs, view=types.View(label="Show prototypes"))

    def execute(self, ctx):
        keys = plugin_runs(ctx.dataset, method=METHOD)
        run_key = ctx.params.get("run_key") or (keys[0] if keys else None)
        if run_key not in keys:
            raise InputError(
                "No compute_corrected_labels run '%s' on dataset '%s'. Runs: %s"
                % (run_key, ctx.dataset.name, keys)
            )
        results = load_results(ctx.dataset, run_key)
        prototypes = results.get("prototypes", {})
        class_name = ctx.params.get("class_name") or ""
        if class_name:
            if class_name not in prototypes:
                raise InputError(
                    "Class '%s' has no prototypes in run '%s'. Classes: %s"
                    % (class_name, run_key, sorted(prototypes))
                )
            ids = list(prototypes[class_name])
        else:
            ids = list(results.get("prototype_ids", []))
        view = ctx.dataset.select(ids, ordered=True)
        if not ctx.delegated:
            ctx.ops.set_view(view=view)
        return {"run_key": run_key, "num_prototypes": len(view), "ids": ids}

    def __call__(self, sample_collection, run_key=METHOD, class_name=""):
        """Returns ``{"ids": [...]}``; build the view with ``dataset.select(ids)``."""
        return call_operator(
            self, sample_collection, {"run_key": run_key, "class_name": class_name}
        )
