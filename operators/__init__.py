"""FiftyOne operators of the plugin: thin wrappers around ``methods/``.

Each entry of :data:`OPERATORS` is registered by the plugin's
``register()`` and listed in ``fiftyone.yml`` (a test checks both agree).
"""

from .dupes import (
    ApplyDupesReview,
    ComputeDupes,
    ExportDupes,
    ExportDupesCorrected,
    ImportDupesReview,
    RevertDupesReview,
)
from .cleannet import ComputeCleanNetSimilarity
from .consensus import ComputeNoiseScore
from .curation import (
    ApplyLabelCorrections,
    ExportCuratedDataset,
    RevertLabelCorrections,
    TagNoisySamples,
)
from .embeddings import ComputeEmbeddings
from .issue_types import ComputeIssueTypes
from .knn import ComputeKnnDisagreement
from .label_quality import ComputeLabelQuality
from .manage import DeleteRun
from .panel import LabelNoisePanel
from .pipeline import FindLabelIssues
from .audit import StartLabelAudit
from .review import RecordLabelVerdict, UndoLabelVerdict
from .scan import ComputeScanClusters
from .self_learning import ComputeCorrectedLabels, LoadPrototypesView
from .training_value import ComputeTrainingValue

OPERATORS = [
    FindLabelIssues,
    ComputeEmbeddings,
    ComputeKnnDisagreement,
    ComputeLabelQuality,
    DeleteRun,
    ComputeDupes,
    ExportDupes,
    ImportDupesReview,
    ApplyDupesReview,
    RevertDupesReview,
    ExportDupesCorrected,
    ComputeNoiseScore,
    TagNoisySamples,
    ApplyLabelCorrections,
    RevertLabelCorrections,
    ExportCuratedDataset,
    ComputeTrainingValue,
    ComputeScanClusters,
    ComputeCorrectedLabels,
    LoadPrototypesView,
    ComputeCleanNetSimilarity,
    RecordLabelVerdict,
    UndoLabelVerdict,
    StartLabelAudit,
    ComputeIssueTypes,
]

PANELS = [
    LabelNoisePanel,
]
