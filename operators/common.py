"""The shared shape of every compute operator of this plugin.

A detector operator declares its parameters once (:class:`Param`) and
implements :meth:`DetectorOperator.compute`, which reads the target view with
:func:`operators.data.load_inputs`, calls a function of ``methods/`` and
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

from . import brain_index
from . import data as lnd
from . import objects as lno
from . import runs as lnr


@dataclass
class Param:
    """One operator parameter: its default, form label and help text."""

    name: str
    default: Any
    label: str
    description: str
    choices: tuple = ()
    #: "" (free input), or the type of existing field it names: "label"
    #: (fo.Classification), "vector" (embeddings), "score" (numeric),
    #: "suggestion" (Classification or string): the form offers a dropdown
    kind: str = ""

    def add_to(self, inputs, ctx):
        if self.kind == "predictions":  # a multi-select of model outputs
            from .predictions import predictions_field_input

            predictions_field_input(ctx, inputs, self)
            return
        if self.kind and ctx is not None and getattr(ctx, "dataset", None) is not None:
            field_input(ctx, inputs, self)
            return
        kwargs = dict(
            default=self.default,
            required=False,
            label=self.label,
            description=self.description,
        )
        if self.choices:
            dropdown = types.DropdownView()
            for choice in self.choices:
                dropdown.add_choice(choice, label=str(choice))
            inputs.enum(self.name, dropdown.values(), view=dropdown, **kwargs)
        elif isinstance(self.default, bool):
            inputs.bool(self.name, **kwargs)
        elif isinstance(self.default, int):
            inputs.int(self.name, **kwargs)
        elif isinstance(self.default, float):
            inputs.float(self.name, **kwargs)
        else:
            inputs.str(self.name, **kwargs)


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


def device_param():
    return Param(
        "device",
        "auto",
        "Device",
        "Torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:1, ...",
    )


def resolve_device(name):
    """``auto``/empty -> None (the methods then pick CUDA when present)."""
    return None if not name or name == "auto" else str(name)


def common_params(output_field, run_key, needs_embeddings=True):
    params = [
        Param(
            "label_field",
            "ground_truth",
            "Label field",
            "The fo.Classification field holding the (possibly noisy) labels",
            kind="label",
        )
    ]
    if needs_embeddings:
        params.append(
            Param(
                "embeddings_field",
                "embeddings",
                "Embeddings field",
                "Sample field holding one feature vector per sample (from "
                "compute_embeddings or any FiftyOne zoo model)",
                kind="vector",
            )
        )
        params.append(
            Param(
                "brain_key",
                "",
                "Similarity index (instead)",
                "Read the embeddings from this FiftyOne similarity index "
                "(a compute_similarity run of these samples or objects; any "
                "backend) instead of the embeddings field; empty = the field",
                kind="similarity",
            )
        )
    params += [
        Param(
            "output_field",
            output_field,
            "Output field",
            "Sample field in which to store the result",
        ),
        Param(
            "run_key",
            run_key,
            "Run key",
            "Name of the run record; re-running a key replaces it",
        ),
        Param("seed", 51, "Random seed", "Same seed, same results"),
    ]
    return params


def field_choices(collection, kind):
    """Existing fields of ``collection`` a parameter of ``kind`` can name
    (see :attr:`Param.kind`), as FiftyOne's brain operators list them."""
    import fiftyone as fo
    import fiftyone.core.fields as fof

    if kind == "label":
        return lnd.classification_fields(collection)
    if kind == "vector":
        return lnd.vector_fields(collection)
    if kind == "similarity":
        patches_field = (getattr(collection, "_label_fields", None) or [None])[0]
        return brain_index.similarity_keys(
            collection, patches_field if lno.is_patches(collection) else None
        )
    schema = collection.get_field_schema()
    if kind == "score":
        return sorted(
            n for n, f in schema.items()
            if isinstance(f, (fof.FloatField, fof.IntField)) and not n.startswith("_")
        )
    if kind == "suggestion":
        return sorted(
            n for n, f in schema.items()
            if (getattr(f, "document_type", None) is not None
                and issubclass(f.document_type, fo.Classification))
            or (isinstance(f, fof.StringField) and n != "filepath")
        )
    raise ValueError("unknown field kind %r" % kind)


def field_input(ctx, inputs, param, allow_new=False):
    """A dropdown of the existing fields of ``param.kind``.

    The default is preselected when it exists, else the first field that
    fits. The property stays a string (an SDK call naming a missing field
    gets the operator's own error message, not a form validation error);
    ``allow_new`` offers the fields but accepts a typed new name (e.g. an
    embeddings field a model will fill). Without any fitting field, a text
    box.
    """
    collection = getattr(ctx, "view", None) or ctx.dataset
    try:
        choices = field_choices(collection, param.kind)
    except Exception:  # a form must render even on an odd collection
        choices = []
    if not choices:
        if param.kind == "similarity":  # optional: no index, no input
            return None
        inputs.str(param.name, default=param.default, required=False,
                   label=param.label, description=param.description)
        return None
    if param.kind == "similarity":  # optional: "none" first, preselected
        view = types.DropdownView()
        view.add_choice("", label="none: use the embeddings field")
        for name in choices:
            view.add_choice(name, label=name)
        inputs.str(param.name, default="", required=False, label=param.label,
                   description=param.description, view=view)
        return ""
    default = param.default if param.default in choices else (
        param.default if allow_new and param.default else choices[0]
    )
    if param.default not in choices:
        # on a patches view: the patches field, or "<field>.embeddings"
        patches_field = (getattr(collection, "_label_fields", None) or [None])[0]
        if param.kind == "label" and lno.is_patches(collection) and patches_field in choices:
            default = patches_field
        suffixed = [c for c in choices if c.endswith("." + str(param.default))]
        if suffixed:
            default = suffixed[0]
    view = types.AutocompleteView() if allow_new else types.DropdownView()
    for name in choices:
        view.add_choice(name, label=name)
    inputs.str(param.name, default=default, required=False, label=param.label,
               description=param.description, view=view)
    return default


def label_field_input(ctx, inputs, param):
    """:func:`field_input` for a ``fo.Classification`` label field."""
    return field_input(ctx, inputs, Param(**dict(param.__dict__, kind="label")))


def embeddings_field_input(ctx, inputs, param, allow_new=False):
    """:func:`field_input` for an embeddings (vector) field."""
    return field_input(
        ctx, inputs, Param(**dict(param.__dict__, kind="vector")), allow_new=allow_new
    )


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


TAG_PARAM = Param(
    "tag",
    "",
    "Tag flagged samples",
    "If set, samples the method flags as mislabeled get this tag (the tag is "
    "first removed from the rest of the target view)",
)


class DetectorOperator(foo.Operator):
    """Base class of the compute operators (see module docstring)."""

    name = None
    label = None
    description = None
    method = None
    output_field = None
    needs_embeddings = True
    method_params = ()

    @property
    def config(self):
        return operator_config(self)

    @property
    def params(self):
        return (
            common_params(self.output_field, self.method, self.needs_embeddings)
            + list(self.method_params)
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx)
        self.describe_inputs(ctx, inputs)
        for param in self.params:
            param.add_to(inputs, ctx)
        delegation_input(inputs)
        return types.Property(inputs, view=types.View(label=self.label))

    def describe_inputs(self, ctx, inputs):
        """Hook for operators that show context (e.g. counts) in the form."""

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def resolved_params(self, ctx):
        """Every declared parameter, from ``ctx.params`` or its default
        (an unknown name is refused: :func:`check_param_names`)."""
        check_param_names(self, ctx.params, ctx=ctx)
        values = {p.name: ctx.params.get(p.name, p.default) for p in self.params}
        for p in self.params:
            if values[p.name] is None:
                values[p.name] = p.default
        return values

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

    def __call__(self, sample_collection, delegate=False, **params):
        """Runs this operator on a dataset or view from Python.

        Args:
            sample_collection: a dataset or view (the target of the run)
            delegate (False): queue the run for ``fiftyone delegated launch``
            **params: any of the operator's parameters (see README)

        Returns:
            the summary dict of an immediate run, or the queued operation
        """
        return call_operator(self, sample_collection, params, delegate)


class ActionOperator(foo.Operator):
    """Base of the operators that act on results (review, tagging,
    corrections, export): the same form, defaults, delegation and SDK call
    as :class:`DetectorOperator`, without a run record.

    Subclasses declare ``params`` and implement :meth:`run`; ``destructive``
    operators (those that change labels) get a confirmation in the form
    (:func:`confirm_input`) and override :meth:`warning` to say what changes.
    """

    name = None
    label = None
    description = None
    params = ()
    destructive = False
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
        """The operator's own inputs; by default its params (+ confirmation)."""
        for param in self.params:
            param.add_to(inputs, ctx)
        if self.destructive:
            confirm_input(inputs, ctx, self.warning(ctx))

    def warning(self, ctx):
        return "this changes labels"

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def values(self, ctx):
        """Every declared parameter, from ``ctx.params`` or its default."""
        out = {}
        for p in self.params:
            v = ctx.params.get(p.name, p.default)
            out[p.name] = p.default if v is None else v
        return out

    def execute(self, ctx):
        check_param_names(self, ctx.params, ctx=ctx)
        if self.destructive and ctx.params.get("confirm") is False:
            raise lnd.InputError(
                "%s changes labels: tick 'I understand' to confirm" % self.name
            )
        if self.destructive:  # label writes: one writer per dataset, as detectors
            with lnr.dataset_write_lock(ctx.dataset):
                result = self.run(ctx, self.values(ctx), progress_reporter(ctx))
        else:
            result = self.run(ctx, self.values(ctx), progress_reporter(ctx))
        reload_app(ctx)
        return result

    def run(self, ctx, params, progress):
        raise NotImplementedError

    def __call__(self, sample_collection, delegate=False, **params):
        """Runs this operator on a dataset or view from Python (see README)."""
        extra = ("confirm",) if self.destructive else ()
        return call_operator(self, sample_collection, params, delegate, extra_names=extra)


def confirm_input(inputs, ctx, message):
    """A form-only confirmation: the App must tick it, SDK calls need not.

    Like FiftyOne's own destructive operators (e.g. ``delete_samples`` of
    ``@voxel51/utils``), the form shows a warning; in addition the App's form
    is invalid until ``confirm`` is ticked. SDK/``execute_operator`` calls
    that do not pass ``confirm`` run directly; passing ``confirm=False``
    refuses to run.
    """
    inputs.bool(
        "confirm",
        default=False,
        required=False,
        label="I understand: %s" % message,
        description="Labels are changed in place; the originals are kept in "
        "<label_field>_original and the revert operators restore them",
        view=types.CheckboxView(),
    )
    warn = inputs.view("confirm_needed", types.Warning(label=message))
    if ctx.params.get("confirm") is False:  # the App sends the default False
        warn.invalid = True
        warn.error_message = "Tick 'I understand' to run"


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


def run_key_input(ctx, inputs, method=None, description=None, missing="This dataset has no label-noise runs"):
    """A dropdown of this plugin's runs (of ``method``); None when there are none.

    Adds a warning instead of the dropdown when the dataset has no such run.
    Returns the list of run keys offered.
    """
    keys = lnr.plugin_runs(ctx.dataset, method=method) if ctx.dataset is not None else []
    if not keys:
        inputs.view("none", types.Warning(label=missing))
        return None
    dropdown = types.DropdownView()
    for key in keys:
        dropdown.add_choice(key, label=key)
    inputs.enum(
        "run_key",
        dropdown.values(),
        default=keys[0],
        required=False,
        label="Run",
        description=description,
        view=dropdown,
    )
    return keys


def delegation_input(inputs):
    inputs.bool(
        "delegate",
        default=False,
        required=False,
        label="Delegate execution?",
        description=(
            "Queue the run for a delegated-operations worker "
            "(`fiftyone delegated launch`) instead of running it now"
        ),
        view=types.CheckboxView(),
    )


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
