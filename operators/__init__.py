"""FiftyOne operators of the plugin: thin wrappers around ``methods/``.

Each entry of :data:`OPERATORS` is registered by the plugin's
``register()`` and listed in ``fiftyone.yml`` (a test checks both agree).
"""

from .detectors.dupes import ComputeDupes
from .detectors.cleannet import ComputeCleanNetSimilarity
from .consensus import ComputeNoiseScore
from .curation.corrections import ApplyLabelCorrections, RevertLabelCorrections
from .curation.dupes_review import (
    ApplyDupesReview,
    ExportDupes,
    ExportDupesCorrected,
    ImportDupesReview,
    RevertDupesReview,
)
from .curation.export import ExportCuratedDataset
from .curation.tagging import TagNoisySamples
from .embeddings import ComputeEmbeddings
from .detectors.issue_types import ComputeIssueTypes
from .detectors.knn import ComputeKnnDisagreement
from .detectors.label_quality import ComputeLabelQuality
from .manage import DeleteRun
from .panel.panel import LabelNoisePanel
from .pipeline import FindLabelIssues
from .curation.audit import StartLabelAudit
from .curation.review import RecordLabelVerdict, UndoLabelVerdict
from .detectors.scan import ComputeScanClusters
from .detectors.self_learning import ComputeCorrectedLabels, LoadPrototypesView
from .detectors.training_value import ComputeTrainingValue

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
