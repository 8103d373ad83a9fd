"""The "Label noise" panel: look at the suspicious samples, decide, fix.

Three modes:

- **overview**: the histogram of the score (the calibrated ``noise_score``
  is a probability) with a threshold slider (the grid shows the items beyond
  it, most suspicious first), a heatmap of given x suggested label over the
  flagged items (click a cell: the grid shows those items), the estimated
  noise rate per class, tag / apply / undo buttons, re-score;
- **review**: walk the flagged items (or the selected ones, or the view),
  largest score first, one at a time: the image, the given and suggested
  labels, each detector's verdict; label is right / use suggestion /
  another class / skip / undo, by button or key (``y s r 1-9 n u``), a
  counter, leave and resume (:mod:`operators.panel.review`);
- **audit**: the same on a uniform random sample, with the estimated share
  of wrong labels and its 95% interval (:mod:`store.audit`).

It works on samples and on the objects of a patches view (outputs at
``<label_field>.<name>``). Every number comes from a database aggregation
(:mod:`operators.panel.charts`), never a Python loop over samples.
"""

import math

import fiftyone.operators as foo

from ...store import corrections as lnc
from ...store import registry
from ...store import runs as lnr
from . import charts
from . import review
from ...store import review as lnv
from ...store import audit as lna
from ..curation.corrections import SOURCE, corrections_view
from ..curation.tagging import score_fields, suggestion_fields
from ...store.data import InputError, classification_fields, tag_items

MODES = ("overview", "review", "audit")
PLUGIN = lnr.PLUGIN_NAME


def default_score_field(collection):
    fields = score_fields(collection)
    preferred = [registry.CONSENSUS_FIELD] + [
        d.input_field for d in sorted(
            (d for d in registry.DETECTORS.values() if d.panel_rank is not None),
            key=lambda d: d.panel_rank,
        )
    ]
    for name in preferred:
        if name in fields:
            return name
    return fields[0] if fields else None


def _choice(fields, current, preferred):
    if current in fields:
        return current
    return preferred if preferred in fields else (fields[0] if fields else None)


def _setter(name, then=None):
    """A panel event storing an input's value in the state under ``name``
    (then calling the panel method ``then``)."""

    def handler(self, ctx):
        ctx.panel.set_state(name, ctx.params.get("value"))
        if then:
            getattr(self, then)(ctx)

    handler.__name__ = "on_change_" + name
    return handler


def _fix_fields(dataset, suggestion_field):
    f = dataset.get_field_schema().get(suggestion_field)
    return suggestion_field + ".label" if getattr(f, "document_type", None) else suggestion_field


class LabelNoisePanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="label_noise_panel",
            label="Label noise",
            surfaces="grid",
            help_markdown=(
                "Find, review and audit label issues: run **find_label_issues**, "
                "look at the flagged samples, review them with the keyboard "
                "(`y` right, `s` suggestion, `1`-`9` a class, `n` skip, `u` undo), "
                "audit a random sample, re-score."
            ),
        )

    # ------------------------------------------------------------ context

    @staticmethod
    def _base(ctx):
        """(collection, label field) of this panel: the dataset and the
        chosen Classification field, or the whole patches view and its field."""
        base, patches_field = charts.panel_base(ctx)
        return base, patches_field or ctx.panel.state.label_field

    def _ready(self, ctx):
        state = ctx.panel.state
        if ctx.dataset is None or state.threshold is None:
            return False
        base, _ = self._base(ctx)
        return state.score_field in score_fields(base)

    # ------------------------------------------------------------ events

    def on_load(self, ctx):
        self._init(ctx, keep_threshold=ctx.panel.state.threshold is not None)

    def on_change_dataset(self, ctx):
        # new scores (a detector ran, a re-score): the consensus' own cut
        ctx.panel.set_state("mode", "overview")
        self._init(ctx, keep_threshold=False)

    def _init(self, ctx, keep_threshold):
        state = ctx.panel.state
        if ctx.dataset is None:
            return
        base, patches_field = charts.panel_base(ctx)
        ctx.panel.set_state("score_field", _choice(score_fields(base), state.score_field, default_score_field(base)))
        labels = [patches_field] if patches_field else classification_fields(ctx.dataset)
        ctx.panel.set_state("label_field", _choice(labels, state.label_field, "ground_truth"))
        ctx.panel.set_state("source_field", _choice(suggestion_fields(base), state.source_field, "suggested_label"))
        for key, value in (("tag", "noisy"), ("mode", "overview"), ("review_source", "flagged"),
                           ("audit_size", 100), ("audit_seed", 51), ("audit_key", "label_audit"),
                           ("audit_scope", "all"), ("heatmap_cells", "estimated")):
            if state.get(key) is None:
                ctx.panel.set_state(key, value)
        self._load_field(ctx, keep_threshold=keep_threshold)
        if state.mode == "overview":
            self._show(ctx)

    def on_change_score_field(self, ctx):
        ctx.panel.set_state("score_field", ctx.params.get("value"))
        ctx.panel.set_state("threshold", None)
        self._load_field(ctx, keep_threshold=False)
        self._show(ctx)

    def on_change_label_field(self, ctx):
        ctx.panel.set_state("label_field", ctx.params.get("value"))
        self._load_field(ctx, keep_threshold=True)

    def on_change_threshold(self, ctx):
        value = ctx.params.get("value")
        if value is None:
            return
        value = round(float(value), 4)  # shown exactly in the counts line
        if value == ctx.panel.state.threshold:
            return
        ctx.panel.set_state("threshold", value)
        self._load_flagged_charts(ctx)
        self._show(ctx)

    on_change_tag = _setter("tag")
    on_change_source_field = _setter("source_field", then="_load_flagged_charts")
    on_change_review_source = _setter("review_source")
    on_change_audit_size = _setter("audit_size")
    on_change_audit_seed = _setter("audit_seed")
    on_change_audit_scope = _setter("audit_scope")
    on_change_heatmap_cells = _setter("heatmap_cells", then="_load_flagged_charts")
    on_change_relabel_class = _setter("relabel_class")

    def show_flagged(self, ctx):
        self._restore_threshold(ctx)
        self._show(ctx)

    def clear_view(self, ctx):
        ctx.ops.clear_view()

    def tag_flagged(self, ctx):
        state = ctx.panel.state
        self._restore_threshold(ctx)
        if not self._ready(ctx):
            return
        base, lf = self._base(ctx)
        tag = state.tag or "noisy"
        view = self._flagged(ctx)
        ids = view.values("id")
        tag_items(base, lf, ids, tag, replace=True)
        ctx.ops.notify("Tagged %d items '%s'" % (len(ids), tag), variant="success")
        ctx.ops.reload_dataset()
        self._show(ctx)

    def apply_to_selected(self, ctx):
        state = ctx.panel.state
        selected = list(ctx.selected or [])
        if not selected:
            ctx.ops.notify("Select samples in the grid first", variant="warning")
            return
        base, lf = self._base(ctx)
        try:
            if lnv.is_patches(base):
                path = charts.suggestion_path(base, lf, state.source_field)
                ids, labels = base.select(selected).exists(path).values(["id", path])
                result = lnc.apply_object_corrections(base.select(ids), ids, labels, lf, source=SOURCE)
            else:
                view = corrections_view(ctx.dataset.select(selected), lf, state.source_field)
                ids, labels = view.values(["id", _fix_fields(ctx.dataset, state.source_field)])
                result = lnc.apply_corrections(ctx.dataset, ids, labels, lf, source=SOURCE)
        except InputError as e:
            ctx.ops.notify(str(e), variant="error")
            return
        ctx.ops.notify(
            "Relabeled %d of %d selected items from '%s'"
            % (result["num_corrected"], len(selected), state.source_field),
            variant="success",
        )
        ctx.ops.reload_dataset()

    def undo_selected(self, ctx):
        selected = list(ctx.selected or [])
        base, lf = self._base(ctx)
        if lnv.is_patches(base):
            result = lnc.revert_object_corrections(base, lf, ids=selected or None, source=SOURCE)
        else:
            result = lnc.revert_corrections(ctx.dataset, lf, ids=selected or None, source=SOURCE)
        ctx.ops.notify("Restored the original label of %d items" % result["num_reverted"], variant="success")
        ctx.ops.reload_dataset()

    def on_heatmap_click(self, ctx):
        """A cell (given row, suggested column): the grid shows those flagged items."""
        given, suggested = ctx.params.get("y"), ctx.params.get("x")
        if given is None or suggested is None or not self._ready(ctx):
            return
        base, lf = self._base(ctx)
        state = ctx.panel.state
        spath = charts.suggestion_path(base, lf, state.source_field)
        if spath is None:
            return
        view = charts.flagged_pair_view(self._flagged(ctx), lf + ".label", spath, given, suggested)
        ctx.panel.set_state("pair", [given, suggested, view.count()])
        ctx.ops.set_view(view)

    def rescore(self, ctx):
        """Re-fits the consensus from the verdicts so far (find_label_issues
        ``rescore=True``), then reloads the pictures."""
        state = ctx.panel.state
        base, lf = self._base(ctx)
        key, config = charts.consensus_run(base, state.score_field or "noise_score")
        if key is None:
            ctx.ops.notify("No consensus run wrote '%s': run find_label_issues first"
                           % state.score_field, variant="warning")
            return
        try:
            summary = rescore_run(ctx, base, key, config)
        except InputError as e:
            ctx.ops.notify(str(e), variant="error")
            return
        rate = summary.get("noise_rate")
        ctx.ops.notify(
            "Re-scored '%s': %s flagged%s" % (
                key, summary.get("num_flagged"),
                ", estimated %.1f%% wrong labels" % (100 * rate) if rate is not None else ""),
            variant="success",
        )
        ctx.panel.set_state("threshold", None)
        ctx.panel.set_state("last_rescore", {"run_key": key, "num_flagged": summary.get("num_flagged"),
                                             "noise_rate": rate})
        ctx.ops.reload_dataset()
        self._load_field(ctx, keep_threshold=False)
        if state.mode == "overview":
            self._show(ctx)

    # ----------------------------------------------------- review / audit

    def start_review(self, ctx):
        state = ctx.panel.state
        self._restore_threshold(ctx)
        base, lf = self._base(ctx)
        try:
            ids = review.queue_ids(
                base, lf, state.review_source or "flagged", state.score_field,
                state.threshold, selected=ctx.selected, view=ctx.view,
            )
            queue = review.start_session(
                base, lf, ids, "review", state.score_field, state.source_field,
                source=state.review_source or "flagged",
            )
        except InputError as e:
            ctx.ops.notify(str(e), variant="error")
            return
        self._enter(ctx, queue)

    def start_audit(self, ctx):
        state = ctx.panel.state
        base, lf = self._base(ctx)
        population = ctx.view if state.audit_scope == "view" and ctx.view is not None else base
        try:
            results = lna.start_audit(population, lf, int(state.audit_size or 100),
                                  int(state.audit_seed or 51), state.audit_key or "label_audit")
            queue = review.start_session(
                base, lf, results["sample_ids"], "audit", state.score_field, state.source_field,
                audit_key=state.audit_key or "label_audit", source="audit",
            )
        except (InputError, ValueError) as e:
            ctx.ops.notify(str(e), variant="error")
            return
        self._enter(ctx, queue)

    def resume_review(self, ctx):
        queue = lnv.load_queue(ctx.dataset)
        if queue:
            self._enter(ctx, queue)

    def leave_review(self, ctx):
        ctx.panel.set_state("mode", "overview")
        self._show(ctx)

    def _enter(self, ctx, queue):
        base, _ = self._base(ctx)
        try:
            items = review.session_items(base, queue)
        except InputError as e:
            ctx.ops.notify(str(e), variant="warning")
            return
        ctx.panel.set_state("mode", queue.get("kind", "review"))
        ctx.ops.set_view(items.view.select(list(queue["ids"]), ordered=True))

    def _act(self, ctx, action, new_label=None, item_id=None):
        queue = lnv.load_queue(ctx.dataset)
        if not queue:
            return
        base, _ = self._base(ctx)
        try:
            items = review.session_items(base, queue)
            message = review.act(items, queue, action, item_id=item_id, new_label=new_label)
        except InputError as e:
            ctx.ops.notify(str(e), variant="error")
            return
        if message:
            ctx.ops.notify(message, variant="info")
        if action in ("suggestion", "relabel", "undo"):
            ctx.ops.reload_samples()  # the grid shows the labels as they are now

    def review_right(self, ctx):
        self._act(ctx, "correct", item_id=ctx.params.get("item_id"))

    def review_suggestion(self, ctx):
        self._act(ctx, "suggestion", item_id=ctx.params.get("item_id"))

    def review_relabel(self, ctx):
        label = ctx.panel.state.relabel_class
        if not label:
            ctx.ops.notify("Pick the class in the list first", variant="warning")
            return
        self._act(ctx, "relabel", new_label=label)

    def review_skip(self, ctx):
        self._act(ctx, "skip")

    def review_ambiguous(self, ctx):
        self._act(ctx, "ambiguous", item_id=ctx.params.get("item_id"))

    def review_exclude(self, ctx):
        self._act(ctx, "exclude", item_id=ctx.params.get("item_id"))

    def review_undo(self, ctx):
        self._act(ctx, "undo")

    def on_review_key(self, ctx):
        queue = lnv.load_queue(ctx.dataset) or {}
        action, label = review.key_action(ctx.params.get("key"), list(queue.get("classes") or []))
        if action == "relabel" and label is None:
            label = ctx.panel.state.relabel_class
            if not label:
                ctx.ops.notify("Pick the class in the list first (or press its number)", variant="warning")
                return
        if action is not None:
            self._act(ctx, action, new_label=label, item_id=ctx.params.get("item_id"))

    def open_item(self, ctx):
        item_id = ctx.params.get("item_id") or ctx.panel.state.current_item
        if item_id:
            ctx.ops.open_sample(id=item_id)

    # ------------------------------------------------------------ helpers

    def _restore_threshold(self, ctx):
        """The consensus' own cut when the state the App sent has no
        threshold: FiftyOne 1.10 can send one without it when events
        overlap (a dataset reload while the slider reports its value)."""
        if ctx.panel.state.threshold is None:
            self._load_field(ctx, keep_threshold=False)

    def _flagged(self, ctx, higher=None):
        """The items beyond the threshold (``higher``: the score's direction,
        when the caller has it already; else read from its run record)."""
        state = ctx.panel.state
        base, lf = self._base(ctx)
        if higher is None:
            higher = charts.higher_is_noisier(base, lf, state.score_field)
        return charts.beyond(base, lf, state.score_field, state.threshold, higher)

    def _load_field(self, ctx, keep_threshold):
        state = ctx.panel.state
        base, lf = self._base(ctx)
        if state.score_field is None or state.score_field not in score_fields(base):
            return
        trace, (lo, hi) = charts.score_histogram(base, lf, state.score_field)
        ctx.panel.set_data("histogram", [trace] if trace else [])
        ctx.panel.set_state("bounds", [lo, hi])
        threshold = state.threshold
        if not keep_threshold or threshold is None or not lo <= threshold <= hi:
            key, config = charts.consensus_run(base, state.score_field)
            flag = (getattr(config, "params", None) or {}).get("flag_field", "noise_flagged") if key else None
            higher = charts.higher_is_noisier(base, lf, state.score_field)
            threshold = charts.default_threshold(base, lf, state.score_field, flag, (lo, hi), higher)
            # 4 decimals (shown exactly), rounded so the cut item stays flagged
            step = math.floor if higher else math.ceil
            threshold = step(threshold * 1e4) / 1e4
        ctx.panel.set_state("threshold", threshold)
        self._load_flagged_charts(ctx)

    def _load_flagged_charts(self, ctx):
        state = ctx.panel.state
        if not self._ready(ctx):
            return
        base, lf = self._base(ctx)
        flagged = self._flagged(ctx)
        given = lf + ".label"  # the class: the Classification's, or the object's
        estimate = charts.noise_estimate(base, state.score_field)
        spath = charts.suggestion_path(base, lf, state.source_field)
        heat, heat_what = (None, None)
        if spath:
            counts = charts.pair_counts(flagged, given, spath)
            heat, heat_what = charts.pair_heatmap(counts, estimate, state.heatmap_cells or "estimated")
        bars, bars_what = charts.class_rates(base, given, flagged, estimate)
        ctx.panel.set_data("heatmap", [heat] if heat else [])
        ctx.panel.set_data("class_rates", [bars] if bars else [])
        ctx.panel.set_state("chart_titles", {"heatmap": heat_what, "class_rates": bars_what,
                                             "has_pairs": bool(estimate and estimate.get("pairs"))})

    def _show(self, ctx):
        if not self._ready(ctx):
            return
        ctx.panel.set_state("pair", None)
        ctx.ops.set_view(self._flagged(ctx))

    # ------------------------------------------------------------ layout

    def render(self, ctx):
        from .layout import render_panel

        return render_panel(self, ctx)


def rescore_run(ctx, base, run_key, config):
    """Re-fits the consensus ``run_key`` on ``base`` (the dataset or the
    whole patches view) in this process: ``find_label_issues(rescore=True)``
    with the run's prefix, or the consensus operator with its recorded
    parameters when the key is not a ``find_label_issues`` one."""
    from ..pipeline import CONSENSUS, StepContext, get_step_operator

    def quiet(fraction=0.0, message=""):
        pass

    if run_key.endswith("consensus"):
        op = get_step_operator("find_label_issues")
        step = StepContext(ctx, base, {"rescore": True, "run_prefix": run_key[: -len("consensus")]}, quiet)
        return op.run(step, op.resolved_params(step), quiet)
    op = get_step_operator(CONSENSUS)
    params = dict(getattr(config, "params", None) or {}, run_key=run_key)
    return op.execute(StepContext(ctx, base, params, quiet))
