"""Differences between the FiftyOne releases the plugin supports: one place.

The plugin declares ``fiftyone>=1.10.0,<2`` (``fiftyone.yml``,
``requirements.txt``, ``pyproject.toml``) and is tested on both ends: the
oldest declared release by ``make test-compat`` (in CI, a failure fails it)
and the release ``requirements.txt`` installs by ``make test``.

Every operator and the panel work on FiftyOne 1.10.0 with the same code as
on 1.22.1: the APIs the plugin uses (``execute_operator`` and its
``ExecutionResult``, ``OperatorConfig``, ``ctx.target_view()``,
``ctx.set_progress``, ``ctx.ops.*``, ``ctx.panel.*``, ``types.*``,
``register_run``/``init_run_results``/``save_run_results``, ``set_values``,
``to_patches``, delegated execution) have the same signatures and behaviour
in both (checked by diffing the two installed packages and by running the
integration and browser suites on each). So nothing here wraps them.

How to keep new code working on the oldest release:

1. Write operator and panel code against the oldest declared release's API
   (1.10.0), not the newest one's. ``NEWER_ONLY`` below lists what 1.22.1
   has and 1.10.0 lacks; ``tests/integration/test_compatibility.py`` fails
   when an operator file uses one of them outside this module.
2. If you need one of them, add ONE function to this module that detects
   the feature (``hasattr``, a signature, a ``try``/``except AttributeError``)
   and falls back to what 1.10.0 offers, and call that function from the
   operator. Keep the entry in ``NEWER_ONLY``: this module is the one file
   allowed to use the API. Never compare version numbers, and never branch
   on the version in an operator.
3. Run ``make test-compat`` (integration + browser suites on the oldest
   release, its own venv ``.venv-fo-<version>``) before merging. It is the
   only check of App-side code (a plugin JS bundle against the older App's
   globals and components): the scan of ``NEWER_ONLY`` reads Python only.
4. If a feature cannot be had on the oldest release at a reasonable cost,
   raise the lower bound of the declared range instead (all three files,
   README "Compatibility", and the tested release in CI follows by itself).
"""

# name (as a regular expression over source code) -> why it fails on the
# oldest supported release and what to use there instead. Measured by
# diffing fiftyone 1.10.0 and 1.22.1 (operators/, core/runs.py); add to it
# when you find another one.
NEWER_ONLY = {
    r"\.selected_samples\b": (
        "ExecutionContext.selected_samples does not exist in 1.10: "
        "ctx.selected (the selected sample ids) does"
    ),
    r"\b(set_|clear_)?(sample|label)_selection_style\b": (
        "selection styles (ctx.ops.set_sample_selection_style, ...) do not "
        "exist in 1.10"
    ),
    r"\brequire_flat\b": (
        "ctx.target_view(require_flat=...) and ViewTargetProperty("
        "require_flat=...) raise TypeError on 1.10: ctx.target_view() only"
    ),
    r"\b(active_media_type|flatten_group_slices|get_group_slice_scopes"
    r"|get_unavailable_view_targets)\b": "ExecutionContext methods that 1.10 lacks",
    r"\bCUSTOM_VIEW_TARGET\b": "ViewTarget.CUSTOM_VIEW_TARGET does not exist in 1.10",
    r"\bresolve_panel_config\b": "Panel.resolve_panel_config does not exist in 1.10",
    r"\b(get_meta|results_meta)\b": (
        "run results metadata (RunResults.get_meta, run_doc.results_meta) "
        "is not stored by 1.10: keep small facts in the run config"
    ),
    r"\btypes\.(ComponentView|DateTimeView|LoaderView|ResolvableProperty|RiskLevel)\b": (
        "operator types that 1.10 does not have"
    ),
}
