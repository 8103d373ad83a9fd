"""Operator: Dupes (repeated swapped 50:50 trainings).

``compute_dupes`` writes ``dupe_count`` (int), ``dupe_label`` (str) and
``is_dupe`` (bool) on every labeled sample of the target view. Samples on the
ignore list (the boolean field ``dupes_ignore``, name set by the
``ignore_field`` parameter: True = confirmed correct in a review) are used
for training but never flagged. The review loop (directory and in-App
review, revert, corrected export) is in :mod:`operators.curation.dupes_review`.
"""

import numpy as np

from ...store import registry
from ...store import runs as lnr
from ..base import Computed, DetectorOperator
from ..forms import Param, TAG_PARAM, device_param, resolve_device
from ...store.data import InputError, load_inputs


class ComputeDupes(DetectorOperator):
    detector = registry.get("dupes")
    name = detector.operator
    label = "Label noise: Dupes (repeated 50:50 trainings)"
    description = (
        "Trains a classifier on one half of every class and predicts the "
        "other, swapped, for several rounds; counts how often each sample is "
        "predicted as one other class"
    )
    method = detector.method
    output_field = detector.output_field
    method_params = (
        device_param(),
        Param("rounds", 10, "Rounds", "50:50 split rounds (2 trainings each)"),
        Param(
            "threshold",
            8,
            "Dupe threshold",
            "A sample is a dupe when it is predicted as the same other class "
            "in at least this many rounds (the method uses 10, 9 or 8 of 10)",
        ),
        Param(
            "classifier",
            "logreg",
            "Classifier",
            "logreg: fast logistic regression on the embeddings (default); "
            "mlp: small neural net on the embeddings; sklearn_logreg: "
            "scikit-learn's; cnn: fine-tunes a torchvision model on the "
            "images (slow, for a GPU)",
            choices=("logreg", "mlp", "sklearn_logreg", "cnn"),
        ),
        Param(
            "suggestion_field",
            detector.suggestion_field,
            "Dupe label field",
            "Where to store the other class a sample is most often predicted as",
        ),
        Param(
            "flag_field",
            "is_dupe",
            "Dupe flag field",
            "Boolean field: dupe_count >= threshold and not on the ignore list",
        ),
        Param(
            "ignore_field",
            "dupes_ignore",
            "Ignore-list field",
            "Boolean field marking samples confirmed correct in a review; "
            "they are used for training but never flagged",
        ),
        Param("cnn_model", "resnet18", "CNN model", "torchvision model (cnn only)"),
        Param(
            "cnn_weights",
            "DEFAULT",
            "CNN weights",
            "DEFAULT (ImageNet, downloaded once), a local state_dict path, or "
            "empty for random init (cnn only)",
        ),
        Param("cnn_epochs", 3, "CNN epochs", "Epochs per training (cnn only)"),
        Param("cnn_image_size", 224, "CNN image size", "Input size (cnn only)"),
        Param("cnn_batch_size", 64, "CNN batch size", "Batch size (cnn only)"),
        TAG_PARAM,
    )

    def compute(self, ctx, view, params, progress):
        from ...methods.dupes import dupes

        classifier = params["classifier"]
        cnn = classifier == "cnn"
        for key in ("suggestion_field", "flag_field", "ignore_field"):
            if not str(params[key]).isidentifier():
                raise InputError("%s must be a field name, got %r" % (key, params[key]))
        if int(params["rounds"]) < 1:
            raise InputError("rounds must be >= 1, got %s" % params["rounds"])
        inputs = load_inputs(
            view,
            params["label_field"],
            params["embeddings_field"],
            need_embeddings=not cnn,
            need_filepaths=cnn,
        )
        ignore = read_ignore(view, inputs.ids, params["ignore_field"])
        options = {}
        if cnn:
            options = dict(
                model=params["cnn_model"],
                weights=params["cnn_weights"] or None,
                epochs=int(params["cnn_epochs"]),
                image_size=int(params["cnn_image_size"]),
                batch_size=int(params["cnn_batch_size"]),
            )

        def method_progress(fraction, message):
            progress(0.05 + 0.9 * fraction, message)

        found = dupes(
            inputs.y,
            embeddings=inputs.embeddings,
            filepaths=inputs.filepaths,
            num_classes=len(inputs.classes),
            rounds=int(params["rounds"]),
            threshold=int(params["threshold"]),
            classifier=classifier,
            ignore=ignore,
            seed=int(params["seed"]),
            device=resolve_device(params["device"]),
            progress=method_progress,
            **options,
        )
        dupe_label = [
            inputs.classes[c] if c >= 0 else None for c in found["dupe_label"]
        ]
        fields = {
            params["output_field"]: found["dupe_count"],
            params["suggestion_field"]: dupe_label,
            params["flag_field"]: found["flagged"],
        }
        histogram = np.bincount(
            found["dupe_count"], minlength=int(params["rounds"]) + 1
        ).tolist()
        return Computed(
            ids=inputs.ids,
            fields=fields,
            flagged=found["flagged"],
            summary={
                "skipped": inputs.skipped,
                "num_ignored": int(ignore.sum()),
                "mean_round_accuracy": round(
                    float(sum(found["round_accuracy"]) / len(found["round_accuracy"])), 4
                ),
            },
            results={
                "round_accuracy": found["round_accuracy"],
                "dupe_count_histogram": histogram,
                # the rounds' mean out-of-sample probabilities: evidence for
                # compute_noise_score at no extra training
                "probabilities": lnr.encode_probabilities(inputs.ids, found["probabilities"]),
                "classes": inputs.classes,
            },
            info={
                "skipped": inputs.skipped,
                "classes": inputs.classes,
                "num_ignored": int(ignore.sum()),
            },
        )


def read_ignore(view, ids, ignore_field):
    """Bool array aligned with ``ids``: True where ``ignore_field`` is True."""
    if ignore_field not in view.get_field_schema():
        return np.zeros(len(ids), dtype=bool)
    sample_ids, values = view.values(["id", ignore_field])
    flagged = {s for s, v in zip(sample_ids, values) if v is True}
    return np.array([str(i) in flagged for i in ids], dtype=bool)
