"""A model's predictions as evidence (``pred_field``, issue #28).

Every accepted form (fo.Classification with logits, probability and logit
vectors, label + confidence only, object attributes on a patches view), the
class-order and class-set errors, in-sample detection, and the refusal of
unknown parameters by every operator family.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from conftest import blobs, operator, run_operator  # noqa: E402

NAMES = ["class_%d" % c for c in range(4)]


def _auroc(is_noisy, score):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.asarray(is_noisy, bool), np.asarray(score, float))


def _strong_logits(true, noisy, seed=0, strength=4.0, k=4):
    """Logits of a good out-of-sample model: the true class mostly, some
    mistakes, blind to the (random) label noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(len(true), k))
    z[np.arange(len(true)), true] += strength
    return z


@pytest.fixture
def labelled(new_dataset, tmp_path):
    """``make(...)`` -> (dataset, true int labels, noisy int labels); fields
    ``ground_truth`` (noisy), ``embeddings``, ``is_noisy``; no media reads."""
    import fiftyone as fo

    def make(per_class=60, noise_rate=0.2, seed=0):
        x, y, noisy = blobs(4, per_class, 16, noise_rate, seed, spread=2.0)
        ds = new_dataset()
        ds.add_samples([
            fo.Sample(filepath=str(tmp_path / ("%05d.png" % i)),
                      ground_truth=fo.Classification(label=NAMES[noisy[i]]),
                      embeddings=x[i], is_noisy=bool(noisy[i] != y[i]))
            for i in range(len(y))
        ])
        return ds, y, noisy

    return make


def _set_logits(ds, field, z, names=NAMES, label_only=False, confidence=True):
    import fiftyone as fo

    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    values = []
    for row, q in zip(z, p):
        j = int(q.argmax())
        c = fo.Classification(label=names[j], confidence=float(q[j]) if confidence else None)
        if not label_only:
            c.logits = row.astype(np.float32)
        values.append(c)
    ds.set_values(field, values)


def test_classification_logits_is_used_and_beats_embeddings(labelled):
    ds, y, noisy = labelled()
    is_noisy = np.array(ds.values("is_noisy"))
    run_operator("compute_label_quality", ds)
    without = run_operator("compute_noise_score", ds)
    score_without = np.array(ds.values("noise_score"), float)
    z = _strong_logits(y, noisy)
    _set_logits(ds, "predictions", z)
    ds.classes["predictions"] = NAMES
    ds.save()
    summary = run_operator("compute_noise_score", ds, pred_field="predictions")
    report = summary["predictions"]["predictions"]
    assert report["form"] == "logits" and report["in_sample"] is False, report
    assert report["weight"] > 0 and "predictions" in summary["predictions_note"], summary["noise_estimate"]["predictions"]
    score = np.array(ds.values("noise_score"), float)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    alone = 1 - p[np.arange(len(y)), noisy]
    assert _auroc(is_noisy, score) >= _auroc(is_noisy, alone) - 0.01
    assert _auroc(is_noisy, score) > _auroc(is_noisy, score_without) + 0.02, without
    # the suggestion follows the strong model on the wrong labels
    suggested = np.array(ds.values("suggested_label.label"))
    wrong = np.flatnonzero(is_noisy)
    assert (suggested[wrong] == np.array(NAMES)[y[wrong]]).mean() > 0.8
    # recorded with the run
    config = ds.get_run_info("consensus").config
    assert config.params["pred_field"] == "predictions"
    assert config.predictions["predictions"]["form"] == "logits"


def test_logits_without_class_order_say_what_to_set(labelled):
    ds, y, noisy = labelled(per_class=20)
    run_operator("compute_knn_disagreement", ds, k=5)
    _set_logits(ds, "predictions", _strong_logits(y, noisy))
    before = ds.count_values("noise_score") if ds.has_field("noise_score") else None
    with pytest.raises(Exception, match=r"dataset.classes\['predictions'\]"):
        run_operator("compute_noise_score", ds, pred_field="predictions")
    assert before is None and not ds.has_field("noise_score")  # nothing written
    ds.default_classes = NAMES + ["extra"]  # 5 names for 4 logits: clear error
    ds.save()
    with pytest.raises(Exception, match="4 columns"):
        run_operator("compute_noise_score", ds, pred_field="predictions")


@pytest.mark.parametrize("kind", ["probabilities", "logits"])
def test_vector_field_probabilities_or_logits_detected(labelled, kind):
    ds, y, noisy = labelled(per_class=30)
    run_operator("compute_knn_disagreement", ds, k=5)
    z = _strong_logits(y, noisy, seed=1)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ds.set_values("probs", list((p if kind == "probabilities" else z).astype(np.float32)))
    summary = run_operator("compute_noise_score", ds, pred_field=["probs"])
    report = summary["predictions"]["probs"]
    assert report["form"] == kind
    assert "alphabetically" in report["class_order"]
    score = np.array(ds.values("noise_score"), float)
    assert _auroc(ds.values("is_noisy"), score) > 0.85


def test_label_and_confidence_only_is_usable_and_called_weaker(labelled):
    ds, y, noisy = labelled(per_class=30)
    run_operator("compute_knn_disagreement", ds, k=5)
    _set_logits(ds, "predictions", _strong_logits(y, noisy, seed=2), label_only=True)
    summary = run_operator("compute_noise_score", ds, pred_field="predictions")
    report = summary["predictions"]["predictions"]
    assert report["form"] == "label+confidence" and "weaker" in report["note"]
    assert _auroc(ds.values("is_noisy"), ds.values("noise_score")) > 0.8


def test_class_set_mismatch_is_handled_and_reported(labelled):
    ds, y, noisy = labelled(per_class=30)
    run_operator("compute_knn_disagreement", ds, k=5)
    z = np.concatenate([_strong_logits(y, noisy, seed=3), np.zeros((len(y), 1))], axis=1)
    _set_logits(ds, "predictions", z, names=NAMES + ["unicorn"])
    ds.classes["predictions"] = NAMES + ["unicorn"]
    ds.save()
    summary = run_operator("compute_noise_score", ds, pred_field="predictions")
    report = summary["predictions"]["predictions"]
    assert report["extra_classes"] == ["unicorn"] and "unicorn" in report["note"]


def test_in_sample_predictions_detected_and_left_out(labelled):
    ds, y, noisy = labelled(per_class=60, noise_rate=0.25)
    run_operator("compute_label_quality", ds)
    run_operator("compute_noise_score", ds)
    base = np.array(ds.values("noise_score"), float)
    z = np.full((len(y), 4), -2.0)  # memorised: the given label, confidently
    z[np.arange(len(y)), noisy] = 4.0
    _set_logits(ds, "memorised", z)
    ds.classes["memorised"] = NAMES
    ds.save()
    summary = run_operator("compute_noise_score", ds, pred_field="memorised")
    report = summary["predictions"]["memorised"]
    assert report["in_sample"] is True and "IN-SAMPLE" in summary["predictions_note"]
    assert report["weight"] is None
    np.testing.assert_allclose(np.array(ds.values("noise_score"), float), base, atol=1e-9)
    assert ds.get_run_info("consensus").config.predictions["memorised"]["in_sample"] is True


def test_missing_predictions_name_a_sample(labelled):
    ds, y, noisy = labelled(per_class=20)
    run_operator("compute_knn_disagreement", ds, k=5)
    _set_logits(ds, "predictions", _strong_logits(y, noisy))
    ds.classes["predictions"] = NAMES
    ds.save()
    sample = ds.first()
    sample["predictions"] = None
    sample.save()
    with pytest.raises(Exception, match="1 of the 80 labelled items.*%s" % sample.id):
        run_operator("compute_noise_score", ds, pred_field="predictions")
    with pytest.raises(Exception, match="does not exist"):
        run_operator("compute_noise_score", ds, pred_field="nope")


def test_patches_object_attribute(new_dataset, tmp_path):
    import fiftyone as fo

    x, y, noisy = blobs(4, 40, 16, 0.2, 0, spread=0.9)
    z = _strong_logits(y, noisy, seed=4)
    ds = new_dataset()
    samples, r = [], 0
    for i in range(len(y) // 2):
        dets = []
        for j in range(2):
            det = fo.Detection(label=NAMES[noisy[r]], bounding_box=[0.5 * j, 0.1, 0.4, 0.4],
                               embeddings=x[r], is_noisy=bool(noisy[r] != y[r]))
            det["predictions"] = fo.Classification(
                label=NAMES[int(z[r].argmax())], logits=z[r].astype(np.float32))
            dets.append(det)
            r += 1
        samples.append(fo.Sample(filepath=str(tmp_path / ("%03d.png" % i)),
                                 ground_truth=fo.Detections(detections=dets)))
    ds.add_samples(samples, dynamic=True)
    ds.default_classes = NAMES
    ds.save()
    patches = ds.to_patches("ground_truth")
    run_operator("compute_knn_disagreement", patches, k=5)
    summary = run_operator("compute_noise_score", patches, pred_field="predictions")
    assert summary["predictions"]["predictions"]["form"] == "logits"
    noisy_flags, score = ds.to_patches("ground_truth").values(
        ["ground_truth.is_noisy", "ground_truth.noise_score"])
    assert _auroc(noisy_flags, score) > 0.9


def test_find_label_issues_and_rescore_use_pred_field(labelled):
    ds, y, noisy = labelled(per_class=40)
    _set_logits(ds, "predictions", _strong_logits(y, noisy, seed=5))
    ds.classes["predictions"] = NAMES
    ds.save()
    summary = run_operator("find_label_issues", ds, preset="custom",
                           detectors="knn_disagreement", pred_field="predictions")
    assert "predictions" in summary["predictions"]
    assert _auroc(ds.values("is_noisy"), ds.values("noise_score")) > 0.9
    # verdicts, then re-score: the consensus keeps the predictions
    wrong = ds.match({"is_noisy": True}).limit(10)
    right = ds.match({"is_noisy": False}).limit(10)
    wrong.set_values("label_verified", [False] * len(wrong))
    right.set_values("label_verified", [True] * len(right))
    again = run_operator("find_label_issues", ds, rescore=True)
    assert "predictions" in again["predictions"]


def test_unknown_parameters_are_refused_everywhere(labelled):
    ds, _, _ = labelled(per_class=10)
    run_operator("compute_knn_disagreement", ds, k=3)
    # a detector, an action operator and the pipeline, as the App/execute_operator calls them
    for name, params in (("compute_noise_score", {"pred_feild": "x"}),
                         ("tag_noisy_samples", {"score_field": "knn_disagreement", "treshold": 0.5}),
                         ("find_label_issues", {"pred_feild": "x"})):
        with pytest.raises(Exception, match="unknown parameter.*(pred_feild|treshold).*accepts"):
            run_operator(name, ds, **params)
    with pytest.raises(TypeError, match="unknown parameter"):
        operator("compute_knn_disagreement")(ds, kk=3)
    # what the App sends besides the form's own names passes
    run_operator("compute_knn_disagreement", ds, k=3, delegate=False, view_target="DATASET",
                 found=None)


def test_review_card_and_form_show_the_model(labelled):
    import importlib

    # the plugin's own package (its modules import ``..methods`` relatively)
    from conftest import plugin_module

    pr = plugin_module("operators.panel.review")
    prediction_fields = plugin_module("store.predictions").prediction_fields

    ds, y, noisy = labelled(per_class=20)
    run_operator("compute_knn_disagreement", ds, k=5)
    z = _strong_logits(y, noisy, seed=6)
    _set_logits(ds, "predictions", z, confidence=False)  # the card uses the logits
    ds.classes["predictions"] = NAMES
    ds.set_values("probs", list(np.exp(z) / np.exp(z).sum(1, keepdims=True)))
    ds.save()
    assert prediction_fields(ds) == ["predictions", "probs"]  # not embeddings (width 16)
    run_operator("compute_noise_score", ds, pred_field="predictions,probs")
    ids = ds.values("id")[:3]
    queue = pr.start_session(ds, "ground_truth", ids)
    items = pr.session_items(ds, queue)
    shown = pr.card(items, ids[0], queue)["detectors"]
    j = int(z[0].argmax())
    p = np.exp(z[0] - z[0].max()) / np.exp(z[0] - z[0].max()).sum()
    assert "model predictions: %s %.2f" % (NAMES[j], p[j]) in shown, shown
    assert "model probs: %s %.2f" % (NAMES[j], p[j]) in shown, shown


def test_kfold_script_writes_out_of_sample_predictions(labelled):
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "scripts", "kfold_predictions.py")
    spec = importlib.util.spec_from_file_location("kfold_predictions", path)
    kfold = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kfold)
    ds, y, noisy = labelled(per_class=40)
    kfold.main([ds.name, "--pred-field", "kfold", "--folds", "3"])
    assert ds.classes["kfold"] == NAMES
    run_operator("compute_knn_disagreement", ds, k=5)
    summary = run_operator("compute_noise_score", ds, pred_field="kfold")
    assert summary["predictions"]["kfold"]["in_sample"] is False
    assert summary["predictions"]["kfold"]["form"] == "logits"
