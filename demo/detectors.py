"""How to read each detector's output as one noise score (higher = noisier).

Shared by the demo and the benchmark suite, so both score a method the same
way. Each entry: operator name, display name, function ``dataset -> float
array`` aligned with ``dataset.values("id")``, and the label-suggestion field
(or None).
"""

import numpy as np


def numeric(field, sign=1.0):
    def score(dataset):
        values = dataset.values(field)
        return sign * np.array([np.nan if v is None else v for v in values], float)

    return score


def label_disagreement(field, label_field="ground_truth"):
    """+confidence where ``field``'s class differs from the label, else -confidence."""

    def score(dataset):
        pred, conf, given = dataset.values(
            [field + ".label", field + ".confidence", label_field + ".label"]
        )
        conf = np.array([1.0 if c is None else c for c in conf], float)
        missing = np.array([p is None for p in pred])
        out = np.where(np.array(pred, dtype=object) != np.array(given, dtype=object), conf, -conf)
        out = out.astype(float)
        out[missing] = np.nan
        return out

    return score


DETECTORS = [
    ("compute_knn_disagreement", "kNN disagreement", numeric("knn_disagreement"), "knn_label"),
    ("compute_label_quality", "Label quality", numeric("label_quality", -1.0), "predicted_label"),
    ("compute_training_value", "Training-ValueNet", numeric("training_value", -1.0), None),
    ("compute_cleannet_similarity", "CleanNet", numeric("cleannet_similarity", -1.0), None),
    ("compute_dupes", "Dupes", numeric("dupe_count"), "dupe_label"),
    ("compute_corrected_labels", "Deep Self-Learning", label_disagreement("corrected_label"), "corrected_label"),
    ("compute_scan_clusters", "SCAN", numeric("scan_noise"), "scan_label"),
    ("compute_noise_score", "Consensus noise_score", numeric("noise_score"), "suggested_label"),
]

# operators that need verified samples (the demo/benchmark provide them)
NEEDS_VERIFICATION = {"compute_training_value", "compute_cleannet_similarity"}


def mark_verified(dataset, ids, is_correct, tag="validated", field="label_verified"):
    """Records a human review: ``field`` True/False on the reviewed samples,
    and ``tag`` on those confirmed correct (Training-ValueNet's clean
    validation set)."""
    ids = [str(i) for i in ids]
    dataset.untag_samples(tag)
    correct = [i for i, ok in zip(ids, is_correct) if ok]
    if correct:
        dataset.select(correct).tag_samples(tag)
    dataset.set_values(field, dict(zip(ids, [bool(v) for v in is_correct])), key_field="id")
