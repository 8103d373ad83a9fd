"""Operators recording and undoing review verdicts (the bookkeeping is
:mod:`store.review`; audits :mod:`store.audit`)."""

import fiftyone.operators.types as types

from ...store import runs as lnr
from ...store.audit import update_audits
from ...store.review import VERDICTS, record_verdict, undo_log, undo_verdicts
from ..base import ActionOperator
from ..forms import Param


class RecordLabelVerdict(ActionOperator):
    name = "record_label_verdict"
    label = "Label noise: record a review verdict"
    description = (
        "Label is right / use the suggestion / another class / skip, for the "
        "target samples (usually the selected ones); undo with undo_label_verdict"
    )
    params = (
        Param(
            "verdict", "correct", "Verdict",
            "correct: the label is right; suggestion: use the suggested label; "
            "relabel: use the class below; skip: decide later; ambiguous: two "
            "classes fit (label kept); exclude: no class fits (left out of "
            "the clean export and of training)",
            choices=VERDICTS,
        ),
        Param("label_field", "ground_truth", "Label field", "The reviewed labels", kind="label"),
        Param("new_label", "", "Class (relabel)", "The right class, for verdict=relabel"),
        Param(
            "alternative", "", "Second class (ambiguous)",
            "For verdict=ambiguous: the other plausible class (empty: the "
            "suggestion, when it differs from the label)",
        ),
        Param(
            "suggestion_field", "suggested_label", "Suggestion field",
            "Where the suggested label is (verdict=suggestion)", kind="suggestion",
        ),
        Param(
            "mode", "review", "Mode",
            "review, or audit (the estimate of the latest audit is updated)",
            choices=("review", "audit"),
        ),
    )

    def form(self, ctx, inputs):
        super().form(ctx, inputs)
        if ctx.dataset is not None:
            n = ctx.target_view().count()
            inputs.view(
                "preview",
                types.Notice(label="%d items get the verdict '%s'"
                             % (n, ctx.params.get("verdict") or "correct")),
            )

    def run(self, ctx, params, progress):
        view = ctx.target_view()
        ids = view.values("id")
        with lnr.dataset_write_lock(ctx.dataset):
            result = record_verdict(
                view, ids, params["verdict"], params["label_field"],
                new_label=params["new_label"] or None,
                suggestion_field=params["suggestion_field"], mode=params["mode"],
                alternative=params["alternative"] or None,
            )
            audits = update_audits(view)
            if params["mode"] == "audit" and audits:
                result["audit"] = audits[0]["estimate"]
        return result


class UndoLabelVerdict(ActionOperator):
    name = "undo_label_verdict"
    label = "Label noise: undo review verdicts"
    description = "Undoes the latest review verdicts exactly (labels, corrections, verification)"
    params = (Param("steps", 1, "Verdicts to undo", "How many of the latest verdicts"),)

    def form(self, ctx, inputs):
        super().form(ctx, inputs)
        if ctx.dataset is None:
            return
        log = undo_log(ctx.dataset)
        if not log:
            inputs.view("preview", types.Notice(label="No verdict to undo"))
            return
        last = log[-1]
        inputs.view(
            "preview",
            types.Notice(label="%d verdicts can be undone; the latest: '%s' on %d item(s)"
                         % (len(log), last["verdict"], len(last["ids"]))),
        )

    def run(self, ctx, params, progress):
        view = ctx.target_view()
        with lnr.dataset_write_lock(ctx.dataset):
            result = undo_verdicts(view, int(params["steps"]))
            update_audits(view)
        return result
