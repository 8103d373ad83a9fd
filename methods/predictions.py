"""A model's predictions as evidence about the labels.

Users very often already have a classifier's output for every sample: a
``predictions`` field written by FiftyOne's ``apply_model(...,
store_logits=True)``, a vector of class probabilities from their own
training code, or just a predicted class with its confidence. When such a
model is *strong* and its predictions are *out of sample* (each sample
predicted by a model that did not train on its label, e.g. K-fold
cross-validation), they are the best evidence there is: cleanlab's own
benchmark feeds Confident Learning exactly these (Northcutt et al., JAIR
2021, section 4; Kuan & Mueller, 2022) and reaches AUROC 0.96-0.99 on
CIFAR-10N ``worst``, where generic embeddings give about 0.90.

This module turns those predictions into what the rest of the plugin pools
(:func:`methods.noise_estimate.pool_probabilities`): an ``(n, k)`` matrix of
class probabilities whose columns are the *label* classes.

1. **Probabilities or logits** (:func:`to_probabilities`): a row that is
   non-negative and sums to 1 is a probability vector; anything else is read
   as logits (or log-probabilities) and goes through a softmax. The choice
   is made once for the whole matrix (a model outputs one kind), so a
   softmax output that happens to sum to 1.0001 is not mistaken for logits.
2. **Class sets** (:func:`align_classes`): the model's classes are matched
   to the label classes by name. Classes the model knows but no label uses
   are dropped and the rest renormalised (their mean probability mass is
   reported: a large share means the model was trained for another task);
   a label class the model does not know gets no evidence: rows whose
   given label is such a class become uniform (uninformative) and the
   other rows give it a small floor. Both are reported.
3. **Label + confidence only** (:func:`from_label_confidence`): the named
   class gets its confidence and the other classes share the rest. This
   keeps the ranking of "the model disagrees with the label, confidently"
   but loses the model's second choice, so it is weaker evidence than
   logits (the summary says so).
4. **Suggestion** (:func:`other_class_suggestion`): with a strong model
   in the pool, the pooled probabilities' most probable class other than
   the given one (on CIFAR-10N ``worst`` more often right on the wrong
   labels than each network's own most probable other class).
5. **In-sample detection** (:func:`in_sample_check`). A model trained on
   these very labels memorises their errors: a network's training accuracy
   is near 100%, so it "agrees" with most wrong labels and its
   predictions hide exactly what we look for. The test: an out-of-sample
   model cannot agree with the given labels much more often than the
   labels are right, i.e. its agreement ``a`` (share of samples whose
   given label is the model's most probable class) is at most about
   ``1 - r`` where ``r`` is the noise rate. ``r`` is estimated without
   this source, from reference probabilities that are out of sample by
   construction (the plugin's cross-fitted ``compute_label_quality``), with
   the *lower* of the two model-based estimators (anchors, Confident
   Learning's count) so that the bound errs towards trusting the user's
   model. The predictions are called in-sample when ``a > 1 - r +
   margin`` (``margin`` 0.05 by default: agreement a noise-dependent model
   can gain on ambiguous images, plus the estimate's error). A weak model
   that was fitted on all labels but cannot memorise them (a linear probe
   on 256-d features) barely exceeds its cross-validated agreement and is
   not flagged; it also does little harm, because pooling weights it by
   its held-out log loss like any other source. The bound alone would
   wrongly flag a strong honest model when the reference is weak and
   overestimates the noise rate, so a second signature is required too: a
   memoriser agrees with the given labels on the reference's most
   suspicious samples (its top ``r`` share by ``1 - p(given)``) nearly as
   often as elsewhere (ratio >= :data:`SUSPECT_RATIO`), because its
   agreement does not depend on what the features say; an out-of-sample
   model sees the same images and agrees much less often there (on
   CIFAR-10N ``worst``: 0.12-0.15 of its agreement elsewhere for the five
   networks, 1.0 for a memorising forest). A reference that agrees with
   the given labels hardly more often than the largest class's share
   (:data:`MIN_REFERENCE_GAIN`) has no meaningful suspects: no verdict
   then (``in_sample`` None, said so). Flagged predictions are
   kept out of the pool (and reported in the summary, the run record and
   the App).

No FiftyOne here.
"""

import numpy as np

from .arrays import most_probable_other

__all__ = [
    "IN_SAMPLE_MARGIN",
    "MIN_REFERENCE_GAIN",
    "SUSPECT_RATIO",
    "UNKNOWN_CLASS_FLOOR",
    "align_classes",
    "from_label_confidence",
    "in_sample_check",
    "other_class_suggestion",
    "to_probabilities",
]

#: agreement above ``1 - noise rate`` tolerated before calling predictions in-sample
IN_SAMPLE_MARGIN = 0.05
#: a memoriser agrees with the given labels on the reference's most suspicious
#: samples nearly as often as elsewhere; an out-of-sample model, much less often
SUSPECT_RATIO = 0.9
#: agreement with the given labels the reference needs above the largest
#: class's share before its suspects mean anything (else: no verdict)
MIN_REFERENCE_GAIN = 0.1
#: probability given to a label class the model does not know (before renormalising)
UNKNOWN_CLASS_FLOOR = 1e-3


def to_probabilities(values, kind="auto", atol=1e-3):
    """Class probabilities from a matrix of probabilities or logits.

    Args:
        values: float array (n, k); rows of NaN (no prediction) stay NaN
        kind ("auto"): ``"probabilities"``, ``"logits"`` or ``"auto"``
            (probabilities when every present row is non-negative and sums
            to 1 within ``atol``, else logits)
        atol (1e-3): tolerance of the sum-to-one test

    Returns:
        ``(probabilities float64 (n, k), kind used)``
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("predictions must be an (n, k >= 2) matrix, got shape %s" % (x.shape,))
    present = np.isfinite(x).all(axis=1)
    if kind not in ("auto", "probabilities", "logits"):
        raise ValueError("kind must be auto, probabilities or logits, got %r" % kind)
    if kind == "auto":
        rows = x[present]
        kind = "probabilities" if len(rows) and (rows >= -1e-9).all() and np.allclose(
            rows.sum(axis=1), 1.0, atol=atol) else "logits"
    out = np.full_like(x, np.nan)
    rows = x[present]
    if kind == "probabilities":
        rows = np.clip(rows, 0.0, None)
        total = rows.sum(axis=1, keepdims=True)
        rows = np.where(total > 0, rows / np.where(total > 0, total, 1.0), 1.0 / x.shape[1])
    else:
        z = rows - rows.max(axis=1, keepdims=True)
        rows = np.exp(z)
        rows /= rows.sum(axis=1, keepdims=True)
    out[present] = rows
    return out, kind


def align_classes(probabilities, model_classes, label_classes, labels=None):
    """Re-orders a model's probability columns to the label classes.

    Args:
        probabilities: float (n, len(model_classes)), rows sum to 1 (NaN
            rows: no prediction)
        model_classes: the model's class names, in column order
        label_classes: the classes of the labels (the output's columns)
        labels (None): int (n,) given labels (indices into
            ``label_classes``); rows whose label the model does not know
            become uniform

    Returns:
        ``(float64 (n, len(label_classes)), info)``: rows sum to 1 (rows
        without a prediction are uniform); ``info`` has ``extra_classes``
        (model classes no label uses), ``missing_classes`` (label classes
        the model does not know), ``mass_outside`` (mean probability the
        model put on the extra classes), ``num_uninformative`` (rows made
        uniform) and ``num_missing`` (rows without a prediction)
    """
    p = np.asarray(probabilities, dtype=np.float64)
    model_classes = [str(c) for c in model_classes]
    if p.shape[1] != len(model_classes):
        raise ValueError(
            "predictions have %d columns but %d class names were given"
            % (p.shape[1], len(model_classes)))
    if len(set(model_classes)) != len(model_classes):
        raise ValueError("the model's class names repeat: %s" % model_classes)
    k = len(label_classes)
    col = {c: j for j, c in enumerate(model_classes)}
    cols = np.array([col.get(str(c), -1) for c in label_classes])
    known = cols >= 0
    if not known.any():
        raise ValueError(
            "none of the label classes %s is among the model's classes %s"
            % (list(label_classes)[:10], model_classes[:10]))
    present = np.isfinite(p).all(axis=1)
    out = np.full((len(p), k), 1.0 / k)
    block = np.full((int(present.sum()), k), UNKNOWN_CLASS_FLOOR)
    block[:, known] = np.maximum(p[present][:, cols[known]], 0.0)
    inside = block[:, known].sum(axis=1)
    mass_outside = float(np.mean(1.0 - np.clip(inside, 0.0, 1.0))) if len(block) else 0.0
    total = block.sum(axis=1, keepdims=True)
    out[present] = block / np.where(total > 0, total, 1.0)
    uninformative = ~present
    if labels is not None and not known.all():
        labels = np.asarray(labels, dtype=np.int64)
        unknown_label = ~known[labels]
        out[present & unknown_label] = 1.0 / k
        uninformative = uninformative | unknown_label
    extra = [c for c in model_classes if c not in set(map(str, label_classes))]
    info = dict(
        extra_classes=extra,
        missing_classes=[c for c, ok in zip(label_classes, known) if not ok],
        mass_outside=mass_outside,
        num_uninformative=int(uninformative.sum()),
        num_missing=int((~present).sum()),
    )
    return out, info


def from_label_confidence(labels, predicted, confidence, num_classes):
    """A probability matrix from a predicted class and its confidence only
    (module doc, 3): :func:`methods.noise_estimate.label_probabilities`."""
    from .noise_estimate import label_probabilities

    return label_probabilities(labels, predicted, confidence, num_classes)


def in_sample_check(probabilities, labels, reference=None, margin=IN_SAMPLE_MARGIN):
    """Are these predictions in-sample (fitted on these labels)? Module doc, 5.

    Args:
        probabilities: float (n, k) the predictions (label classes)
        labels: int (n,) given labels
        reference (None): float (n, k) out-of-sample probabilities of the
            same samples from another model (the plugin's own); without
            one, only the statistics are returned (verdict ``None``)
        margin (:data:`IN_SAMPLE_MARGIN`): agreement tolerated above the bound

    Returns:
        a JSON-ready dict: ``agreement`` (share of given labels that are
        the predicted class), ``mean_given_probability``, ``noise_rate_low``
        (the reference's lower noise estimate), ``bound`` (``1 -
        noise_rate_low + margin``), ``reference_agreement``, ``in_sample``
        (bool or None) and ``message``
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    informative = np.ptp(p, axis=1) > 1e-12
    if not informative.any():
        return dict(agreement=None, in_sample=None, message="no prediction to check")
    agreement = float((p[informative].argmax(axis=1) == labels[informative]).mean())
    out = dict(
        agreement=agreement,
        mean_given_probability=float(p[rows, labels][informative].mean()),
        noise_rate_low=None, bound=None, reference_agreement=None, in_sample=None,
    )
    if reference is None:
        out["message"] = (
            "agrees with %.1f%% of the given labels (no out-of-sample reference to "
            "compare with: run compute_label_quality)" % (100 * agreement))
        return out
    from .noise_estimate import model_noise_rates

    ref = np.asarray(reference, dtype=np.float64)
    rates, _ = model_noise_rates(ref, labels)
    low = float(min(rates.values()))
    bound = min(1.0 - low + margin, 1.0)
    # agreement on the reference's most suspicious share vs the rest
    suspicion = 1.0 - ref[rows, labels]
    cut = max(int(round(max(low, 0.05) * len(labels))), 1)
    top = np.zeros(len(labels), bool)
    top[np.argsort(-suspicion, kind="stable")[:cut]] = True
    agree = p.argmax(axis=1) == labels
    on_suspects = float(agree[top & informative].mean()) if (top & informative).any() else 0.0
    elsewhere = float(agree[~top & informative].mean()) if (~top & informative).any() else 0.0
    ratio = on_suspects / max(elsewhere, 1e-12)
    ref_agreement = float((ref.argmax(axis=1) == labels).mean())
    chance = float(np.bincount(labels).max() / len(labels))
    in_sample = bool(agreement > bound and ratio >= SUSPECT_RATIO)
    if ref_agreement < chance + MIN_REFERENCE_GAIN:  # its suspects are noise: no verdict
        out.update(noise_rate_low=low, reference_agreement=ref_agreement, in_sample=None,
                   message="agrees with %.1f%% of the given labels; the plugin's own "
                   "out-of-sample probabilities agree with only %.1f%% (the largest class "
                   "alone: %.1f%%), too weak to tell whether these predictions are in-sample"
                   % (100 * agreement, 100 * ref_agreement, 100 * chance))
        return out
    out.update(
        noise_rate_low=low, bound=bound, in_sample=in_sample,
        reference_agreement=ref_agreement,
        agreement_on_suspects=on_suspects, agreement_elsewhere=elsewhere,
    )
    if in_sample:
        out["message"] = (
            "IN-SAMPLE: agrees with %.1f%% of the given labels, more than an "
            "out-of-sample model can (at most about %.1f%% when %.1f%% of the labels "
            "are wrong, + %.0f%% margin), and as often (%.1f%%) on the labels the "
            "plugin's own out-of-sample model finds most suspicious as elsewhere "
            "(%.1f%%): the model was probably trained on these labels and memorised their "
            "errors. Left out of the score; use K-fold (out-of-sample) predictions "
            "instead" % (100 * agreement, 100 * (1 - low), 100 * low, 100 * margin,
                         100 * on_suspects, 100 * elsewhere))
    else:
        out["message"] = (
            "out of sample as far as can be told: agrees with %.1f%% of the given "
            "labels (an out-of-sample model: up to about %.1f%%), %.1f%% on the labels "
            "the plugin's own model finds most suspicious vs %.1f%% elsewhere" % (
                100 * agreement, 100 * bound, 100 * on_suspects, 100 * elsewhere))
    return out


def other_class_suggestion(pooled, labels, p_wrong):
    """The pooled probabilities' most probable class other than the given
    one, with confidence ``p(wrong) x`` its share of the other classes'
    probability (the probability that the label is wrong *and* this is the
    true class)."""
    q = np.asarray(pooled, np.float64).copy()
    rows = np.arange(len(labels))
    q[rows, labels] = 0.0
    # the given class masked with 0 (its historical choice, kept for identical
    # results): a row whose other classes all have probability 0 gets class 0
    suggested = most_probable_other(pooled, labels, fill=0.0)
    share = q[rows, suggested] / np.maximum(q.sum(axis=1), 1e-12)
    return suggested.astype(np.int64), (np.asarray(p_wrong) * share).astype(np.float64)
