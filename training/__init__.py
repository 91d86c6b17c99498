"""Training one model: the typed trial config, the project's one training loop `fit()` (used by
the search and the report alike), its checkpoints, clip-level evaluation, and saved models."""

from training.config import TrialConfig
from training.evaluate import ClipEvaluation, evaluate_clips, predict_clips
from training.fit import FitResult, TrainingDiverged, fit
from training.state import EpochMetrics, TrainingState

__all__ = [
    "ClipEvaluation",
    "EpochMetrics",
    "FitResult",
    "TrainingDiverged",
    "TrainingState",
    "TrialConfig",
    "evaluate_clips",
    "fit",
    "predict_clips",
]
