"""The retraining runs in numbers: accuracies over seeds, per-genre accuracy and the confusion
matrix of the test split. Tables are pandas frames; the report formats them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from reporting.retrain import SeedRun


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds (NaN with one seed: no spread to measure)."""
    array = np.asarray(values, dtype=np.float64)
    std = float(array.std(ddof=1)) if len(array) > 1 else float("nan")
    return {"mean": float(array.mean()), "std": std, "seeds": [float(v) for v in array]}


def seed_table(standard: list[SeedRun], merged: list[SeedRun]) -> pd.DataFrame:
    """One row per seed. A merged run's test accuracy sits beside the standard run's validation
    accuracy, in columns named for what they measured."""
    rows = []
    for index, run in enumerate(standard):
        row = {
            "seed": run.seed,
            "best epoch": run.epoch,
            "valid clip acc": run.valid.clip_acc if run.valid else float("nan"),
            "test clip acc": run.test.clip_acc,
        }
        if merged:
            row["train+valid epochs"] = merged[index].epoch
            row["test clip acc (train+valid model)"] = merged[index].test.clip_acc
        rows.append(row)
    return pd.DataFrame(rows)


def confusion(runs: list[SeedRun], labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(true, predicted) counts summed over the runs: each test clip counts once per seed, so the
    diagonal's share of the total is the mean test accuracy over seeds."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    for run in runs:
        np.add.at(matrix, (labels, run.test.predictions), 1)
    return matrix


def per_genre(matrix: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Recall of each genre (its clips predicted as itself) from a summed confusion matrix."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(totals > 0, np.diag(matrix) / totals, np.nan)
    top_confusion = [_most_confused(matrix, i, classes) for i in range(len(classes))]
    return pd.DataFrame(
        {
            "genre": list(classes),
            "test clips x seeds": totals,
            "accuracy": accuracy,
            "most often mistaken for": top_confusion,
        }
    )


def _most_confused(matrix: np.ndarray, row: int, classes: Sequence[str]) -> str:
    others = matrix[row].copy()
    others[row] = 0
    if others.sum() == 0:
        return "-"
    worst = int(others.argmax())
    return f"{classes[worst]} ({others[worst]})"


def ensemble_accuracy(runs: list[SeedRun], labels: np.ndarray) -> float:
    """Accuracy of the seeds' test probabilities averaged per clip: a different model (an ensemble)
    from any single seed's, reported apart from the per-seed numbers."""
    probs = np.mean([run.test.clip_probs for run in runs], axis=0)
    return float((probs.argmax(axis=1) == labels).mean())
