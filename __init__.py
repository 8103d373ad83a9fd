"""@label-noise/curation: find and fix mislabeled samples in FiftyOne.

FiftyOne imports this file to load the plugin; keep it free of heavy imports
(torch, sklearn and faiss are imported inside the methods that need them).
"""

import importlib.util
import logging
import sys
import types

# FiftyOne's plugin-loading messages go through this logger (and its handlers)
logger = logging.getLogger("fiftyone.plugins")


def _ensure_parent_packages(module_name):
    """Makes the parents of this plugin's module name importable.

    FiftyOne 1.10 to 1.13 import a plugin under its folder path relative to
    the plugins dir (``fiftyone.core.utils.get_module_name``): installed by
    ``fiftyone plugins download`` at ``<plugins_dir>/@label-noise/curation``
    the package is ``@label-noise.curation``, with no ``@label-noise`` module
    anywhere. Relative imports of the form ``from . import x`` then fail:
    CPython resolves them with ``__import__("@label-noise.curation....x")``,
    which also imports the top-level name, ``ModuleNotFoundError: No module
    named '@label-noise'``. FiftyOne 1.14+ names plugins
    ``fiftyone.plugins.orgs.<org>.<name>`` and creates those parents itself
    (``fiftyone.plugins.context._ensure_parent_modules``); this does the same,
    for the same reason, on the older releases: each missing parent that no
    installed package provides becomes an empty namespace module. Chosen over
    re-importing the plugin under an alias (two copies of every module and
    class) or absolute imports from a sys.path entry (a plugin folder on
    sys.path shadows installed packages with its ``operators``/``methods``).
    A flat folder (``<plugins_dir>/label-noise-curation``) has no parent: no-op.
    """
    parts = module_name.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if parent in sys.modules:
            continue
        try:
            importable = importlib.util.find_spec(parent) is not None
        except (ImportError, ValueError):
            importable = False
        if importable:
            continue
        package = types.ModuleType(parent)
        package.__path__ = []  # a package that finds no submodules by itself
        sys.modules[parent] = package


_ensure_parent_packages(__name__)


def register(plugin):
    if not fiftyone_compatible(plugin.name):
        return
    # imported only once the FiftyOne release is known to be supported
    from .operators import OPERATORS, PANELS

    for operator in OPERATORS + PANELS:
        plugin.register(operator)


def fiftyone_compatible(plugin_name):
    """FiftyOne's own check of the ``fiftyone.version`` range of fiftyone.yml.

    FiftyOne only applies that range in ``fiftyone plugins requirements
    --ensure``; here it also decides loading. On a release outside the range
    the plugin registers nothing and FiftyOne's message ("Plugin ... requires
    fiftyone>=... but you are running ..., which is not compatible") is logged
    as a warning, not raised as a traceback. FiftyOne's
    ``requirement_error_level`` config is honoured: 1 (warn) or 2 (ignore)
    load the plugin anyway.
    """
    import fiftyone.plugins as fop

    try:
        fop.ensure_plugin_compatibility(plugin_name)
    except ImportError as e:
        logger.warning(
            "%s. Its operators and panel are not loaded: install a supported "
            "FiftyOne (see the plugin's README, 'Compatibility'), or set "
            "FIFTYONE_REQUIREMENT_ERROR_LEVEL=1 to load it anyway",
            e,
        )
        return False
    return True
