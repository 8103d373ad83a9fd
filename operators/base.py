"""The shared shape of every compute operator of this plugin.

A detector operator declares its parameters once (:class:`Param`) and
implements :meth:`DetectorOperator.compute`, which reads the target view with
:func:`store.data.load_inputs`, calls a function of ``methods/`` and
returns a :class:`Computed`. The base class does the rest, identically for
every detector:

- the App form (target view, label/embeddings fields, output field, run key,
  seed, the method's own parameters, delegation), each with a default, so
  ``execute_operator(uri, ctx={"dataset": ds, "params": {}})`` works;
- an exclusive lock on the run key, progress reporting, one bulk write per
  output field at the end, optional tagging, the run record, App reload;
- the Python SDK: ``foo.get_operator(uri)(dataset_or_view, **params)``.
"""

from dataclasses import dataclass, field
import time
from typing import Any

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..store import brain_index
from ..store import data as lnd
from ..store import objects as lno
from ..store import runs as lnr
from .forms import common_params, confirm_input, delegation_input


@dataclass
class Computed:
    """What :meth:`DetectorOperator.compute` hands back to be written.

    Attributes:
        ids: sample ids the values belong to
        fields: output field name -> values aligned with ``ids``
        flagged: optional boolean array aligned with ``ids``: samples the
            method considers mislabeled (tagged when the user asks)
        summary: small dict shown to the user and returned by the SDK
        results: JSON-serializable dict saved as the run's results
        info: extra JSON-serializable entries of the run config
    """

    ids: Any
    fields: dict
    flagged: Any = None
    summary: dict = field(default_factory=dict)
    results: dict = None
    info: dict = field(default_factory=dict)


def operator_config(operator, **extra):
    """The plugin's standard config: dynamic form, immediate or delegated."""
    return foo.OperatorConfig(
        name=operator.name,
        label=operator.label,
        description=operator.description,
        dynamic=True,
        allow_immediate_execution=True,
        allow_delegated_execution=True,
        **extra,
    )


class PluginOperator(foo.Operator):
    """What every operator of this plugin shares: the standard config, the
    form frame (target view, the operator's inputs, delegation), the
    parameter values with their defaults, and the SDK call.

    Subclasses list ``params`` (:class:`operators.forms.Param`) and fill the
    form in :meth:`form`.
    """

    name = None
    label = None
    description = None
    params = ()
    risk = "low"

    @property
    def config(self):
        return operator_config(self, risk_level=self.risk)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx)
        self.form(ctx, inputs)
        delegation_input(inputs)
        return types.Property(inputs, view=types.View(label=self.label))

    def form(self, ctx, inputs):
        """The operator's own inputs; by default its params."""
        for param in self.params:
            param.add_to(inputs, ctx)

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def resolved_params(self, ctx):
        """Every declared parameter, from ``ctx.params`` or its default
        (an unknown name is refused: :func:`check_param_names`)."""
        check_param_names(self, ctx.params, extra_names=self.extra_names(), ctx=ctx)
        out = {}
        for p in self.params:
            v = ctx.params.get(p.name, p.default)
            out[p.name] = p.default if v is None else v
        return out

    def extra_names(self):
        """Accepted parameter names that are not ``Param``s."""
        return ()

    def __call__(self, sample_collection, delegate=False, **params):
        """Runs this operator on a dataset or view from Python.

        Args:
            sample_collection: a dataset or view (the target of the run)
            delegate (False): queue the run for ``fiftyone delegated launch``
            **params: any of the operator's parameters (see README)

        Returns:
            the result of an immediate run, or the queued operation
        """
        return call_operator(
            self, sample_collection, params, delegate, extra_names=self.extra_names()
        )


class DetectorOperator(PluginOperator):
    """Base class of the compute operators (see module docstring)."""

    name = None
    label = None
    description = None
    method = None
    output_field = None
    needs_embeddings = True
    method_params = ()
    risk = None

    @property
    def config(self):
        return operator_config(self)

    @property
    def params(self):
        return (
            common_params(self.output_field, self.method, self.needs_embeddings)
            + list(self.method_params)
        )

    def form(self, ctx, inputs):
        self.describe_inputs(ctx, inputs)
        super().form(ctx, inputs)

    def describe_inputs(self, ctx, inputs):
        """Hook for operators that show context (e.g. counts) in the form."""

    def compute(self, ctx, view, params, progress):
        """Reads ``view``, runs the method, returns a :class:`Computed`."""
        raise NotImplementedError

    def execute(self, ctx):
        params = self.resolved_params(ctx)
        view = ctx.target_view()
        dataset = ctx.dataset
        progress = progress_reporter(ctx)
        run_key = params["run_key"]
        started = time.time()
        with lnr.run_lock(dataset, run_key):
            progress(0.0, "reading inputs")
            with brain_index.reading_from(params.get("brain_key")):
                computed = self.compute(ctx, view, params, progress)
            with lnr.dataset_write_lock(dataset):
                progress(0.97, "writing results")
                label_field = params.get("label_field") or ""
                paths = [
                    lnd.dataset_output_path(view, label_field, f) for f in computed.fields
                ]
                replaced = _stale_fields(dataset, run_key, paths)
                paths = lnd.write_outputs(view, label_field, computed.ids, computed.fields)
                for field_name in replaced:
                    dataset.delete_sample_field(field_name)
                num_flagged = None
                if computed.flagged is not None:
                    num_flagged = int(sum(bool(f) for f in computed.flagged))
                    if params.get("tag"):
                        tag_flagged(
                            view, computed.ids, computed.flagged, params["tag"], label_field
                        )
                if lno.is_patches(view):  # outputs are on each object
                    computed.info.setdefault("patches_field", label_field)
                summary = dict(computed.summary)
                summary.update(
                    run_key=run_key,
                    num_samples=len(computed.ids),
                    fields=list(paths),
                    seconds=round(time.time() - started, 2),
                )
                if num_flagged is not None:
                    summary["num_flagged"] = num_flagged
                lnr.record_run(
                    dataset,
                    run_key,
                    self.method,
                    params,
                    list(paths),
                    results=computed.results,
                    num_samples=len(computed.ids),
                    num_flagged=num_flagged,
                    seconds=summary["seconds"],
                    **computed.info,
                )
        progress(1.0, "done")
        reload_app(ctx)
        return summary

    def resolve_output(self, ctx):
        outputs = types.Object()
        for key in ("num_samples", "num_flagged", "fields", "run_key", "seconds"):
            outputs.str(key, label=key.replace("_", " "))
        return types.Property(outputs, view=types.View(label="Done"))


class ActionOperator(PluginOperator):
    """Base of the operators that act on results (review, tagging,
    corrections, export): the same form, defaults, delegation and SDK call
    as :class:`DetectorOperator`, without a run record.

    Subclasses declare ``params`` and implement :meth:`run`; ``destructive``
    operators (those that change labels) get a confirmation in the form
    (:func:`confirm_input`) and override :meth:`warning` to say what changes.
    """

    destructive = False

    def form(self, ctx, inputs):
        """The operator's own inputs; by default its params (+ confirmation)."""
        super().form(ctx, inputs)
        if self.destructive:
            confirm_input(inputs, ctx, self.warning(ctx))

    def warning(self, ctx):
        return "this changes labels"

    def extra_names(self):
        return ("confirm",) if self.destructive else ()

    def execute(self, ctx):
        params = self.resolved_params(ctx)
        if self.destructive and ctx.params.get("confirm") is False:
            raise lnd.InputError(
                "%s changes labels: tick 'I understand' to confirm" % self.name
            )
        if self.destructive:  # label writes: one writer per dataset, as detectors
            with lnr.dataset_write_lock(ctx.dataset):
                result = self.run(ctx, params, progress_reporter(ctx))
        else:
            result = self.run(ctx, params, progress_reporter(ctx))
        reload_app(ctx)
        return result

    def run(self, ctx, params, progress):
        raise NotImplementedError


#: names the App or FiftyOne's executor put into ``ctx.params`` besides an
#: operator's own parameters (target view, delegation, panels)
APP_PARAMS = frozenset((
    "delegate", "delegation_target", "request_delegation", "view_target",
    "custom_view_target", "panel_state", "confirm", "confirm_needed",
))


def check_param_names(operator, params, extra_names=(), ctx=None):
    """Refuses a parameter ``operator`` does not declare, naming the known
    ones (``execute_operator(uri, params={"pred_feild": ...})`` would
    otherwise run and silently ignore it). Names the App sends
    (:data:`APP_PARAMS`) pass, so do properties without a value (notices)
    and, given ``ctx``, every property of the operator's form (asked only
    when some name is not declared)."""
    known = {p.name for p in getattr(operator, "params", ())} | set(extra_names) | APP_PARAMS
    unknown = sorted(
        k for k, v in (params or {}).items() if k not in known and v is not None
    )
    if unknown and ctx is not None:
        try:
            form = operator.resolve_input(ctx)
            unknown = [k for k in unknown if k not in form.type.properties]
        except Exception:  # no form to compare with: the declared names decide
            pass
    if unknown:
        raise lnd.InputError(
            "%s got unknown parameter(s) %s; it accepts %s"
            % (getattr(operator, "uri", operator.name), unknown,
               sorted({p.name for p in getattr(operator, "params", ())} | set(extra_names)))
        )


def call_operator(operator, sample_collection, params, delegate=False, extra_names=()):
    """The SDK side of every operator: validates names, executes, unwraps.

    ``extra_names``: accepted parameter names that are not ``Param``s (e.g. a
    form-only ``confirm`` checkbox).
    """
    known = {p.name for p in getattr(operator, "params", ())} | set(extra_names)
    if known:
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(
                "%s got unknown parameter(s) %s; it accepts %s"
                % (operator.uri, unknown, sorted(known))
            )
    result = foo.execute_operator(
        operator.uri,
        dict(view=sample_collection.view()),
        params=dict(params, delegate=delegate),
        request_delegation=delegate,
    )
    if delegate:
        return result
    return result.result


def progress_reporter(ctx):
    """A ``progress(fraction, message)`` callable for methods."""

    def report(fraction, message=""):
        try:
            ctx.set_progress(progress=float(fraction), label=str(message))
        except Exception:  # progress is advisory: never fail a run on it
            pass

    return report


def reload_app(ctx):
    if not ctx.delegated:
        ctx.ops.reload_dataset()


def tag_flagged(view, ids, flagged, tag, label_field=""):
    """Moves ``tag`` to exactly the flagged items among ``view``: sample
    tags, or label tags of the objects of a patches view."""
    flagged_ids = [str(i) for i, f in zip(ids, flagged) if f]
    lnd.tag_items(view, label_field, flagged_ids, tag, replace=True)


def _stale_fields(dataset, run_key, new_fields):
    """Fields a previous run of this key wrote that the new one will not."""
    if run_key not in dataset.list_runs():
        return []
    old = getattr(dataset.get_run_info(run_key).config, "fields", [])
    return [f for f in old if f not in new_fields and dataset.has_field(f)]
