"""Operator: SCAN clustering (Van Gansbeke et al., ECCV 2020), labels optional."""

import numpy as np

import fiftyone.operators.types as types

from ..base import Computed, DetectorOperator
from ..forms import Param, TAG_PARAM, device_param, resolve_device
from ...store import registry
from ...store.data import ClassificationColumn, InputError, load_unlabeled_inputs


class ComputeScanClusters(DetectorOperator):
    detector = registry.get("scan")
    name = detector.operator
    label = "Label noise: SCAN clusters"
    description = (
        "Clusters images without labels (SCAN: neighbour-consistency "
        "clustering + self-labeling); with a label field, matches clusters to "
        "classes, reports ACC/NMI/ARI and flags confident disagreements"
    )
    method = detector.method
    output_field = detector.output_field
    method_params = (
        device_param(),
        Param(
            "pretext",
            "embeddings",
            "Pretext features",
            "embeddings = use the embeddings field; simclr = train a backbone "
            "on the images with SimCLR first (CPU only for small datasets)",
            choices=("embeddings", "simclr"),
        ),
        Param(
            "num_clusters",
            0,
            "Clusters",
            "Number of clusters; 0 = number of classes of the label field "
            "(10 without labels). More than the classes = over-clustering",
        ),
        Param("k", 20, "Neighbours (K)", "Mined nearest neighbours per sample"),
        Param("num_heads", 10, "Clustering heads", "Heads trained at once; the lowest-loss one is kept"),
        Param("entropy_weight", 5.0, "Entropy weight", "lambda of the SCAN loss"),
        Param("epochs", 10, "Clustering epochs", "Epochs of the clustering step"),
        Param("self_label", True, "Self-labeling", "Fine-tune on confident predictions"),
        Param(
            "confidence_threshold",
            0.99,
            "Self-labeling threshold",
            "Predictions above this probability are pseudo-labels",
        ),
        Param("self_label_epochs", 10, "Self-labeling epochs", "Maximum epochs (stops when the confident set stops growing)"),
        Param(
            "max_steps",
            5000,
            "Max steps",
            "Optimizer steps of the clustering step at most (and of the whole "
            "self-labeling): sets above 128,000 samples make fewer passes",
        ),
        Param("hidden_dim", 128, "Projection width", "Trainable projection under the heads (0 = linear heads)"),
        Param(
            "confidence_field",
            "scan_confidence",
            "Confidence field",
            "Where to store each sample's cluster probability",
        ),
        Param(
            "suggestion_field",
            detector.evidence_field,
            "Suggested label field",
            "With labels: where to store the class matched to the sample's "
            "cluster (fo.Classification; empty: skip)",
        ),
        Param(
            "noise_field",
            "scan_noise",
            "Noise score field",
            "With labels: 1 - SCAN's probability of the given label (empty: skip)",
        ),
        Param(
            "flag_field",
            "scan_mislabeled",
            "Flag field",
            "With labels: True where scan_label differs from the given label "
            "with confidence >= noise threshold (empty: skip)",
        ),
        Param(
            "noise_threshold",
            0.9,
            "Noise threshold",
            "Minimum SCAN confidence of a disagreeing prediction to flag it",
        ),
        TAG_PARAM,
        Param("simclr_backbone", "resnet18", "SimCLR backbone", "torchvision backbone",
              choices=("resnet18", "resnet50", "mobilenet_v3_large")),
        Param(
            "simclr_weights",
            "DEFAULT",
            "SimCLR initial weights",
            "DEFAULT = ImageNet weights (internet once); a state_dict path; "
            "empty = random init as in the paper (needs many epochs, GPU)",
        ),
        Param("simclr_epochs", 10, "SimCLR epochs", "Pretext training epochs"),
        Param("simclr_image_size", 64, "SimCLR image size", "Images are resized to this"),
        Param("simclr_batch_size", 64, "SimCLR batch size", "Images per step (2 views each)"),
        Param(
            "simclr_embeddings_field",
            "",
            "Store SimCLR features in",
            "Sample field for the learned features (empty: do not store)",
        ),
    )

    @property
    def params(self):
        params = super().params
        params[0] = Param(
            "label_field",
            "ground_truth",
            "Label field (optional)",
            "fo.Classification field to evaluate clusters against and check "
            "for label noise; empty or missing = cluster without labels",
        )
        return params

    def compute(self, ctx, view, params, progress):
        from ...methods.scan import class_probabilities, cluster_metrics, hungarian_match, scan

        pretext = params["pretext"]
        if pretext not in ("embeddings", "simclr"):
            raise InputError("pretext must be 'embeddings' or 'simclr', got '%s'" % pretext)
        label_field = params["label_field"] or ""
        label_missing = bool(label_field) and label_field not in view.get_field_schema()
        inputs = load_unlabeled_inputs(
            view,
            label_field,
            params["embeddings_field"],
            need_embeddings=pretext == "embeddings",
            need_filepaths=pretext == "simclr",
        )
        n = inputs.num_samples
        if n < 3:
            raise InputError("SCAN needs at least 3 samples in the target view, got %d" % n)
        labeled = inputs.y >= 0
        has_labels = bool(labeled.any())
        notes = []
        if label_missing:
            notes.append("label field '%s' not found: clustered without labels" % label_field)
        elif label_field and not has_labels:
            notes.append("no sample has a label in '%s': clustered without labels" % label_field)

        num_clusters = int(params["num_clusters"] or 0)
        if num_clusters <= 0:
            num_clusters = len(inputs.classes) if len(inputs.classes) >= 2 else 10
        if num_clusters < 2 or num_clusters >= n:
            raise InputError(
                "num_clusters must be between 2 and the number of samples - 1 "
                "(%d); got %d" % (n - 1, num_clusters)
            )

        start = 0.02
        features = inputs.embeddings
        if pretext == "simclr":
            from ...methods.scan import simclr_features

            features, failed, losses = simclr_features(
                list(inputs.filepaths),
                backbone=params["simclr_backbone"],
                weights=params["simclr_weights"] or None,
                epochs=params["simclr_epochs"],
                batch_size=params["simclr_batch_size"],
                image_size=params["simclr_image_size"],
                seed=params["seed"],
                device=resolve_device(params["device"]),
                progress=lambda f, m="": progress(0.02 + 0.48 * f, m),
            )
            if failed:
                i, error = failed[0]
                raise InputError(
                    "%d images could not be read for SimCLR (e.g. sample %s, "
                    "%s: %s). Fix or exclude them from the target view"
                    % (len(failed), inputs.ids[i], inputs.filepaths[i], error)
                )
            notes.append("SimCLR loss per epoch: %s" % [round(l, 3) for l in losses])
            start = 0.5

        found = scan(
            features,
            num_clusters=num_clusters,
            k=params["k"],
            num_heads=params["num_heads"],
            entropy_weight=params["entropy_weight"],
            epochs=params["epochs"],
            self_label=params["self_label"],
            confidence_threshold=params["confidence_threshold"],
            self_label_epochs=params["self_label_epochs"],
            max_steps=params["max_steps"],
            hidden_dim=params["hidden_dim"],
            seed=params["seed"],
            device=resolve_device(params["device"]),
            progress=lambda f, m="": progress(start + (0.95 - start) * f, m),
        )
        cluster = found["cluster"]
        confidence = found["confidence"]
        fields = {params["output_field"]: cluster}
        if params["confidence_field"]:
            fields[params["confidence_field"]] = confidence
        if pretext == "simclr" and params["simclr_embeddings_field"]:
            fields[params["simclr_embeddings_field"]] = [v for v in features]

        sizes = np.bincount(cluster, minlength=num_clusters)
        results = {
            "num_clusters": num_clusters,
            "cluster_sizes": sizes.tolist(),
            "best_head": found["best_head"],
            "head_losses": found["head_losses"],
            "confident_counts": found["confident_counts"],
            "clustering_steps_run": found["clustering_steps_run"],
            "self_label_epochs_run": found["self_label_epochs_run"],
        }
        summary = {"num_clusters": num_clusters, "labeled": int(labeled.sum())}
        flagged = None
        if has_labels:
            y = inputs.y[labeled]
            num_classes = len(inputs.classes)
            mapping = hungarian_match(cluster[labeled], y, num_clusters, num_classes)
            metrics = cluster_metrics(y, cluster[labeled], mapping)
            before = found["cluster_before_self_label"][labeled]
            metrics_before = cluster_metrics(y, before)
            class_probs = class_probabilities(found["probs"], mapping, num_classes)
            suggested = mapping[cluster]  # -1 when a cluster has no class
            suggested_conf = np.where(
                suggested >= 0,
                class_probs[np.arange(n), np.maximum(suggested, 0)],
                0.0,
            )
            given_prob = np.where(
                labeled, class_probs[np.arange(n), np.maximum(inputs.y, 0)], np.nan
            )
            noise = np.where(labeled, 1.0 - given_prob, np.nan)
            flagged_all = (
                labeled
                & (suggested >= 0)
                & (suggested != inputs.y)
                & (suggested_conf >= params["noise_threshold"])
            )
            if params["suggestion_field"]:
                fields[params["suggestion_field"]] = ClassificationColumn(
                    inputs.classes, suggested, suggested_conf
                )
            if params["noise_field"]:
                fields[params["noise_field"]] = noise.astype(np.float64)
            if params["flag_field"]:
                fields[params["flag_field"]] = [
                    bool(f) if l else None for f, l in zip(flagged_all, labeled)
                ]
            flagged = flagged_all
            results.update(
                metrics=metrics,
                metrics_before_self_label=metrics_before,
                classes=inputs.classes,
                cluster_to_class=[
                    inputs.classes[c] if c >= 0 else None for c in mapping
                ],
            )
            summary.update(
                acc=round(metrics["acc"], 4),
                nmi=round(metrics["nmi"], 4),
                ari=round(metrics["ari"], 4),
                acc_before_self_label=round(metrics_before["acc"], 4),
            )
        if notes:
            summary["notes"] = notes
        return Computed(
            ids=inputs.ids,
            fields=fields,
            flagged=flagged,
            summary=summary,
            results=results,
            info={
                "labeled": int(labeled.sum()),
                "classes": inputs.classes,
                "metrics": results.get("metrics"),
                "skipped": {},
            },
        )

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key in (
            "num_samples", "labeled", "num_clusters", "acc", "nmi", "ari",
            "acc_before_self_label", "num_flagged", "fields", "run_key", "seconds",
        ):
            outputs.str(key, label=key.replace("_", " "))
        return types.Property(outputs, view=types.View(label="Done"))

