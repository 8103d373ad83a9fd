"""Operator: one noise score from whichever detectors have run.

Combines the detector outputs found on the dataset
(:mod:`store.inputs`) into ``noise_score``, the calibrated
probability that each label is wrong (or, ``score_mode="rank"``, a rank
consensus in [0, 1]), ``suggested_label`` and ``noise_flagged``, with the
estimate of how many labels are wrong (:mod:`methods.noise_estimate`).
"""

import numpy as np

import fiftyone.operators.types as types

from .base import Computed, DetectorOperator
from .forms import Param, TAG_PARAM
from ..store.inputs import discover_inputs, orientation, parse_inputs, read_consensus_inputs
from ..store.data import ClassificationColumn, InputError, output_schema
from ..store.objects import is_patches
from ..store.predictions import as_field_list
from ..store.probabilities import audited_mask, prediction_evidence, probability_evidence
from ..store.registry import MIN_VERIFIED_EACH



class ComputeNoiseScore(DetectorOperator):
    name = "compute_noise_score"
    label = "Label noise: consensus noise score"
    description = (
        "Combines every detector that has run (kNN, Training-ValueNet, "
        "CleanNet, Dupes, self-learning, SCAN) into one noise score in "
        "[0, 1] and a suggested label"
    )
    method = "consensus"
    output_field = "noise_score"
    needs_embeddings = False
    method_params = (
        Param(
            "pred_field",
            "",
            "Model predictions",
            "Fields holding your own model's predictions (fo.Classification "
            "with logits, e.g. apply_model(..., store_logits=True), a "
            "probability/logit vector per sample, or label + confidence): "
            "pooled with the plugin's probabilities, weighted by how well "
            "each predicts held-out labels. Use out-of-sample (K-fold) "
            "predictions: a model trained on these labels is detected and "
            "left out",
            kind="predictions",
        ),
        Param(
            "inputs",
            "",
            "Inputs",
            "Comma-separated detector fields to combine; empty = every "
            "detector output found on the dataset. Prefix a custom score "
            "with '-' when higher means cleaner",
        ),
        Param(
            "verified_field",
            "label_verified",
            "Verified field",
            "Boolean field: True = label checked correct, False = checked "
            "wrong (tags verified:correct / verified:wrong work too). With "
            "10+ of each, the weights are learned; else equal",
        ),
        Param(
            "normalisation",
            "auto",
            "Normalisation",
            "How scores are put on one scale: per_class ranks, global ranks, "
            "blend (mean of both), auto (best on verified samples, else blend)",
            choices=("auto", "blend", "per_class", "global"),
        ),
        Param(
            "suggestion_field",
            "suggested_label",
            "Suggested label field",
            "Where to store the class the evidence points to (empty: skip)",
        ),
        Param(
            "noise_estimator",
            "anchors",
            "Noise-rate estimate",
            "Without an audit or verdicts, how the share of wrong labels is "
            "estimated: anchors (share of mislabeled among each class's most "
            "confident samples: no false alarms from the classifier's own "
            "confusion, but low when errors hit hard samples) or "
            "confident_learning (Confident Learning's count: counts the "
            "classifier's confident mistakes too, so high on clean data). "
            "An audit of 50+ samples (start_label_audit), or 10+ verified "
            "wrong and 10+ verified right samples, replace both",
            choices=("anchors", "confident_learning"),
        ),
        Param(
            "score_mode",
            "probability",
            "Score",
            "probability: noise_score is the calibrated probability that the "
            "label is wrong (0.5 = as likely wrong as right); rank: the older "
            "rank consensus in [0, 1] (only the order means something)",
            choices=("probability", "rank"),
        ),
        Param(
            "flag_mode",
            "estimated_rate",
            "Flag",
            "estimated_rate: flag as many samples (highest noise score first) "
            "as the estimated number of wrong labels (from an audit or the "
            "verdicts when there are enough, else the noise-rate estimate). threshold: "
            "flag noise score > threshold (also used when no input has class "
            "probabilities to estimate from)",
            choices=("estimated_rate", "threshold"),
        ),
        Param(
            "threshold",
            0.5,
            "Flag threshold",
            "Used by flag mode 'threshold' (0.5: more likely wrong than right)",
        ),
        Param(
            "flag_field",
            "noise_flagged",
            "Flag field",
            "Boolean field marking the flagged samples (empty: skip); they "
            "are also tagged if a tag is set",
        ),
        TAG_PARAM,
    )

    def describe_inputs(self, ctx, inputs):
        if ctx.dataset is None:
            return
        exclude = self._own_fields(ctx.params)
        view = ctx.target_view()
        schema = None
        if is_patches(view):
            schema = output_schema(view, ctx.params.get("label_field") or "ground_truth")
        found = discover_inputs(ctx.dataset, exclude, schema)
        if found:
            text = ", ".join(
                "%s (%s)" % (name, orientation(spec)) for name, spec in found.items()
            )
            inputs.view("found", types.Notice(label="Detector outputs found: " + text))
        else:
            inputs.view(
                "found",
                types.Warning(
                    label="No detector output on this dataset yet: run a "
                    "detector (e.g. compute_knn_disagreement) first"
                ),
            )

    @staticmethod
    def _own_fields(params):
        return {
            params.get("output_field") or "noise_score",
            params.get("suggestion_field") or "suggested_label",
            params.get("flag_field") or "noise_flagged",
        }

    def compute(self, ctx, view, params, progress):
        dataset = ctx.dataset
        own = {params["output_field"], params["suggestion_field"], params["flag_field"]} - {""}
        if params["label_field"] in own:
            raise InputError(
                "output/suggestion field would overwrite the label field '%s'"
                % params["label_field"]
            )
        patches = is_patches(view)  # outputs are attributes of each object
        schema = output_schema(view, params["label_field"]) if patches else None
        specs = parse_inputs(dataset, params["inputs"], exclude=own, schema=schema)
        specs = {k: v for k, v in specs.items() if k not in own and k != params["label_field"]}
        pred_names = as_field_list(params.get("pred_field"))
        specs = {k: v for k, v in specs.items() if k not in pred_names}
        if not specs and not pred_names:
            raise InputError(
                "No detector output to combine on dataset '%s': run at least "
                "one detector first (e.g. compute_knn_disagreement), or name "
                "numeric score fields in 'inputs'" % dataset.name
            )
        bundle = read_consensus_inputs(
            view, params["label_field"], specs, pred_names, params["verified_field"], progress)
        data, classes, scores = bundle.data, bundle.classes, bundle.scores
        verified, predictions = bundle.verdicts.given, bundle.predictions
        if not scores and not predictions:
            raise InputError(
                "The detector fields %s have no value on the target view: "
                "run the detectors on these samples first" % sorted(specs)
            )
        progress(0.5, "combining %s" % ", ".join(scores))
        combined = combine_evidence(
            dataset, data, classes, specs, scores, bundle.suggestions,
            bundle.verdicts, params, data_is_patches=patches, predictions=predictions,
        )
        noise = combined["noise"]
        fields = {params["output_field"]: noise}
        if params["suggestion_field"] and combined["suggested"] is not None:
            fields[params["suggestion_field"]] = ClassificationColumn(
                classes, combined["suggested"], combined["suggested_confidence"]
            )
        estimate = combined["estimate"]
        flag_rate = estimate["rate"] if estimate else None
        flag_rate_source = estimate["source"] if estimate else None
        if params["flag_mode"] == "estimated_rate" and flag_rate is not None:
            flagged = flag_top(noise, flag_rate)
        else:  # asked for, or nothing to estimate the rate from
            flagged = np.nan_to_num(noise, nan=0.0) > params["threshold"]
            if params["flag_mode"] == "estimated_rate":
                flag_rate_source = "threshold (no class probabilities to estimate from)"
        if params["flag_field"]:
            fields[params["flag_field"]] = flagged
        num_verified = {
            "mislabeled": int((verified == 1).sum()),
            "correct": int((verified == 0).sum()),
        }
        info = dict(
            inputs=bundle.used,
            weights=combined["weights"],
            weights_source=combined["weights_source"],
            normalisation_used=combined["normalisation"],
            score_mode=combined["score_mode"],
            pooled=combined["pool_weights"],
            flag_rate=flag_rate,
            flag_rate_source=flag_rate_source,
            predictions=combined["predictions"],
            num_verified=num_verified,
            skipped=data.skipped,
            classes=data.classes,
        )
        summary = dict(
            inputs=sorted(scores),
            weights=combined["weights"],
            weights_source=combined["weights_source"],
            normalisation=combined["normalisation"],
            score_mode=combined["score_mode"],
            flag_rate=flag_rate,
            flag_rate_source=flag_rate_source,
        )
        if predictions:
            summary["predictions"] = combined["predictions"]
            summary["predictions_note"] = predictions_note(combined["predictions"])
        if estimate:
            summary.update(
                noise_rate=round(estimate["rate"], 4),
                num_likely_wrong=estimate["count"],
                noise_rate_interval=estimate["interval"],
                noise_rate_basis=estimate["source"],
                noise_estimate=estimate,
            )
        return Computed(
            ids=data.ids,
            fields=fields,
            flagged=flagged,
            summary=summary,
            results=dict(
                verified_auc=combined["verified_auc"], noise_estimate=estimate, **info
            ),
            info=info,
        )

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key in (
            "num_samples", "num_flagged", "flag_rate", "inputs", "weights", "weights_source",
            "predictions_note", "normalisation", "fields", "run_key", "seconds",
        ):
            outputs.str(key, label=key.replace("_", " "))
        return types.Property(outputs, view=types.View(label="Noise score computed"))


def flag_top(noise, rate):
    """The ``round(rate * num_scored)`` highest-scoring samples (ties at the
    cut included)."""
    score = np.asarray(noise, dtype=np.float64)
    scored = np.isfinite(score)
    flagged = np.zeros(len(score), dtype=bool)
    count = int(round(float(rate) * scored.sum()))
    if count > 0:
        cut = np.sort(score[scored])[::-1][count - 1]
        flagged[scored] = score[scored] >= cut
    return flagged


def predictions_note(report):
    """One line per prediction field for the summary and the App: how it
    was read, its weight in the pool, and the in-sample verdict."""
    lines = []
    for name, r in report.items():
        text = "%s: %s, weight %s; %s" % (
            name, r.get("form"), "%.2f" % r["weight"] if r.get("weight") is not None else "0 (left out)",
            r.get("message", ""))
        if r.get("note"):
            text += "; " + r["note"]
        lines.append(text)
    return " | ".join(lines)


def combine_evidence(dataset, data, classes, specs, scores, suggestions, verdicts, params,
                     data_is_patches=False, predictions=()):
    """The consensus proper: probabilities when there are any, else ranks.

    With class-probability evidence (label quality, Dupes, predicted
    classes), :func:`methods.noise_estimate.estimate_label_noise` pools it
    and gives the calibrated probability that each label is wrong, the
    suggestion and the noise-rate estimate. With 10+ verified wrong and
    right samples, the rank consensus of every input (the pooled
    probability included) learns the weights; that learned score is then
    what the noise estimate calibrates on the verdicts. ``score_mode="rank"``
    writes the rank consensus instead.
    """
    from ..methods.consensus import noise_consensus
    from ..methods.noise_estimate import estimate_label_noise
    from ..methods.predictions import other_class_suggestion

    evidence, sources = probability_evidence(
        dataset, data.ids, data.y, data.classes, specs, suggestions,
        patches_field=params["label_field"] if data_is_patches else None, scores=scores,
    )
    primary, report = prediction_evidence(predictions, data.y, evidence, sources)
    # a model's out-of-sample predictions in the pool: rank by the pooled
    # probability of the given label and suggest the pool's most probable
    # other class (the anchors' class-level transition helps weak evidence
    # but lowered both on strong networks' predictions: README, BENCHMARKS)
    strong = isinstance(primary, list)  # a list only when predictions joined the pool
    audited, audit_key = audited_mask(dataset, data.ids)
    estimate = pool_weights = est = None
    scores = dict(scores)
    verified = verdicts.for_weights
    options = dict(
        verified=verdicts.current, audited=audited, original_verdicts=verdicts.given,
        num_fixed=verdicts.num_fixed, estimator=params["noise_estimator"],
        original_labels=verdicts.original_labels(data.y, data.classes),
        class_names=data.classes, seed=int(params["seed"]),
        primary=primary,
    )
    if strong:
        options["ranking"] = "self_confidence"
    if evidence:
        est = estimate_label_noise(evidence, data.y, **options)
        pool_weights = est["pool_weights"]
        scores["pooled_probabilities"] = est["p_wrong"]
    can_learn = min((verified == 1).sum(), (verified == 0).sum()) >= MIN_VERIFIED_EACH
    if evidence and not can_learn and params["score_mode"] != "rank":
        # nothing to learn weights from: the rank consensus would go unused
        found = dict(weights_source="", verified_auc={}, normalisation=None)
    else:
        found = noise_consensus(
            scores, data.y, suggestions=suggestions, verified=verified,
            normalisation=params["normalisation"], seed=params["seed"],
            min_verified=MIN_VERIFIED_EACH,
            # learned weights must beat the probabilities on held-out verdicts
            baseline="pooled_probabilities" if evidence else None,
        )
    learned = found["weights_source"].startswith("verified")
    if evidence and learned:  # the learned ranking, calibrated on the verdicts
        est = estimate_label_noise(evidence, data.y, score=found["noise_score"], **options)
    if evidence and strong:
        est["suggested"], est["suggested_confidence"] = other_class_suggestion(
            est["pooled"], data.y, est["p_wrong"])
    for name, r in report.items():
        r["weight"] = (pool_weights or {}).get(name) if not r.get("in_sample") else None
    if evidence:
        estimate = dict(est["estimate"], evidence=sources, audit_run=audit_key)
        if report:
            estimate["predictions"] = report
    mode = params["score_mode"]
    if mode == "rank" or not evidence:
        noise, mode = found["noise_score"].astype(np.float64), "rank"
    else:
        noise = est["p_wrong"]
    if evidence:
        suggested, confidence = est["suggested"], est["suggested_confidence"]
        kept = found.get("baseline_kept")  # learned, but did not beat the probabilities
        weights = found["weights"] if learned or kept else {"pooled_probabilities": 1.0}
        source = found["weights_source"] if learned or kept else (
            "pooled class probabilities (%s); %s" % (
                ", ".join("%s %.2f" % kv for kv in pool_weights.items()),
                "rank inputs without class probabilities are used once 10+ "
                "verified wrong and right samples exist",
            )
        )
    else:
        suggested = found["suggested_label"] if suggestions else None
        confidence = found["suggested_confidence"]
        weights, source = found["weights"], found["weights_source"]
    return dict(
        noise=noise,
        suggested=suggested,
        suggested_confidence=confidence,
        estimate=estimate,
        pool_weights=pool_weights,
        weights=weights,
        weights_source=source,
        normalisation=found["normalisation"],
        score_mode=mode,
        verified_auc=found["verified_auc"],
        predictions=report,
    )
