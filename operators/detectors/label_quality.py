"""Operator: out-of-sample class probabilities and Confident Learning.

``compute_label_quality`` cross-fits the plugin's own classifiers on the
embeddings (:mod:`methods.out_of_sample`) and writes, per sample:

- ``label_quality``: the out-of-sample probability of the given label
  (higher = cleaner; a calibrated probability w.r.t. the given labels);
- ``predicted_label``: an ``fo.Classification`` with the most probable
  class and its probability.

It flags Confident Learning's label issues (prune by noise rate,
:mod:`methods.confident_learning`) and saves the probability matrix with
the run results, so ``compute_noise_score`` reuses it without retraining.
"""

import numpy as np

from ...store import registry
from ...store import runs as lnr
from ..base import Computed, DetectorOperator
from ..forms import Param, TAG_PARAM, device_param, resolve_device
from ...store.data import ClassificationColumn, load_inputs
from ...store.inputs import read_verdicts
from ...store.review import excluded_ids


def human_verdicts(view, ids, verified_field, label_field):
    """Verdicts on the labels as they are now (0 right, 1 wrong, -1 none),
    or None when there are none: a label corrected by a reviewer counts as
    verified right (it is the reviewer's choice)."""
    if not verified_field:
        return None
    ids = list(ids)
    verdicts = read_verdicts(view, ids, verified_field, label_field, with_original=False).current
    excluded = excluded_ids(view, label_field)  # no class fits: never trained on
    if excluded:
        verdicts = np.where([str(i) in excluded for i in ids], 1, verdicts)
    return verdicts if (verdicts >= 0).any() else None


class ComputeLabelQuality(DetectorOperator):
    detector = registry.get("label_quality")
    name = detector.operator
    label = "Label noise: label quality (out-of-sample probabilities)"
    description = (
        "Cross-fitted classifiers on the embeddings give every sample the "
        "probability of its label from models that never saw it; Confident "
        "Learning flags the likely label issues"
    )
    method = detector.method
    output_field = detector.output_field
    method_params = (
        Param(
            "model",
            "ensemble",
            "Classifier",
            "ensemble: logistic regression pooled with kNN label votes "
            "(default, measured best); logreg; mlp; knn",
            choices=("ensemble", "logreg", "mlp", "knn"),
        ),
        Param("folds", 5, "Folds", "Cross-fitting folds (Confident Learning uses 5)"),
        Param("rounds", 1, "Rounds", "Repeat the folds with new shuffles and average"),
        Param(
            "k", 0, "Neighbours (k)",
            "Neighbours of the kNN votes (knn, ensemble); 0 = chosen from "
            "10/20/40 by held-out log loss",
        ),
        Param(
            "reweight", 1, "Re-weighting passes",
            "Extra passes that train each sample with weight 1 - P(label "
            "wrong) from the previous pass (0: plain cross-fitting)",
        ),
        Param(
            "verified_field",
            "label_verified",
            "Verified field",
            "Boolean field of human verdicts (True = label right, False = "
            "wrong; tags verified:correct / verified:wrong too): verified "
            "labels train with full weight, wrong ones never",
        ),
        Param(
            "prediction_field",
            detector.suggestion_field,
            "Predicted label field",
            "Where to store the most probable class (empty: skip)",
        ),
        device_param(),
        TAG_PARAM,
    )

    def compute(self, ctx, view, params, progress):
        from ...methods.confident_learning import confident_learning
        from ...methods.out_of_sample import out_of_sample_probabilities

        inputs = load_inputs(view, params["label_field"], params["embeddings_field"])
        known = human_verdicts(view, inputs.ids, params["verified_field"], params["label_field"])
        found = out_of_sample_probabilities(
            inputs.embeddings,
            inputs.y,
            num_classes=len(inputs.classes),
            folds=int(params["folds"]),
            rounds=int(params["rounds"]),
            model=params["model"],
            k=int(params["k"]) or None,
            reweight=int(params["reweight"]),
            known=known,
            seed=params["seed"],
            device=resolve_device(params["device"]),
            progress=lambda f, m="": progress(0.05 + 0.85 * f, m),
            overwrite_embeddings=True,  # this step's own copy, not used again
        )
        probs = found["probabilities"]
        cl = confident_learning(probs, inputs.y, class_names=inputs.classes)
        fields = {params["output_field"]: found["self_confidence"].astype(np.float64)}
        if params["prediction_field"]:
            rows = np.arange(len(probs))
            fields[params["prediction_field"]] = ClassificationColumn(
                inputs.classes, found["predicted"], probs[rows, found["predicted"]]
            )
        summary = dict(
            accuracy=round(found["accuracy"], 4),
            confident_learning_rate=round(
                float(cl["confident_joint"].sum() - np.trace(cl["confident_joint"]))
                / len(probs), 4,
            ),
            skipped=inputs.skipped,
        )
        info = dict(
            skipped=inputs.skipped,
            classes=inputs.classes,
            accuracy=found["accuracy"],
            log_loss=found["log_loss"],
            temperature=found["temperature"],
            l2=found.get("l2"),
            k=found.get("k"),
            num_known=found.get("num_known", 0),
            pool_weights=found.get("pool_weights"),
        )
        results = dict(
            probabilities=lnr.encode_probabilities(inputs.ids, probs),
            classes=inputs.classes,
            noise_rate=float(cl["noise_rate"]),
            per_class=cl["per_class"],
            pairs=[list(p) for p in cl["pairs"][:100]],
        )
        return Computed(
            ids=inputs.ids,
            fields=fields,
            flagged=cl["is_issue"],
            summary=summary,
            results=results,
            info=info,
        )
