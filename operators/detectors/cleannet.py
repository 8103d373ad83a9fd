"""Operator: CleanNet label-noise similarity (Lee et al., CVPR 2018)."""

from collections import Counter

import numpy as np

import fiftyone.operators.types as types
from fiftyone import ViewField as F

from ...store import registry
from ...store import runs as lnr
from ..base import Computed, DetectorOperator
from ..forms import Param, device_param, resolve_device
from ...store.data import InputError, load_inputs, output_path, output_schema, read_outputs

HOW_TO_VERIFY = (
    "In the App, review some samples of a few classes and either set the "
    "boolean field '{field}' (True = label correct, False = label wrong), "
    "or tag them '{correct}' / '{wrong}' (select samples, then the tag "
    "button). From Python: sample['{field}'] = True; sample.save(). "
    "CleanNet needs both kinds; a few dozen per kind in a few classes is "
    "enough, other classes are scored by transfer"
)


class ComputeCleanNetSimilarity(DetectorOperator):
    detector = registry.get("cleannet")
    name = detector.operator
    label = "Label noise: CleanNet similarity"
    description = (
        "CleanNet (Lee et al. 2018): learns from a few verified samples in "
        "some classes how a correct label looks, scores every sample (cosine "
        "similarity, low = likely mislabeled), also in unverified classes"
    )
    method = detector.method
    output_field = detector.output_field
    method_params = (
        device_param(),
        Param(
            "verified_field",
            "label_verified",
            "Verification field",
            "Boolean sample field: True = label verified correct, False = "
            "verified wrong, unset = unverified (empty: use tags only)",
        ),
        Param(
            "correct_tag",
            "verified:correct",
            "Tag: label correct",
            "Samples with this tag count as verified correct (empty: ignore)",
        ),
        Param(
            "wrong_tag",
            "verified:wrong",
            "Tag: label wrong",
            "Samples with this tag count as verified wrong (empty: ignore)",
        ),
        Param(
            "threshold",
            0.1,
            "Similarity threshold",
            "Samples whose similarity is below this are flagged as noisy "
            "(the paper uses 0.1-0.2)",
        ),
        Param(
            "num_ref",
            32,
            "Reference vectors per class",
            "k-means centres per class (classes with fewer samples use all)",
        ),
        Param("n_steps", 1000, "Training steps", "Mini-batch steps (32 verified + 32 unverified each)"),
        Param(
            "val_interval",
            100,
            "Validation interval",
            "Every this many steps, held-out verified samples are scored and "
            "the best checkpoint is kept",
        ),
        Param("dropout", 0.2, "Dropout", "Dropout rate of the encoders"),
        Param(
            "tag",
            "",
            "Tag flagged samples",
            "If set (e.g. 'cleannet:noisy'), samples below the threshold get "
            "this tag (the tag is first removed from the rest of the view)",
        ),
        Param(
            "score_new_samples",
            False,
            "Score with the saved model",
            "Do not retrain: score the target view with the model and "
            "reference sets saved by the run 'model_run_key'",
        ),
        Param(
            "model_run_key",
            "",
            "Saved model run",
            "Run key of the CleanNet run whose model scores new samples "
            "(empty: the run key above)",
        ),
    )

    def describe_inputs(self, ctx, inputs):
        view = ctx.target_view() if ctx.dataset is not None else None
        if view is None:
            return
        label_field = ctx.params.get("label_field") or "ground_truth"
        try:
            counts = verification_counts(
                view,
                label_field,
                _param(ctx.params, "verified_field", "label_verified"),
                _param(ctx.params, "correct_tag", "verified:correct"),
                _param(ctx.params, "wrong_tag", "verified:wrong"),
            )
        except Exception as e:  # the form must always render
            inputs.view("verified_counts", types.Warning(label="Cannot count verified samples: %s" % e))
            return
        if not counts:
            inputs.view(
                "verified_counts",
                types.Warning(
                    label="No verified samples yet",
                    description=HOW_TO_VERIFY.format(
                        field=_param(ctx.params, "verified_field", "label_verified"),
                        correct=_param(ctx.params, "correct_tag", "verified:correct"),
                        wrong=_param(ctx.params, "wrong_tag", "verified:wrong"),
                    ),
                ),
            )
            return
        lines = ["%s: %d correct, %d wrong" % (c, n[0], n[1]) for c, n in sorted(counts.items())]
        inputs.view(
            "verified_counts",
            types.Notice(
                label="Verified samples per class (other classes are scored by transfer)",
                description="; ".join(lines),
            ),
        )

    def compute(self, ctx, view, params, progress):
        if params["score_new_samples"]:
            return self._score_new(ctx, view, params, progress)
        from ...methods.cleannet import train_cleannet

        inputs = load_inputs(view, params["label_field"], params["embeddings_field"])
        verified = read_verification(view, inputs.ids, params)
        _check_verified(verified, inputs, params)
        found = train_cleannet(
            inputs.embeddings,
            inputs.y,
            verified,
            num_classes=len(inputs.classes),
            seed=params["seed"],
            device=resolve_device(params["device"]),
            progress=progress,
            num_ref=params["num_ref"],
            n_steps=params["n_steps"],
            val_interval=params["val_interval"],
            dropout=params["dropout"],
            threshold=params["threshold"],
        )
        verified_classes = sorted(
            {inputs.classes[c] for c in inputs.y[verified >= 0]}
        )
        validation = dict(found["validation"])
        validation.pop("loss", None)
        results = {
            "state_dict": lnr.encode_state_dict(_tensors(found["state_dict"])),
            "references": lnr.encode_state_dict(
                _tensors({"references": found["references"], "mask": found["reference_mask"]})
            ),
            "model_config": found["config"],
            "classes": inputs.classes,
            "validation": validation,
            "verified_classes": verified_classes,
            "num_verified_correct": int((verified == 1).sum()),
            "num_verified_wrong": int((verified == 0).sum()),
        }
        return self._computed(inputs, found["similarity"], params, results, {
            "validation_error_rate": validation["error_rate"],
            "verified_classes": verified_classes,
        })

    def _score_new(self, ctx, view, params, progress):
        from ...methods.cleannet import score_cleannet

        dataset = view._root_dataset
        model_key = params["model_run_key"] or params["run_key"]
        if model_key not in lnr.plugin_runs(dataset, method=self.method):
            raise InputError(
                "score_new_samples needs a finished CleanNet run with a saved "
                "model, but dataset '%s' has no CleanNet run '%s' (CleanNet "
                "runs: %s). Train one first (score_new_samples=False) or set "
                "model_run_key" % (dataset.name, model_key, lnr.plugin_runs(dataset, method=self.method) or "none")
            )
        saved = lnr.load_results(dataset, model_key)
        config = saved["model_config"]
        inputs = load_inputs(view, params["label_field"], params["embeddings_field"], min_classes=1)
        if inputs.embeddings.shape[1] != int(config["dim"]):
            raise InputError(
                "Embeddings in '%s' have dimension %d but the CleanNet model of "
                "run '%s' was trained on %d-dimensional embeddings. Compute the "
                "embeddings with the same model as for that run, or retrain "
                "(score_new_samples=False)"
                % (params["embeddings_field"], inputs.embeddings.shape[1], model_key, int(config["dim"]))
            )
        classes = list(saved["classes"])
        unknown = sorted(set(inputs.labels.tolist()) - set(classes))
        if unknown:
            raise InputError(
                "Classes %s in '%s' are not known to the CleanNet model of run "
                "'%s' (it has reference sets for %s). Exclude those samples or "
                "retrain (score_new_samples=False)"
                % (unknown[:10], params["label_field"], model_key, classes)
            )
        progress(0.3, "scoring %d samples with the model of run '%s'" % (inputs.num_samples, model_key))
        refs = lnr.decode_state_dict(saved["references"])
        index = {c: k for k, c in enumerate(classes)}
        y = np.array([index[c] for c in inputs.labels], dtype=np.int64)
        similarity = score_cleannet(
            inputs.embeddings,
            y,
            lnr.decode_state_dict(saved["state_dict"]),
            refs["references"].numpy(),
            refs["mask"].numpy(),
            config,
            device=resolve_device(params["device"]),
        )
        inputs.classes = classes
        info = {"scored_with_run": model_key}
        # the record of this key keeps the model so it can score again
        return self._computed(inputs, similarity, params, saved, info)

    def _computed(self, inputs, similarity, params, results, info):
        flagged = similarity < params["threshold"]
        summary = {"skipped": inputs.skipped}
        summary.update(info)
        return Computed(
            ids=inputs.ids,
            fields={params["output_field"]: similarity},
            flagged=flagged,
            summary=summary,
            results=results,
            info=dict(info, skipped=inputs.skipped, classes=inputs.classes),
        )


def _param(params, name, default):
    value = params.get(name)
    return default if value is None else value


def _tensors(arrays):
    import torch

    return {k: torch.as_tensor(np.asarray(v)) if not hasattr(v, "detach") else v for k, v in arrays.items()}


def read_verification(view, ids, params):
    """Verification of each sample of ``ids``: 1 correct, 0 wrong, -1 unverified.

    Reads the boolean field ``params['verified_field']`` (when it exists) and
    the tags ``correct_tag`` / ``wrong_tag``. Contradictory verifications
    (e.g. True and tagged wrong, or both tags) raise :class:`InputError`.
    """
    field = params.get("verified_field") or ""
    correct_tag = params.get("correct_tag") or ""
    wrong_tag = params.get("wrong_tag") or ""
    label_field = params.get("label_field") or ""
    schema = output_schema(view, label_field)  # objects: their attributes
    paths = ["tags"]  # objects: label tags
    if field:
        if field in schema:
            import fiftyone.core.fields as fof

            if not isinstance(schema[field], fof.BooleanField):
                raise InputError(
                    "Verification field '%s' is a %s, not a boolean field. Use "
                    "a boolean field (True = label correct, False = label "
                    "wrong) or set verified_field to another field"
                    % (field, type(schema[field]).__name__)
                )
            paths.append(field)
        else:
            field = ""
    read = read_outputs(view, label_field, paths)
    columns = [read["id"]] + [read[n] for n in paths]
    sample_ids, tags = columns[0], columns[1]
    flags = columns[2] if field else [None] * len(sample_ids)
    by_id = {}
    for sid, sample_tags, flag in zip(sample_ids, tags, flags):
        sample_tags = sample_tags or ()
        votes = set()
        if flag is not None:
            votes.add(1 if flag else 0)
        if correct_tag and correct_tag in sample_tags:
            votes.add(1)
        if wrong_tag and wrong_tag in sample_tags:
            votes.add(0)
        if len(votes) > 1:
            raise InputError(
                "Sample %s is verified both correct and wrong (field '%s' = %s, "
                "tags %s). Fix its verification: keep one of '%s'=True/False, "
                "tag '%s' or tag '%s'"
                % (sid, field or "-", flag, list(sample_tags), field or "label_verified",
                   correct_tag, wrong_tag)
            )
        by_id[sid] = votes.pop() if votes else -1
    return np.array([by_id.get(str(i), -1) for i in ids], dtype=np.int64)


def verification_counts(view, label_field, verified_field, correct_tag, wrong_tag):
    """``{class: (num correct, num wrong)}`` of the verified samples of ``view``."""
    counts = {}
    if label_field not in view.get_field_schema():
        return counts
    schema = output_schema(view, label_field)  # objects: their attributes
    path = label_field + ".label"
    correct, wrong = Counter(), Counter()
    if verified_field and verified_field in schema:
        flag = F(output_path(view, label_field, verified_field))
        correct.update(view.match(flag == True).count_values(path))  # noqa: E712
        wrong.update(view.match(flag == False).count_values(path))  # noqa: E712
    tags = F(output_path(view, label_field, "tags"))  # objects: label tags
    if correct_tag:
        correct.update(view.match(tags.contains(correct_tag)).count_values(path))
    if wrong_tag:
        wrong.update(view.match(tags.contains(wrong_tag)).count_values(path))
    for c in set(correct) | set(wrong):
        if c is not None:
            counts[c] = (correct[c], wrong[c])
    return counts


def _check_verified(verified, inputs, params):
    n_correct = int((verified == 1).sum())
    n_wrong = int((verified == 0).sum())
    how = HOW_TO_VERIFY.format(
        field=params.get("verified_field") or "label_verified",
        correct=params.get("correct_tag") or "verified:correct",
        wrong=params.get("wrong_tag") or "verified:wrong",
    )
    if n_correct == 0 and n_wrong == 0:
        raise InputError(
            "CleanNet learns from verified samples, and none of the %d samples "
            "of the target view is verified (field '%s', tags '%s'/'%s'). %s"
            % (inputs.num_samples, params.get("verified_field") or "-",
               params.get("correct_tag") or "-", params.get("wrong_tag") or "-", how)
        )
    if n_correct == 0 or n_wrong == 0:
        kind, other = ("correct", "wrong") if n_wrong == 0 else ("wrong", "correct")
        raise InputError(
            "CleanNet needs verified samples of both kinds, but all %d verified "
            "samples are verified %s: it cannot learn what a %s label looks "
            "like. Verify some samples whose label is %s as well. %s"
            % (n_correct + n_wrong, kind, other, other, how)
        )
