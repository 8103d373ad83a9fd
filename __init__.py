"""@label-noise/curation: find and fix mislabeled samples in FiftyOne.

FiftyOne imports this file to load the plugin; keep it free of heavy imports
(torch, sklearn and faiss are imported inside the methods that need them).
"""

import logging

# FiftyOne's plugin-loading messages go through this logger (and its handlers)
logger = logging.getLogger("fiftyone.plugins")


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
