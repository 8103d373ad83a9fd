"""Operators that manage this plugin's run records."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .base import call_operator, reload_app
from .forms import run_key_input
from ..store.runs import delete_run_and_fields, plugin_runs


class DeleteRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="delete_run",
            label="Label noise: delete run and its fields",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        keys = run_key_input(
            ctx, inputs, description="The run and every field it wrote are deleted"
        )
        if keys is None:
            return types.Property(inputs)
        run_key = ctx.params.get("run_key")
        if run_key in keys:
            fields = ctx.dataset.get_run_info(run_key).config.fields
            inputs.view(
                "confirm",
                types.Warning(
                    label="This deletes the fields %s from every sample"
                    % ", ".join(fields)
                ),
            )
        return types.Property(inputs, view=types.View(label="Delete run"))

    def execute(self, ctx):
        run_key = ctx.params.get("run_key")  # never a default: deleting is explicit
        if run_key not in plugin_runs(ctx.dataset):
            raise ValueError(
                "No label-noise run '%s' on dataset '%s'. Runs: %s"
                % (run_key, ctx.dataset.name, plugin_runs(ctx.dataset))
            )
        fields = delete_run_and_fields(ctx.dataset, run_key)
        reload_app(ctx)
        return {"run_key": run_key, "deleted_fields": fields}

    def __call__(self, sample_collection, run_key):
        """Deletes run ``run_key`` and every field it wrote."""
        return call_operator(self, sample_collection, {"run_key": run_key})
