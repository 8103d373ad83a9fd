"""The operator starting an audit (the audit itself is :mod:`store.audit`)."""

from ...store.audit import start_audit
from ...store.review import Items
from ..base import ActionOperator
from ..forms import Param


class StartLabelAudit(ActionOperator):
    name = "start_label_audit"
    label = "Label noise: start an audit (how many wrong labels are left?)"
    description = (
        "Draws a uniform random sample of the target view to review; its "
        "verdicts estimate the share of wrong labels (95% Wilson interval)"
    )
    params = (
        Param("label_field", "ground_truth", "Label field", "The audited labels", kind="label"),
        Param("size", 100, "Sample size", "Number of samples to review"),
        Param("seed", 51, "Random seed", "Same seed and view, same sample"),
        Param("run_key", "label_audit", "Run key", "Name of the audit run"),
    )

    def run(self, ctx, params, progress):
        view = ctx.target_view()
        results = start_audit(
            view, params["label_field"], int(params["size"]),
            int(params["seed"]), params["run_key"],
        )
        if not ctx.delegated:
            base = Items(view, params["label_field"]).view
            ctx.ops.set_view(base.select(results["sample_ids"], ordered=True))
        return dict(
            run_key=params["run_key"], num_samples=len(results["sample_ids"]),
            population=results["population"], estimate=results["estimate"],
        )
