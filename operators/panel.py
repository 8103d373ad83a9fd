"""The "Label noise" panel: look at the suspicious samples, decide, fix.

Pick a score field, see its histogram (overall and per class), move the
threshold: the grid shows the samples beyond it, most suspicious first. Tag
them, apply the suggested label to the selected samples, undo. Every number
shown comes from a database aggregation (``count``, ``bounds``,
``histogram_values``, ``count_values``), never a Python loop over samples, so
the panel stays responsive on large datasets.
"""

import fiftyone.core.fields as fof
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from . import corrections as lnc
from .curation import (
    SOURCE,
    corrections_view,
    score_fields,
    suggestion_fields,
)
from .data import InputError, classification_fields

#: scores whose higher values mean *cleaner* (flag below the threshold)
CLEANER_IF_HIGHER = ("training_value", "cleannet_similarity")
MAX_CLASS_TRACES = 12
BINS = 40


def default_score_field(dataset):
    fields = score_fields(dataset)
    for name in ("noise_score", "knn_disagreement", "training_value", "cleannet_similarity"):
        if name in fields:
            return name
    return fields[0] if fields else None


def beyond(collection, score_field, threshold, higher_is_noisier=True):
    """Samples beyond ``threshold``, most suspicious first (a view)."""
    expr = F(score_field) > threshold if higher_is_noisier else F(score_field) < threshold
    return collection.match(expr).sort_by(score_field, reverse=higher_is_noisier)


def histograms(dataset, score_field, label_field=None, bins=BINS):
    """Plotly traces of the score histogram, overall and per class.

    Returns (overall traces, per-class traces, (min, max)). Two database
    round trips whatever the size of the dataset: one ``bounds``, then one
    ``aggregate`` of two ``CountValues`` over a computed bin index (overall,
    and class + bin), i.e. a single pass of the database over the samples.
    Per-class traces are shown for the ``MAX_CLASS_TRACES`` largest classes.
    """
    import fiftyone as fo

    lo, hi = dataset.bounds(score_field)
    if lo is None:
        return [], [], (0.0, 1.0)
    lo, hi = float(lo), float(hi)
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / bins
    scored = dataset.exists(score_field)
    index = ((F(score_field) - lo) / width).floor().min(bins - 1).to_int()
    aggs = [fo.CountValues(index)]
    if label_field:
        aggs.append(
            fo.CountValues(F(label_field + ".label").concat(SEP, index.to_string()))
        )
    found = scored.aggregate(aggs)
    centers = [lo + (k + 0.5) * width for k in range(bins)]
    overall_counts = [0] * bins
    for k, n in found[0].items():
        if k is not None:
            overall_counts[int(k)] += n
    overall = [
        {
            "type": "bar",
            "x": centers,
            "y": overall_counts,
            "name": "all samples",
            "marker": {"color": "#FF6D04"},
        }
    ]
    per_class = []
    if label_field:
        by_class = {}
        for key, n in found[1].items():
            if key is None:
                continue
            label, _, k = key.rpartition(SEP)
            by_class.setdefault(label, [0] * bins)[int(k)] += n
        shown = sorted(by_class, key=lambda c: -sum(by_class[c]))[:MAX_CLASS_TRACES]
        for c in sorted(shown):
            per_class.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "line": {"shape": "hvh", "width": 1.5},
                    "x": centers,
                    "y": by_class[c],
                    "name": str(c),
                }
            )
    return overall, per_class, (lo, hi)


SEP = "\u241f"  # a separator no class name is expected to contain


def counts(dataset, score_field, threshold, higher_is_noisier, tag, label_field):
    """Flagged / tagged / corrected counts (aggregations)."""
    flagged = beyond(dataset, score_field, threshold, higher_is_noisier).count()
    tagged = dataset.match_tags(tag).count() if tag else 0
    corrected = 0
    if label_field and lnc.correction_field(label_field) in dataset.get_field_schema():
        corrected = dataset.exists(lnc.correction_field(label_field)).count()
    return {"flagged": flagged, "tagged": tagged, "corrected": corrected}


class LabelNoisePanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="label_noise_panel",
            label="Label noise",
            surfaces="grid",
            help_markdown=(
                "Review suspicious samples: pick a score (e.g. `noise_score` "
                "from compute_noise_score), move the threshold, tag, fix "
                "labels, undo."
            ),
        )

    # ------------------------------------------------------------ events

    def on_load(self, ctx):
        state = ctx.panel.state
        dataset = ctx.dataset
        if dataset is None:
            return
        field = state.score_field
        if field not in score_fields(dataset):
            field = default_score_field(dataset)
        labels = classification_fields(dataset)
        label_field = state.label_field if state.label_field in labels else (
            "ground_truth" if "ground_truth" in labels else (labels[0] if labels else None)
        )
        ctx.panel.set_state("score_field", field)
        ctx.panel.set_state("label_field", label_field)
        ctx.panel.set_state("tag", state.tag or "noisy")
        sources = suggestion_fields(dataset)
        source = state.source_field if state.source_field in sources else (
            "suggested_label" if "suggested_label" in sources else (sources[0] if sources else None)
        )
        ctx.panel.set_state("source_field", source)
        self._load_field(ctx, keep_threshold=state.threshold is not None)
        self._show(ctx)

    def on_change_dataset(self, ctx):
        ctx.panel.set_state("threshold", None)
        self.on_load(ctx)

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
        self._show(ctx)

    def on_change_tag(self, ctx):
        ctx.panel.set_state("tag", ctx.params.get("value") or "noisy")

    def on_change_source(self, ctx):
        ctx.panel.set_state("source_field", ctx.params.get("value"))

    def show_flagged(self, ctx):
        self._show(ctx)

    def clear_view(self, ctx):
        ctx.ops.clear_view()

    def tag_flagged(self, ctx):
        state = ctx.panel.state
        if not self._ready(ctx):
            return
        tag = state.tag or "noisy"
        ctx.dataset.untag_samples(tag)
        view = beyond(ctx.dataset, state.score_field, state.threshold, self._higher(state))
        view.tag_samples(tag)
        num = view.count()
        ctx.ops.notify("Tagged %d samples '%s'" % (num, tag), variant="success")
        ctx.ops.reload_dataset()
        self._show(ctx)

    def apply_to_selected(self, ctx):
        state = ctx.panel.state
        selected = list(ctx.selected or [])
        if not selected:
            ctx.ops.notify("Select samples in the grid first", variant="warning")
            return
        try:
            view = corrections_view(
                ctx.dataset.select(selected), state.label_field, state.source_field
            )
            label_path = (
                state.source_field + ".label"
                if state.source_field + ".label" in _leaf_paths(ctx.dataset, state.source_field)
                else state.source_field
            )
            ids, labels = view.values(["id", label_path])
            result = lnc.apply_corrections(
                ctx.dataset, ids, labels, state.label_field, source=SOURCE
            )
        except InputError as e:
            ctx.ops.notify(str(e), variant="error")
            return
        ctx.ops.notify(
            "Relabeled %d of %d selected samples from '%s'"
            % (result["num_corrected"], len(selected), state.source_field),
            variant="success",
        )
        ctx.ops.reload_dataset()

    def undo_selected(self, ctx):
        state = ctx.panel.state
        selected = list(ctx.selected or [])
        result = lnc.revert_corrections(
            ctx.dataset, state.label_field, ids=selected or None, source=SOURCE
        )
        ctx.ops.notify(
            "Restored the original label of %d samples" % result["num_reverted"],
            variant="success",
        )
        ctx.ops.reload_dataset()

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _higher(state):
        return state.score_field not in CLEANER_IF_HIGHER

    @staticmethod
    def _ready(ctx):
        state = ctx.panel.state
        return (
            ctx.dataset is not None
            and state.score_field in score_fields(ctx.dataset)
            and state.threshold is not None
        )

    def _load_field(self, ctx, keep_threshold):
        state = ctx.panel.state
        if state.score_field is None or state.score_field not in score_fields(ctx.dataset):
            return
        overall, per_class, (lo, hi) = histograms(
            ctx.dataset, state.score_field, state.label_field
        )
        ctx.panel.set_data("histogram", overall)
        ctx.panel.set_data("per_class", per_class)
        ctx.panel.set_state("bounds", [lo, hi])
        threshold = state.threshold
        if not keep_threshold or threshold is None or not lo <= threshold <= hi:
            # start with the top ~10% (an aggregation on the histogram)
            threshold = lo + 0.9 * (hi - lo) if self._higher(state) else lo + 0.1 * (hi - lo)
            threshold = round(threshold, 4)
        ctx.panel.set_state("threshold", threshold)

    def _show(self, ctx):
        state = ctx.panel.state
        if not self._ready(ctx):
            return
        ctx.ops.set_view(
            beyond(ctx.dataset, state.score_field, state.threshold, self._higher(state))
        )

    # ------------------------------------------------------------ layout

    def render(self, ctx):
        panel = types.Object()
        state = ctx.panel.state
        dataset = ctx.dataset
        fields = score_fields(dataset) if dataset is not None else []
        if not fields:
            panel.md(
                "### Label noise\n\nNo score field on this dataset yet. Run a "
                "detector (e.g. **compute_knn_disagreement**) and "
                "**compute_noise_score** from the operator browser (`` ` ``), "
                "then reopen this panel.",
                name="empty",
            )
            return types.Property(panel, view=types.GridView(orientation="vertical"))

        controls = panel.h_stack("controls", align_y="center", gap=2)
        field_choices = types.DropdownView()
        for name in fields:
            field_choices.add_choice(name, label=name)
        controls.enum(
            "score_field", field_choices.values(), label="Score field",
            default=state.score_field, view=field_choices,
            on_change=self.on_change_score_field,
        )
        labels = classification_fields(dataset)
        if labels:
            label_choices = types.DropdownView()
            for name in labels:
                label_choices.add_choice(name, label=name)
            controls.enum(
                "label_field", label_choices.values(), label="Label field",
                default=state.label_field, view=label_choices,
                on_change=self.on_change_label_field,
            )

        lo, hi = state.bounds or [0.0, 1.0]
        higher = self._higher(state)
        # counts are computed here, from the threshold this render shows
        # (events carry a snapshot of the state: a count stored by an
        # earlier event could be stale), three cheap count aggregations
        shown = {"flagged": None, "tagged": None, "corrected": None}
        if self._ready(ctx):
            shown = counts(
                dataset, state.score_field, state.threshold, higher,
                state.tag or "noisy", state.label_field,
            )
        panel.float(
            "threshold",
            min=lo,
            max=hi,
            default=state.threshold,
            label="Threshold (%s)" % ("flag above" if higher else "flag below"),
            view=types.SliderView(label="Threshold", componentsProps={"slider": {"step": (hi - lo) / 200.0}}),
            on_change=self.on_change_threshold,
        )
        panel.md(
            "**%s** flagged (%s %s %s) · **%s** tagged `%s` · **%s** corrected"
            % (
                shown["flagged"] if shown["flagged"] is not None else "-",
                state.score_field, ">" if higher else "<",
                "%.4f" % state.threshold if state.threshold is not None else "-",
                shown["tagged"] if shown["tagged"] is not None else "-",
                state.tag or "noisy",
                shown["corrected"] if shown["corrected"] is not None else "-",
            ),
            name="counts",
        )
        shape = []
        if state.threshold is not None:
            shape = [{
                "type": "line", "x0": state.threshold, "x1": state.threshold,
                "yref": "paper", "y0": 0, "y1": 1,
                "line": {"color": "#d62728", "width": 2, "dash": "dash"},
            }]
        panel.plot(
            "histogram",
            layout={
                "title": {"text": "%s: all samples" % state.score_field},
                "height": 260, "margin": {"t": 40, "b": 30, "l": 40, "r": 10},
                "shapes": shape, "bargap": 0.05,
                "xaxis": {"title": state.score_field}, "yaxis": {"title": "samples"},
            },
            config={"displayModeBar": False},
        )
        panel.plot(
            "per_class",
            layout={
                "title": {"text": "per class (%s)" % (state.label_field or "-")},
                "height": 280, "margin": {"t": 40, "b": 30, "l": 40, "r": 10},
                "shapes": shape, "showlegend": True,
            },
            config={"displayModeBar": False},
        )
        tag_row = panel.h_stack("tag_row", align_y="center", gap=2)
        tag_row.str("tag", label="Tag", default=state.tag or "noisy", on_change=self.on_change_tag)
        tag_row.btn("show_flagged", label="Show flagged", on_click=self.show_flagged, variant="outlined")
        tag_row.btn("tag_flagged", label="Tag flagged", on_click=self.tag_flagged, variant="contained")
        tag_row.btn("clear_view", label="Clear view", on_click=self.clear_view)

        fix_row = panel.h_stack("fix_row", align_y="center", gap=2)
        sources = suggestion_fields(dataset)
        if sources:
            src_choices = types.DropdownView()
            for name in sources:
                src_choices.add_choice(name, label=name)
            fix_row.enum(
                "source_field", src_choices.values(), label="Suggestion",
                default=state.source_field, view=src_choices,
                on_change=self.on_change_source,
            )
        fix_row.btn(
            "apply_selected", label="Apply suggestion to selected",
            on_click=self.apply_to_selected, variant="contained",
        )
        fix_row.btn("undo_selected", label="Undo (selected, or all)", on_click=self.undo_selected)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))


def _leaf_paths(dataset, field):
    f = dataset.get_field_schema().get(field)
    if isinstance(f, fof.EmbeddedDocumentField):
        return {field + ".label"}
    return {field}
