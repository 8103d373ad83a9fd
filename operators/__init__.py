"""FiftyOne operators of the plugin: thin wrappers around ``methods/``.

Each entry of :data:`OPERATORS` is registered by the plugin's
``register()`` and listed in ``fiftyone.yml`` (a test checks both agree).
"""

from .embeddings import ComputeEmbeddings
from .knn import ComputeKnnDisagreement
from .manage import DeleteRun

OPERATORS = [
    ComputeEmbeddings,
    ComputeKnnDisagreement,
    DeleteRun,
]

PANELS = []
