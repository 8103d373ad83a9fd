"""The forms of the plugin's operators: parameters and field pickers.

A :class:`Param` declares one parameter once (default, label, help, and the
kind of existing field it names); :meth:`Param.add_to` turns it into a form
input: a dropdown of the dataset's fields of that kind (as FiftyOne's brain
operators offer them), a choice list, or a typed box. The builders here are
shared by every operator; :mod:`operators.base` runs them.
"""

from dataclasses import dataclass
from typing import Any

import fiftyone.operators.types as types

from ..store import brain_index
from ..store import data as lnd
from ..store import objects as lno
from ..store import runs as lnr
from ..store.predictions import as_field_list, prediction_fields


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


TAG_PARAM = Param(
    "tag",
    "",
    "Tag flagged samples",
    "If set, samples the method flags as mislabeled get this tag (the tag is "
    "first removed from the rest of the target view)",
)


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


def predictions_field_input(ctx, inputs, param):
    """A multi-select dropdown of the fields that can serve as model
    predictions (:func:`store.predictions.prediction_fields`); nothing
    when the target has none."""
    collection = getattr(ctx, "view", None) or getattr(ctx, "dataset", None)
    if collection is None:
        return
    label_field = (ctx.params or {}).get("label_field") or "ground_truth"
    try:
        choices = prediction_fields(collection, label_field)
    except Exception:  # a form must render even on an odd collection
        choices = []
    given = (ctx.params or {}).get(param.name)
    if isinstance(given, str):  # the SDK's "a" or "a,b": kept a string (the
        # operator's own error names a missing field, not a form error)
        view = types.AutocompleteView(allow_user_input=True)
        for c in choices:
            view.add_choice(c, label=c)
        inputs.str(param.name, default="", required=False, label=param.label,
                   description=param.description, view=view)
        return
    if not choices:
        return
    chosen = [c for c in as_field_list(given) if c in choices]
    inputs.list(
        param.name, types.String(), default=chosen, required=False, label=param.label,
        description=param.description,
        view=types.AutocompleteView(
            multiple=True, choices=[types.Choice(value=c, label=c) for c in choices],
            allow_duplicates=False, allow_user_input=False,
        ),
    )
