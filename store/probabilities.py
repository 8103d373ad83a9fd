"""Class-probability evidence for the consensus, read from earlier runs.

``compute_label_quality`` and ``compute_dupes`` save their out-of-sample
probability matrices with their run results (:func:`runs.encode_probabilities`);
detectors that name one class (self-learning, SCAN, kNN's majority label)
become a probability matrix through
:func:`methods.noise_estimate.label_probabilities`. Everything is aligned
with the consensus' rows (sample or object ids) and classes.
"""

import numpy as np

from . import registry
from . import runs as lnr
from .audit import AUDIT_METHOD


def probability_evidence(dataset, ids, labels, classes, specs, suggestions, patches_field=None,
                         scores=None):
    """``{input name: float (n, len(classes))}`` for the inputs being combined.

    Args:
        dataset: the root dataset (its run records are read)
        ids: the consensus' row ids
        labels: int (n,) given labels (indices into ``classes``)
        classes: the class names of the consensus
        specs: the inputs being combined (``{field: Evidence}``)
        suggestions: ``{name: (class index array, confidence array or None)}``
            of the inputs that propose a class
        patches_field (None): the objects field when the consensus runs on
            a patches view (runs of the other level are not used)
        scores (None): ``{name: oriented score (n,)}``; for inputs whose
            score is a disagreement share (kNN), ``1 - score`` fills in the
            given class's probability

    Returns:
        ``(evidence, sources)``: the matrices and, per name, where it came
        from (``"run <key>"`` or ``"suggested class"``)
    """
    from ..methods.noise_estimate import label_probabilities

    k = len(classes)
    evidence, sources = {}, {}
    for name, key in _probability_runs(dataset, specs, patches_field).items():
        matrix = _aligned_matrix(dataset, key, ids, classes)
        if matrix is not None:
            method = getattr(dataset.get_run_info(key).config, "method", "")
            evidence[name], sources[name] = matrix, "run %s (%s)" % (key, method)
    for name, (predicted, confidence) in suggestions.items():
        if name in evidence:
            continue
        predicted = np.where(np.asarray(predicted) < k, predicted, -1)
        if (predicted >= 0).any():
            share = None
            if scores is not None and name in scores and getattr(specs.get(name), "disagreement_share", False):
                share = 1.0 - np.asarray(scores[name], np.float64)
            evidence[name] = label_probabilities(labels, predicted, confidence, k, given_share=share)
            sources[name] = "suggested class"
    return evidence, sources


def primary_source(sources):
    """The input holding cross-fitted class probabilities (a
    ``compute_label_quality`` run), or None: when present, the consensus
    ranks by it alone (see :func:`methods.noise_estimate.estimate_label_noise`)."""
    found = [name for name, where in sources.items() if where.endswith("(label_quality)")]
    return found[0] if found else None


#: how a prediction field's evidence is named among the consensus' sources
PREDICTION_SOURCE = "pred_field"


def prediction_evidence(predictions, labels, evidence, sources):
    """Adds a model's predictions (``pred_field``) to the evidence.

    Each :class:`store.predictions.Predictions` is checked for being
    in-sample (:func:`methods.predictions.in_sample_check`) against the
    plugin's own out-of-sample probabilities (``compute_label_quality``;
    else the pool of the other probability evidence; else no verdict).
    Out-of-sample predictions join ``evidence`` under their field name;
    in-sample ones are reported and left out, so they cannot dominate.

    Returns:
        ``(primary, report)``: the names the consensus pools (label quality
        and the out-of-sample predictions; None when there are none), and a
        JSON-ready ``{field: {form, in_sample, message, ...}}``
    """
    from ..methods.noise_estimate import pool_probabilities
    from ..methods.predictions import in_sample_check

    lq = primary_source(sources)
    if not predictions:
        return lq, {}
    reference = evidence.get(lq) if lq else None
    if reference is None and evidence:
        reference = pool_probabilities(evidence, labels)[0]
    report, used = {}, []
    for pred in predictions:
        check = in_sample_check(pred.probabilities, labels, reference)
        report[pred.name] = dict(pred.info, **check)
        if check.get("in_sample"):
            continue
        evidence[pred.name] = pred.probabilities
        sources[pred.name] = "%s (%s)" % (PREDICTION_SOURCE, pred.form)
        used.append(pred.name)
    if not used:
        return lq, report
    return ([lq] if lq else []) + used, report


def audited_mask(dataset, ids):
    """Rows of ``ids`` drawn by the newest audit (``label_audit`` run)."""
    keys = lnr.plugin_runs(dataset, method=AUDIT_METHOD)
    mask = np.zeros(len(ids), dtype=bool)
    if not keys:
        return mask, None
    key = max(keys, key=lambda k: dataset.get_run_info(k).timestamp)
    picked = set(lnr.load_results(dataset, key).get("sample_ids") or [])
    mask[:] = [str(i) in picked for i in ids]
    return mask, key


def _probability_runs(dataset, specs, patches_field=None):
    """Newest run of each probability method whose output is an input, on
    the same level (images, or the objects of ``patches_field``)."""
    found = {}
    stamps = {}
    for key in lnr.plugin_runs(dataset):
        info = dataset.get_run_info(key)
        config = info.config
        detector = registry.by_method(getattr(config, "method", None))
        if detector is None or not detector.saves_probabilities:
            continue
        if (getattr(config, "patches_field", None) or None) != (patches_field or None):
            continue
        params = getattr(config, "params", None) or {}
        field = params.get(detector.evidence_param) if isinstance(params, dict) else None
        if field in specs and (field not in stamps or info.timestamp > stamps[field]):
            found[field], stamps[field] = key, info.timestamp
    return found


def _aligned_matrix(dataset, run_key, ids, classes):
    results = lnr.load_results(dataset, run_key)
    entry, run_classes = results.get("probabilities"), results.get("classes")
    if not entry or not run_classes:
        return None
    run_ids, probs = lnr.decode_probabilities(entry)
    row_of = {sid: r for r, sid in enumerate(run_ids)}
    col_of = {c: j for j, c in enumerate(run_classes)}
    k = len(classes)
    out = np.full((len(ids), k), 1.0 / k, dtype=np.float64)  # unscored: uninformative
    rows = np.array([row_of.get(str(i), -1) for i in ids])
    cols = np.array([col_of.get(c, -1) for c in classes])
    have_row, have_col = rows >= 0, cols >= 0
    if not have_row.any():
        return None
    block = probs[rows[have_row]][:, cols[have_col]].astype(np.float64)
    filled = out[have_row]
    filled[:, have_col] = block
    filled /= filled.sum(axis=1, keepdims=True)
    out[have_row] = filled
    return out
