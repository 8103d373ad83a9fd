"""@label-noise/curation: find and fix mislabeled samples in FiftyOne.

FiftyOne imports this file to load the plugin; keep it free of heavy imports
(torch, sklearn and faiss are imported inside the methods that need them).
"""

from .operators import OPERATORS, PANELS


def register(plugin):
    for operator in OPERATORS + PANELS:
        plugin.register(operator)
