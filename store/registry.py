"""The detector registry: everything the plugin knows about each detector.

One :class:`Detector` record per detector, registered once in
:data:`DETECTORS`; nothing else in the plugin lists detector facts. Who reads
what:

- the consensus (:mod:`store.inputs`) finds a detector's output through the
  run record its operator wrote: the run's ``method`` names the record
  (:func:`by_method`, old names included), the run's ``params`` name the
  field (``evidence_param``, default ``evidence_field``), and the record says
  how to read it (``evidence``, ``higher_is_noisier``, ``suggestion_field``,
  ``disagreement_share``);
- the probability evidence of the noise estimate (:mod:`store.probabilities`)
  reads the runs of detectors that ``saves_probabilities``;
- the pipeline (``find_label_issues``) runs the detectors of a preset in
  registry order (``presets``), checks their readiness gates (``gate``) and
  shows ``label`` in its progress;
- the panel and the review card read a score's direction from its run
  record through the registry (never from the field's name), show
  ``short_label`` and pick a default score by ``panel_rank``.

A score's direction is a fact of the detector, not of its field: a
Training-ValueNet run written under ``output_field="tv"`` is still "higher =
cleaner" everywhere.

Adding a detector: a method file in ``methods/``, a record here, an operator
class in ``operators/detectors/`` whose ``detector`` attribute is the record
(:func:`get`), and its operator name in ``fiftyone.yml`` (docs/architecture.md
walks through it).
"""

from dataclasses import dataclass

#: the fewest items verified correct per class Training-ValueNet's validation
#: set needs (its readiness gate in the thorough preset)
MIN_VALIDATED_PER_CLASS = 50
#: the fewest items verified correct AND verified wrong a step that learns
#: from verdicts needs: CleanNet's gate in the thorough preset, and the
#: consensus' learned weights
MIN_VERIFIED_EACH = 10

#: the method name of the consensus' run records
CONSENSUS_METHOD = "consensus"
#: the consensus' default output (a calibrated probability: higher = noisier)
CONSENSUS_FIELD = "noise_score"


@dataclass(frozen=True)
class Detector:
    """What the plugin knows about one detector.

    Attributes:
        key: the registry key (also the run key its operator defaults to)
        operator: the operator's name (``compute_*``, listed in fiftyone.yml)
        method: the ``method`` its runs record
        label: its name in the pipeline's progress and summaries
        short_label: its name on the review card
        output_field: the operator's default ``output_field``
        evidence: ``"score"`` (a number) or ``"label"`` (an
            ``fo.Classification`` proposing a class, with a confidence)
        evidence_field: the default field the consensus reads
        evidence_param: the run parameter naming that field
        higher_is_noisier: orientation of a score (False: higher = cleaner)
        suggestion_field: default field of the class it proposes, if any
            (the run parameter ``suggestion_field`` renames it)
        disagreement_share: the score is the share of its evidence (e.g.
            neighbours) *against* the given label
        saves_probabilities: its run results hold out-of-sample class
            probabilities (read by the noise estimate)
        presets: the ``find_label_issues`` presets that run it
        gate: readiness check before the thorough preset runs it:
            ``"validated_per_class"`` (:data:`MIN_VALIDATED_PER_CLASS`) or
            ``"verified_each"`` (:data:`MIN_VERIFIED_EACH`)
        step_params: extra parameters the pipeline passes to its step
        refit_with_verdicts: it learns from review verdicts: re-score
            (``find_label_issues(rescore=True)``) re-runs it first
        aliases: other method names its runs were or may be recorded under
            (matched exactly, then as fragments of the run's method)
        panel_rank: preference as the panel's default score (lower first;
            None: never the default)
    """

    key: str
    operator: str
    method: str
    label: str
    short_label: str
    output_field: str
    evidence: str = "score"
    evidence_field: str = None
    evidence_param: str = "output_field"
    higher_is_noisier: bool = True
    suggestion_field: str = None
    disagreement_share: bool = False
    saves_probabilities: bool = False
    presets: tuple = ()
    gate: str = None
    step_params: tuple = ()
    refit_with_verdicts: bool = False
    aliases: tuple = ()
    panel_rank: int = None

    @property
    def input_field(self):
        """The field the consensus reads by default."""
        return self.evidence_field or self.output_field


#: every detector, in the order the pipeline runs them
DETECTORS = {}


def register(detector):
    """Adds ``detector`` to :data:`DETECTORS` (its key, operator and method
    must be new)."""
    for other in DETECTORS.values():
        clash = {detector.key, detector.operator, detector.method} & {
            other.key, other.operator, other.method
        }
        if clash:
            raise ValueError("detector %r clashes with %r on %s" % (detector.key, other.key, clash))
    DETECTORS[detector.key] = detector
    return detector


register(Detector(
    key="knn_disagreement", operator="compute_knn_disagreement", method="knn_disagreement",
    label="kNN disagreement", short_label="kNN", output_field="knn_disagreement",
    higher_is_noisier=True, suggestion_field="knn_label", disagreement_share=True,
    presets=("fast", "thorough"), aliases=("knn",), panel_rank=1,
))
register(Detector(
    key="label_quality", operator="compute_label_quality", method="label_quality",
    label="Label quality", short_label="label quality", output_field="label_quality",
    higher_is_noisier=False, suggestion_field="predicted_label", saves_probabilities=True,
    presets=("fast", "thorough"), refit_with_verdicts=True, panel_rank=2,
))
register(Detector(
    key="dupes", operator="compute_dupes", method="dupes",
    label="Dupes", short_label="Dupes", output_field="dupe_count",
    higher_is_noisier=True, suggestion_field="dupe_label", saves_probabilities=True,
    presets=("fast", "thorough"), aliases=("dupe",),
))
register(Detector(
    key="self_learning", operator="compute_corrected_labels", method="self_learning",
    label="Deep Self-Learning", short_label="Deep Self-Learning", output_field="corrected_label",
    evidence="label", presets=("fast", "thorough"), aliases=("selflearning",),
))
register(Detector(
    key="scan", operator="compute_scan_clusters", method="scan",
    label="SCAN", short_label="SCAN", output_field="scan_cluster",
    evidence="label", evidence_field="scan_label", evidence_param="suggestion_field",
    presets=("thorough",),
))
register(Detector(
    key="training_value", operator="compute_training_value", method="training_value",
    label="Training-ValueNet", short_label="Training-ValueNet", output_field="training_value",
    higher_is_noisier=False, presets=("thorough",), gate="validated_per_class",
    step_params=(("validation_field", "label_verified"),), aliases=("valuenet",), panel_rank=3,
))
register(Detector(
    key="cleannet", operator="compute_cleannet_similarity", method="cleannet",
    label="CleanNet", short_label="CleanNet", output_field="cleannet_similarity",
    higher_is_noisier=False, presets=("thorough",), gate="verified_each",
))


def get(key):
    """The record registered under ``key``."""
    return DETECTORS[key]


def by_operator(name):
    """The record of the operator ``name`` (``compute_*``), or None."""
    return next((d for d in DETECTORS.values() if d.operator == name), None)


def by_method(method):
    """The record of a run's ``method``, or None.

    The method itself or an alias, exactly; else (run records of other
    versions, e.g. ``"knn_v2"``) the first record, in registry order, one of
    whose names is a fragment of it. The consensus' own runs match nothing.
    """
    method = str(method or "").lower()
    if not method or method == CONSENSUS_METHOD:
        return None
    for d in DETECTORS.values():
        if method == d.method or method in d.aliases:
            return d
    for d in DETECTORS.values():
        if any(name in method for name in (d.method,) + d.aliases):
            return d
    return None


def by_field(name):
    """The record whose default consensus input is ``name`` (or a field
    ending in it, as a pipeline ``run_prefix`` writes them), or None."""
    for d in DETECTORS.values():
        if name == d.input_field:
            return d
    for d in DETECTORS.values():
        if str(name).endswith(d.input_field):
            return d
    return None


def in_preset(preset):
    """The records a preset runs, in order (gated ones included)."""
    return [d for d in DETECTORS.values() if preset in d.presets]
