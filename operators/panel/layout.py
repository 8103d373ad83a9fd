"""What the "Label noise" panel shows (its ``render``), by mode.

The handlers are the panel's own methods (:mod:`operators.panel.panel`); numbers
come from aggregations (:mod:`operators.panel.charts`) or the review queue
(:mod:`operators.panel.review`).
"""

import fiftyone.operators.types as types

from . import charts
from . import review
from ...store import review as lnv
from ...store.audit import audit_runs
from ..curation.tagging import score_fields, suggestion_fields
from ...store.data import InputError, classification_fields

PLOT_MARGIN = {"t": 36, "b": 40, "l": 48, "r": 10}


def render_panel(p, ctx):
    panel = types.Object()
    state = ctx.panel.state
    if ctx.dataset is None:
        return types.Property(panel)
    base, lf = p._base(ctx)
    if not score_fields(base):
        panel.md(
            "### Label noise\n\nNo score on these %s yet. Press `` ` `` and run "
            "**Label noise: find label issues** (one form: every detector and the "
            "consensus), then come back here." % ("objects" if lnv.is_patches(base) else "samples"),
            name="empty",
        )
        return types.Property(panel, view=types.GridView(orientation="vertical"))
    if state.mode in ("review", "audit"):
        _review(p, ctx, panel, base)
    else:
        _overview(p, ctx, panel, base, lf)
    return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))


# ------------------------------------------------------------------ overview


def _overview(p, ctx, panel, base, lf):
    state = ctx.panel.state
    controls = panel.h_stack("controls", align_y="center", gap=2)
    fields = score_fields(base)
    _dropdown(controls, "score_field", fields, "Score field", state.score_field, p.on_change_score_field)
    if not lnv.is_patches(base):
        labels = classification_fields(ctx.dataset)
        if labels:
            _dropdown(controls, "label_field", labels, "Label field", state.label_field,
                      p.on_change_label_field)
    controls.btn("rescore", label="Re-score", on_click=p.rescore, variant="outlined")

    lo, hi = state.bounds or [0.0, 1.0]
    higher = charts.higher_is_noisier(base, lf, state.score_field)
    ready = p._ready(ctx)
    flagged = p._flagged(ctx, higher).count() if ready else None
    panel.float(
        "threshold", min=lo, max=hi, default=state.threshold,
        label="Threshold (%s)" % ("flag at or above" if higher else "flag at or below"),
        view=types.SliderView(label="Threshold", componentsProps={"slider": {"step": (hi - lo) / 200.0}}),
        on_change=p.on_change_threshold,
    )
    tagged = base.match_tags(state.tag or "noisy").count() if not lnv.is_patches(base) else None
    corrected = _num_corrected(ctx, base, lf)
    panel.md(
        "**%s** flagged (%s %s %s)%s · **%s** corrected%s" % (
            flagged if flagged is not None else "-", state.score_field, "≥" if higher else "≤",
            "%.4f" % state.threshold if state.threshold is not None else "-",
            " · **%d** tagged `%s`" % (tagged, state.tag or "noisy") if tagged is not None else "",
            corrected, _rescore_note(state),
        ),
        name="counts",
    )
    panel.plot(
        "histogram",
        layout={
            "title": {"text": "%s of every item (threshold dashed)" % state.score_field},
            "height": 230, "margin": PLOT_MARGIN, "bargap": 0.05,
            "shapes": charts.threshold_shape(state.threshold),
            "xaxis": {"title": state.score_field}, "yaxis": {"title": "items"},
        },
        config={"displayModeBar": False},
    )
    titles = state.chart_titles or {}
    if titles.get("heatmap"):
        if titles.get("has_pairs"):
            _dropdown(panel, "heatmap_cells", charts.HEATMAP_CELLS, "Heatmap cells",
                      state.heatmap_cells or "estimated", p.on_change_heatmap_cells)
        panel.plot(
            "heatmap", on_click=p.on_heatmap_click,
            layout={
                "title": {"text": "Given × suggested label: %s (click a cell)" % titles["heatmap"]},
                "height": 340, "margin": dict(PLOT_MARGIN, l=90, b=80),
                "xaxis": {"title": "suggested", "type": "category"},
                "yaxis": {"title": "given", "type": "category", "autorange": "reversed"},
            },
            config={"displayModeBar": False},
        )
        if state.pair:
            panel.md("Grid: the **%d** flagged items given `%s`, suggested `%s`" % (
                state.pair[2], state.pair[0], state.pair[1]), name="pair_note")
    issues = charts.issue_overview(ctx.dataset, lf if lnv.is_patches(base) else None)
    if issues:
        panel.md(issues, name="issue_types")
    if titles.get("class_rates"):
        panel.plot(
            "class_rates",
            layout={
                "title": {"text": titles["class_rates"].capitalize()},
                "height": 230, "margin": dict(PLOT_MARGIN, b=70),
                "yaxis": {"title": "%", "rangemode": "tozero"}, "xaxis": {"type": "category"},
            },
            config={"displayModeBar": False},
        )
    _review_start(p, ctx, panel, base)
    _curation_rows(p, ctx, panel, base)


def _rescore_note(state):
    last = state.last_rescore
    if not last:
        return ""
    rate = last.get("noise_rate")
    return " · last re-score: %s flagged%s" % (
        last.get("num_flagged"), ", est. %.1f%% wrong" % (100 * rate) if rate is not None else "")


def _num_corrected(ctx, base, lf):
    if lnv.is_patches(base):
        from ...store.corrections import corrected_objects

        return corrected_objects(base, lf).count()
    from ...store.corrections import correction_field

    name = correction_field(lf)
    return ctx.dataset.exists(name).count() if name in ctx.dataset.get_field_schema() else 0


def _review_start(p, ctx, panel, base):
    state = ctx.panel.state
    row = panel.h_stack("review_row", align_y="center", gap=2)
    _dropdown(row, "review_source", review.SOURCES, "Review", state.review_source or "flagged",
              p.on_change_review_source)
    row.btn("start_review", label="Start review", on_click=p.start_review, variant="contained")
    queue = lnv.load_queue(ctx.dataset)
    if queue:
        try:
            items = review.session_items(base, queue)
            done, total, _ = review.progress(items, queue)
            row.btn("resume_review", label="Resume %s (reviewed %d of %d)" % (
                queue.get("kind", "review"), done, total), on_click=p.resume_review, variant="outlined")
        except InputError:
            pass
    audit = panel.h_stack("audit_row", align_y="center", gap=2)
    audit.int("audit_size", label="Audit size", default=int(state.audit_size or 100),
              min=1, on_change=p.on_change_audit_size)
    audit.int("audit_seed", label="Seed", default=int(state.audit_seed or 51),
              on_change=p.on_change_audit_seed)
    _dropdown(audit, "audit_scope", ("all", "view"), "Population", state.audit_scope or "all",
              p.on_change_audit_scope)
    audit.btn("start_audit", label="Start audit", on_click=p.start_audit, variant="contained")
    keys = audit_runs(ctx.dataset)
    if keys:
        est = (ctx.dataset.load_run_results(keys[0], cache=False).estimate or {}) if keys else {}
        panel.md("Latest audit `%s`: %s" % (keys[0], review.audit_summary(est).split("\n")[0]),
                 name="audit_latest")


def _curation_rows(p, ctx, panel, base):
    state = ctx.panel.state
    tag_row = panel.h_stack("tag_row", align_y="center", gap=2)
    tag_row.str("tag", label="Tag", default=state.tag or "noisy", on_change=p.on_change_tag)
    tag_row.btn("show_flagged", label="Show flagged", on_click=p.show_flagged, variant="outlined")
    tag_row.btn("tag_flagged", label="Tag flagged", on_click=p.tag_flagged, variant="contained")
    tag_row.btn("clear_view", label="Clear view", on_click=p.clear_view)
    fix_row = panel.h_stack("fix_row", align_y="center", gap=2)
    sources = suggestion_fields(base)
    if sources:
        _dropdown(fix_row, "source_field", sources, "Suggestion", state.source_field, p.on_change_source_field)
    fix_row.btn("apply_selected", label="Apply suggestion to selected",
                on_click=p.apply_to_selected, variant="contained")
    fix_row.btn("undo_selected", label="Undo (selected, or all)", on_click=p.undo_selected)


# -------------------------------------------------------------- review mode


def _review(p, ctx, panel, base):
    state = ctx.panel.state
    queue = lnv.load_queue(ctx.dataset)
    top = panel.h_stack("review_top", align_y="center", gap=2)
    top.btn("leave_review", label="← Overview", on_click=p.leave_review, variant="outlined")
    if not queue:
        panel.md("No review in progress.", name="review_none")
        return
    kind = queue.get("kind", "review")
    try:
        items = review.session_items(base, queue)
    except InputError as e:
        panel.md(str(e), name="review_elsewhere")
        return
    done, total, current = review.progress(items, queue)
    top.md("**%s** · reviewed **%d** of **%d**%s" % (kind.capitalize(), done, total, _rescore_note(state)),
           name="review_counter")
    top.btn("rescore", label="Re-score", on_click=p.rescore, variant="outlined")
    if kind == "audit" and queue.get("audit_key") in ctx.dataset.list_runs():
        est = ctx.dataset.load_run_results(queue["audit_key"], cache=False).estimate
        panel.md(review.audit_summary(est) + "\n\n" + _audit_use_note(est), name="audit_estimate")
    if current is None:
        panel.md("Every item of this %s has a verdict. **Re-score** to update the scores "
                 "with them, or go back to the overview." % kind, name="review_done")
        return
    c = review.card(items, current, queue)
    ctx.panel.set_state("current_item", current)
    panel.view("review_image", types.View(
        component="LabelNoiseImage", filepath=c["filepath"], box=c["box"], image_height=300,
        alt="%s %s" % ("object" if items.objects else "sample", current),
    ))
    suggestion = c["suggestion"]
    lines = ["Given **%s**%s · suggested **%s**%s%s" % (
        c["given"],
        " (originally %s)" % c["original"] if c["original"] and c["original"] != c["given"] else "",
        suggestion or "-",
        " (confidence %.2f)" % c["confidence"] if c["confidence"] is not None else "",
        " · %s %.3f" % (queue.get("score_field"), c["score"]) if c["score"] is not None else "",
    )]
    if c["detectors"]:
        lines.append("Detectors: " + c["detectors"])
    panel.md("\n\n".join(lines), name="review_labels")
    actions = panel.h_stack("review_actions", align_y="center", gap=1)
    params = {"item_id": current}
    actions.btn("review_right", label="Label is right (y)", on_click=p.review_right,
                params=params, variant="contained")
    if suggestion and suggestion != c["given"]:
        actions.btn("review_suggestion", label="Use %s (s)" % suggestion,
                    on_click=p.review_suggestion, params=params, variant="contained")
    classes = [x for x in queue.get("classes") or [] if x != c["given"]]
    if classes:
        _dropdown(actions, "relabel_class", classes, "Another class",
                  state.relabel_class if state.relabel_class in classes else None,
                  p.on_change_relabel_class)
        actions.btn("review_relabel", label="Relabel (r)", on_click=p.review_relabel, variant="outlined")
    actions.btn("review_ambiguous", label="Ambiguous (a)", on_click=p.review_ambiguous,
                params=params, variant="outlined")
    actions.btn("review_exclude", label="No class fits (x)", on_click=p.review_exclude,
                params=params, variant="outlined")
    actions.btn("review_skip", label="Skip (n)", on_click=p.review_skip, variant="outlined")
    actions.btn("review_undo", label="Undo (u)", on_click=p.review_undo, variant="outlined")
    actions.btn("open_item", label="Open", on_click=p.open_item, params=params)
    all_classes = list(queue.get("classes") or [])
    panel.view("review_keys", types.View(
        component="LabelNoiseReviewKeys", on_key=p.on_review_key, item_id=current,
        keys=sorted(review.KEYS) + list(review.DIGITS[: len(all_classes)]),
        hint=review.key_hint(all_classes),
    ))


def _audit_use_note(estimate):
    """When the consensus starts taking its noise rate from the audit."""
    import inspect

    from ...methods.noise_estimate import estimate_label_noise

    needed = inspect.signature(estimate_label_noise).parameters["min_verified"].default
    done = (estimate or {}).get("n") or 0
    if done >= needed:
        return "*Re-score*: the consensus takes its noise rate from this audit (%d reviewed)." % done
    return ("The consensus takes its noise rate from the newest audit once %d of its samples "
            "are reviewed (%d so far)." % (needed, done))


def _dropdown(container, name, values, label, default, on_change):
    view = types.DropdownView()
    for value in values:
        view.add_choice(value, label=str(value))
    container.enum(name, view.values(), label=label, default=default, view=view, on_change=on_change)

