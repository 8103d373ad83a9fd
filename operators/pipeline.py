"""Operator ``find_label_issues``: the whole job in one form.

Runs a chain of this plugin's detectors (a *preset*) and ends with the
consensus (``compute_noise_score``):

- ``fast``: kNN disagreement, out-of-sample probabilities
  (``compute_label_quality``), Dupes, Deep Self-Learning;
- ``thorough``: ``fast`` plus SCAN, plus Training-ValueNet when every class
  has 50+ samples verified correct, plus CleanNet when 10+ samples are
  verified correct and 10+ wrong;
- ``custom``: the detectors named in ``detectors``.

Each step is the detector's own operator, executed in this process with its
defaults and the chain's label field, embeddings field, seed and run-key
prefix, so each step keeps its own run record (re-running one detector later
works as usual). Steps whose operator is not available are skipped with a
note in the summary. The embeddings are read from the database once for the
whole chain (:func:`store.data.shared_inputs`) and the neighbour graph
is searched once (:func:`methods.neighbours.shared_neighbours`); one progress
bar covers the chain (``"3/5 Dupes: round 4/10"``). The result's ``steps``
give each step's wall seconds split into ``read_s``, ``compute_s`` and
``write_s``, and the process's peak memory (``peak_rss_gib``). When the embeddings field is
missing and a ``model`` is given, ``compute_embeddings`` runs first.

``rescore=True`` re-fits from the verdicts given since (``label_verified``,
audits): the out-of-sample probabilities (``compute_label_quality``) are
re-fitted with the verdicts as training weights, then the consensus with the
parameters of its previous run (from its run records) re-learns the weights,
the calibration and the flag count. The other detectors are not re-run.

In the App the run is delegated by default above
:data:`DELEGATE_ABOVE` samples; when it runs immediately the App then shows
the flagged samples, highest score first.
"""

import sys
import time

import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from ..store import brain_index
from .detectors import issue_types
from ..store import data as lnd
from ..store import registry
from ..store import runs as lnr
from ..store.inputs import discover_inputs
from ..store.objects import is_patches
from ..store.review import excluded_ids
from .embeddings import DEFAULT_MODEL, model_input
from .base import ActionOperator, call_operator, check_param_names, progress_reporter
from .forms import Param, embeddings_field_input, label_field_input

PLUGIN = lnr.PLUGIN_NAME
DELEGATE_ABOVE = 50_000
PRESETS = ("fast", "thorough", "custom")
CONSENSUS = "compute_noise_score"
#: the fast preset's detector operators, in order (from the registry)
FAST = tuple(d.operator for d in registry.in_preset("fast"))
#: every registered detector operator (the custom preset's choices)
DETECTORS = tuple(d.operator for d in registry.DETECTORS.values())
#: the chain's step names in progress and summaries
STEP_LABELS = dict(
    [("compute_embeddings", "Embeddings")]
    + [(d.operator, d.label) for d in registry.DETECTORS.values()]
    + [(CONSENSUS, "Consensus")]
)
#: step parameters naming fields a step writes (prefixed with run_prefix)
OUTPUT_PARAMS = (
    "output_field", "suggestion_field", "flag_field", "changed_field",
    "confidence_field", "noise_field",
)
#: the form's "no model" choice (the SDK's default is "")
NO_MODEL = "none"


def get_step_operator(name):
    """The plugin's operator ``name``, or None when it is not available."""
    try:
        return foo.get_operator("%s/%s" % (PLUGIN, name))
    except Exception:  # not registered (yet) in this installation
        return None


def verified_counts(view, label_field, verified_field="label_verified"):
    """``(correct per class, num correct, num wrong)`` of verified items
    (samples, or the objects of a patches view)."""
    if verified_field not in lnd.output_schema(view, label_field):
        return {}, 0, 0
    path = lnd.output_path(view, label_field, verified_field)
    correct = view.match(F(path) == True)  # noqa: E712
    per_class = correct.count_values(label_field + ".label")
    num_wrong = view.match(F(path) == False).count()  # noqa: E712
    return per_class, correct.count(), num_wrong


def plan_steps(view, preset, detectors="", label_field="ground_truth"):
    """The detector steps of a preset: ``(steps, notes)``.

    ``steps``: ``[(operator name, extra params)]`` in order (the consensus
    is not included); ``notes``: why a detector was left out.
    """
    if preset not in PRESETS:
        raise lnd.InputError("preset must be one of %s, got %r" % (PRESETS, preset))
    notes = []
    if preset == "custom":
        names = [d.strip() for d in str(detectors or "").split(",") if d.strip()]
        names = [n if n.startswith("compute_") else "compute_" + n for n in names]
        bad = [n for n in names if n not in DETECTORS]
        if bad or not names:
            raise lnd.InputError(
                "custom preset: name detectors among %s (got %s)"
                % (", ".join(DETECTORS), ", ".join(bad) or "none")
            )
        return [(n, {}) for n in names], notes
    steps = []
    counts = None
    for detector in registry.in_preset(preset):
        if detector.gate:
            if counts is None:
                counts = verified_counts(view, label_field)
            why = _gate_closed(detector, view, label_field, counts)
            if why:
                notes.append("%s skipped: %s" % (detector.label, why))
                continue
        steps.append((detector.operator, dict(detector.step_params)))
    return steps, notes


def _gate_closed(detector, view, label_field, counts):
    """Why ``detector``'s readiness gate (:attr:`store.registry.Detector.gate`)
    keeps it out of the preset, or None when it may run."""
    per_class, num_correct, num_wrong = counts
    if detector.gate == "validated_per_class":
        need = registry.MIN_VALIDATED_PER_CLASS
        classes = view.distinct(label_field + ".label")
        lacking = [c for c in classes if per_class.get(c, 0) < need]
        if classes and not lacking:
            return None
        return "needs %d samples verified correct per class (%d classes lack them)" % (
            need, len(lacking))
    if detector.gate == "verified_each":
        need = registry.MIN_VERIFIED_EACH
        if num_correct >= need and num_wrong >= need:
            return None
        return "needs %d samples verified correct and %d wrong (have %d and %d)" % (
            need, need, num_correct, num_wrong)
    raise ValueError("unknown readiness gate %r of %s" % (detector.gate, detector.key))


class _NoAppOps:
    """``ctx.ops`` of a step: the chain touches the App once, at the end."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class StepContext:
    """The execution context a step's operator sees: the chain's target
    view and dataset, the step's params, progress into the chain's bar, no
    App operations (``delegated`` is True for the step)."""

    delegated = True

    def __init__(self, ctx, view, params, report):
        self._ctx = ctx
        self._view = view
        self.params = params
        self._report = report
        self.ops = _NoAppOps()

    @property
    def dataset(self):
        return self._view._root_dataset

    def target_view(self, *args, **kwargs):
        return self._view

    def set_progress(self, progress=None, label=None):
        self._report(progress or 0.0, label or "")

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def step_params(operator, common, extra, prefix):
    """The params a step gets: those it declares, from ``common`` and
    ``extra``, its run key and output fields prefixed with ``prefix``."""
    declared = {p.name: p.default for p in getattr(operator, "params", ())}
    params = {k: v for k, v in dict(common, **extra).items() if k in declared}
    if prefix:
        method = getattr(operator, "method", None) or operator.name
        if "run_key" in declared:
            params["run_key"] = prefix + str(declared["run_key"] or method)
        for name in OUTPUT_PARAMS:
            if name in declared and declared[name] and name not in extra:
                params[name] = prefix + declared[name]
    return params


def refit_steps(dataset, view, prefix, label_field):
    """Re-score's detector steps: each verdict-aware detector of the chain
    ``prefix`` re-runs with its recorded parameters, so the verdicts (right
    labels train with full weight, wrong ones not at all) sharpen its
    probabilities before the consensus re-fits. None without verdicts."""
    _, num_correct, num_wrong = verified_counts(view, label_field)
    if num_correct + num_wrong == 0 and not _tagged_verdicts(view, label_field) \
            and not excluded_ids(view, label_field):  # excluded: left out of training
        return []
    steps = []
    for name in [d.operator for d in registry.DETECTORS.values() if d.refit_with_verdicts]:
        op = get_step_operator(name)
        if op is None:
            continue
        declared = {p.name: p.default for p in op.params}
        key = prefix + str(declared.get("run_key") or op.method)
        if key not in dataset.list_runs():
            continue
        previous = dict(getattr(dataset.get_run_info(key).config, "params", {}) or {})
        if previous.get("label_field", label_field) != label_field:
            continue
        previous = {k: v for k, v in previous.items() if k in declared}
        previous["run_key"] = key
        steps.append((name, op, previous))
    return steps


def _tagged_verdicts(view, label_field):
    tags = ["verified:correct", "verified:wrong"]
    if is_patches(view):
        return view.match_labels(tags=tags, fields=label_field).count() > 0
    return view.match_tags(tags).count() > 0


def peak_rss_gib():
    """Peak resident memory of this process so far (GiB; None where the
    platform does not report it)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**30 if sys.platform == "darwin" else 2**20), 2)


def run_chain(ctx, view, steps, progress):
    """Executes ``[(label, operator, params)]`` in order with one progress bar.

    Returns ``[(name, summary)]``; each summary gets ``timing``: the step's
    wall seconds split into reading inputs, writing outputs and the rest
    (computing), and the process's peak memory by the end of the step.
    Inside, every read of the same inputs is served once
    (:func:`store.data.shared_inputs`) and every neighbour search of the
    same embeddings too (:func:`methods.neighbours.shared_neighbours`).
    """
    from ..methods.neighbours import shared_neighbours
    from ..methods.out_of_sample import K_GRID

    done = []
    total = len(steps)
    # one neighbour graph for the chain, deep enough for every step that
    # searches (kNN k=10, label quality's votes up to 40, SCAN k=20)
    with lnd.shared_inputs(), shared_neighbours(k=max(K_GRID)):
        for k, (name, operator, params) in enumerate(steps):
            label = STEP_LABELS.get(name, name)

            def report(fraction, message, k=k, label=label):
                fraction = min(max(float(fraction or 0.0), 0.0), 1.0)
                progress(
                    (k + fraction) / total,
                    "%d/%d %s: %s" % (k + 1, total, label, message or "..."),
                )

            report(0.0, "starting")
            started = time.perf_counter()
            with lnd.io_timing() as spent:
                summary = operator.execute(StepContext(ctx, view, params, report))
            seconds = time.perf_counter() - started
            summary = dict(summary or {}, timing=dict(
                wall_s=round(seconds, 2),
                read_s=round(spent["read"], 2),
                write_s=round(spent["write"], 2),
                compute_s=round(max(seconds - spent["read"] - spent["write"], 0.0), 2),
                peak_rss_gib=peak_rss_gib(),
            ))
            done.append((name, summary))
    return done


class FindLabelIssues(ActionOperator):
    name = "find_label_issues"
    label = "Label noise: find label issues (all detectors + consensus)"
    description = (
        "Runs a preset of detectors and the consensus in one go, then shows "
        "the flagged samples, most suspicious first"
    )
    params = (
        Param("label_field", "ground_truth", "Label field", "fo.Classification labels to check"),
        Param(
            "embeddings_field", "embeddings", "Embeddings field",
            "One vector per sample; when missing, pick a model to compute it",
        ),
        Param(
            "brain_key", "", "Similarity index (instead)",
            "Read the embeddings from this FiftyOne similarity index (a "
            "compute_similarity run) instead of the embeddings field",
            kind="similarity",
        ),
        Param(
            "model", "", "Model (when the embeddings field is missing)",
            "FiftyOne zoo model for compute_embeddings (any of "
            "foz.list_zoo_models(tags='embeddings'), or resnet18/resnet50/"
            "mobilenet_v3_large with local weights)",
        ),
        Param(
            "weights", "DEFAULT", "Model weights",
            "DEFAULT (download once), a local state_dict path, or empty (random)",
        ),
        Param(
            "preset", "fast", "Preset",
            "fast: kNN, label quality, Dupes, Deep Self-Learning; thorough: "
            "plus SCAN, and Training-ValueNet / CleanNet when enough samples "
            "are verified; custom: the detectors listed below",
            choices=PRESETS,
        ),
        Param(
            "detectors", "", "Detectors (custom preset)",
            "Comma-separated, e.g. knn_disagreement,dupes,corrected_labels",
        ),
        Param(
            "pred_field", "", "Model predictions",
            "Your model's predictions (fo.Classification with logits, a "
            "probability/logit vector, or label + confidence; one or several "
            "fields): the consensus pools them with the detectors' evidence. "
            "Out-of-sample (K-fold) predictions work best",
            kind="predictions",
        ),
        Param("seed", 51, "Random seed", "Same seed, same results"),
        Param(
            "run_prefix", "", "Run-key prefix",
            "Prefix of every run key and output field of the chain (empty: "
            "the detectors' defaults)",
        ),
        Param(
            "rescore", False, "Re-score only",
            "Re-fit the previous run from the verdicts given since: the "
            "label-quality probabilities, then the consensus (no other "
            "detector re-runs)",
        ),
    )

    def form(self, ctx, inputs):
        dataset = ctx.dataset
        by_name = {p.name: p for p in self.params}
        for p in self.params:
            if p.name == "label_field":
                label_field_input(ctx, inputs, p)
            elif p.name == "model":
                self._embeddings_inputs(ctx, inputs, p, by_name)
            elif p.name == "detectors":
                if (ctx.params or {}).get("preset") == "custom":
                    p.add_to(inputs, ctx)
            elif p.name not in ("embeddings_field", "weights"):
                p.add_to(inputs, ctx)
        if dataset is None:
            return
        params = self.resolved_params(ctx)
        try:
            view = ctx.target_view()
            if params["rescore"]:
                key = params["run_prefix"] + "consensus"
                if key not in dataset.list_runs():
                    raise lnd.InputError("No consensus run '%s' to re-score yet" % key)
                _, num_correct, num_wrong = verified_counts(view, params["label_field"])
                msg = "Re-fits '%s' from %d verified samples" % (key, num_correct + num_wrong)
            else:
                steps, notes = plan_steps(view, params["preset"], params["detectors"], params["label_field"])
                names = [STEP_LABELS[n] for n, _ in steps if get_step_operator(n)]
                missing = [STEP_LABELS[n] for n, _ in steps if not get_step_operator(n)]
                msg = "Runs %s, then the consensus" % ", ".join(names)
                if missing:
                    notes.append("not available here (skipped): %s" % ", ".join(missing))
                if notes:
                    msg += ". " + "; ".join(notes)
        except lnd.InputError as e:
            bad = inputs.view("plan", types.Warning(label=str(e)))
            bad.invalid = True
            bad.error_message = str(e)
            return
        inputs.view("plan", types.Notice(label=msg))

    @staticmethod
    def _embeddings_inputs(ctx, inputs, model_param, by_name):
        """Model, then embeddings field: a dropdown of the existing vector
        fields; a new name only when a model will compute it (preselected
        when the target has no vector field)."""
        collection = getattr(ctx, "view", None) or ctx.dataset
        vectors = lnd.vector_fields(collection) if collection is not None else []
        default_model = NO_MODEL if vectors else DEFAULT_MODEL
        model_input(  # any FiftyOne zoo model with embeddings (operators/embeddings.py)
            ctx, inputs, model_param, default=default_model,
            first=[(NO_MODEL, "none: use an existing embeddings field", True),
                   ("", "none", False)],  # "": the SDK's default
            label="%s (computes the embeddings field)",
        )
        model = (ctx.params or {}).get("model", default_model)
        model = "" if model == NO_MODEL else model
        embeddings_field_input(ctx, inputs, by_name["embeddings_field"], allow_new=bool(model))
        if model:
            by_name["weights"].add_to(inputs, ctx)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx)
        self.form(ctx, inputs)
        n = ctx.target_view().count() if ctx.dataset is not None else 0
        inputs.bool(
            "delegate",
            default=n > DELEGATE_ABOVE,
            required=False,
            label="Delegate execution?",
            description=(
                "Queue the chain for a delegated-operations worker (`fiftyone "
                "delegated launch`); ticked by default above %d samples" % DELEGATE_ABOVE
            ),
            view=types.CheckboxView(),
        )
        return types.Property(inputs, view=types.View(label=self.label))

    def resolve_delegation(self, ctx):
        if "delegate" in ctx.params and ctx.params["delegate"] is not None:
            return bool(ctx.params["delegate"])
        return ctx.target_view().count() > DELEGATE_ABOVE

    def run(self, ctx, params, progress):
        view = ctx.target_view()
        dataset = ctx.dataset
        prefix = params["run_prefix"] or ""
        if prefix and not prefix.replace("_", "a").isalnum():
            raise lnd.InputError("run_prefix must be letters, digits or '_', got %r" % prefix)
        common = dict(
            label_field=params["label_field"],
            embeddings_field=params["embeddings_field"],
            brain_key=params["brain_key"] or "",
            seed=int(params["seed"]),
            pred_field=params["pred_field"] or "",
        )
        consensus_op = get_step_operator(CONSENSUS)
        notes, steps = [], []
        if params["rescore"]:
            key = prefix + "consensus"
            if key not in dataset.list_runs():
                raise lnd.InputError(
                    "No consensus run '%s' to re-score: run find_label_issues first" % key
                )
            steps += refit_steps(dataset, view, prefix, params["label_field"])
            previous = dict(getattr(dataset.get_run_info(key).config, "params", {}) or {})
            previous = {k: v for k, v in previous.items() if k in {p.name for p in consensus_op.params}}
            previous["run_key"] = key
            if params["pred_field"]:  # re-score with other predictions
                previous["pred_field"] = params["pred_field"]
            steps.append((CONSENSUS, consensus_op, previous))
        else:
            planned, notes = plan_steps(view, params["preset"], params["detectors"], params["label_field"])
            lnd.check_label_field(view, params["label_field"])
            embeddings = lnd.embeddings_path(view, params["label_field"], params["embeddings_field"])
            if params["brain_key"]:  # the steps read the index; checked before any runs
                brain_index.check_index(view, params["brain_key"], params["label_field"])
            elif not lnd.embeddings_exist(view, embeddings):  # objects: <label>.<field>
                if params["model"] in ("", NO_MODEL):
                    raise lnd.InputError(
                        "Embeddings field '%s' does not exist: pick an existing "
                        "vector field (%s) or a model to compute it"
                        % (params["embeddings_field"], lnd.vector_fields(view) or "none")
                    )
                embed = get_step_operator("compute_embeddings")
                steps.append((
                    "compute_embeddings", embed,
                    dict(model=params["model"], weights=params["weights"],
                         embeddings_field=params["embeddings_field"]),
                ))
            written = []
            for name, extra in planned:
                op = get_step_operator(name)
                if op is None:
                    notes.append("%s skipped: operator %s is not available" % (STEP_LABELS[name], name))
                    continue
                p = step_params(op, common, extra, prefix)
                written += [p[k] for k in OUTPUT_PARAMS[:1] if k in p]
                steps.append((name, op, p))
            p = step_params(consensus_op, common, {}, prefix)
            if prefix:  # combine this chain's detectors only
                schema = lnd.output_schema(view, params["label_field"]) if is_patches(view) else None
                p["inputs"] = ",".join(_recognised(dataset, written, p, schema))
            steps.append((CONSENSUS, consensus_op, p))
        if len([s for s in steps if s[0] != "compute_embeddings"]) == 1 and not params["rescore"]:
            raise lnd.InputError("No detector of the preset is available: %s" % "; ".join(notes))
        consensus_params = steps[-1][2]
        issue_step, note = issue_types.chain_step(view, steps, common, prefix, get_step_operator, step_params)
        steps += [issue_step] if issue_step else []
        notes += [note] if note else []
        done = run_chain(ctx, view, steps, progress)
        consensus = dict(dict(done)[CONSENSUS])
        score = consensus_params.get("output_field", "noise_score")
        flag = consensus_params.get("flag_field", "noise_flagged")
        rate = consensus.get("noise_rate", consensus.get("flag_rate"))
        result = dict(
            consensus,
            noise_rate=rate,
            steps=[dict(step=n, run_key=s.get("run_key"), seconds=s.get("seconds"),
                        num_flagged=s.get("num_flagged"), **s["timing"],
                        **({"search": s["search"]} if s.get("search") else {}))
                   for n, s in done],
            notes=notes,
            score_field=score,
            flag_field=flag,
            **issue_types.chain_summary(done),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            if flag and flag in lnd.output_schema(view, params["label_field"]):
                ctx.ops.set_view(consensus_flagged_view(view, params["label_field"], score, flag))
        return result

    def execute(self, ctx):
        # not ActionOperator.execute: each step takes the dataset's write
        # lock itself, and the App is set to the flagged samples at the end
        check_param_names(self, ctx.params, ctx=ctx)
        return self.run(ctx, self.resolved_params(ctx), progress_reporter(ctx))

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key in ("num_flagged", "noise_rate", "num_samples", "steps", "notes", "run_key", "seconds"):
            outputs.str(key, label=key.replace("_", " "))
        return types.Property(outputs, view=types.View(label="Label issues found"))

    def __call__(self, sample_collection, delegate=False, **params):
        """Runs the chain (or ``rescore=True``) on a dataset or view; returns
        the consensus summary (``num_flagged``, ``noise_rate``, ...) plus
        ``steps`` and ``notes``."""
        return call_operator(self, sample_collection, params, delegate)


def consensus_flagged_view(view, label_field, score_field, flag_field):
    """The items the consensus flagged, highest score first (samples, or
    objects of a patches view)."""
    flag = lnd.output_path(view, label_field, flag_field)
    score = lnd.output_path(view, label_field, score_field)
    return view.match(F(flag) == True).sort_by(score, reverse=True)  # noqa: E712


def _recognised(dataset, fields, consensus_params, schema=None):
    """The consensus inputs among ``fields`` (what the consensus discovers;
    ``schema``: the objects' outputs on a patches view)."""
    own = {consensus_params.get(k) for k in ("output_field", "suggestion_field", "flag_field")}
    found = discover_inputs(dataset, exclude=own, schema=schema)
    return [f for f in fields if f in found]
