"""Training one model: the typed trial config, the project's one training loop `fit()` (used by
the search and the report alike), and clip-level evaluation."""

from training.config import TrialConfig
from training.evaluate import ClipEvaluation, evaluate_clips
from training.fit import EpochMetrics, FitResult, TrainingDiverged, fit
from training.state import TrainingState

__all__ = [
    "ClipEvaluation",
    "EpochMetrics",
    "FitResult",
    "TrainingDiverged",
    "TrainingState",
    "TrialConfig",
    "evaluate_clips",
    "fit",
]
