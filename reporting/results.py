"""The retraining runs in numbers: accuracies over seeds with their 95% intervals, per-class
accuracy and the confusion matrix of the test split. Tables are pandas frames; the report formats them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from features.layouts import GTZAN_GENRES
from reporting.clips import ClipResults
from reporting.retrain import SeedRun
from reporting.stats import Interval, accuracy_interval


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


def pooled(runs: list[SeedRun], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) classes of every test clip once per run: the runs' predictions pooled."""
    return np.tile(labels, len(runs)), np.concatenate([run.test.predictions for run in runs])


def confusion(runs: list[SeedRun], labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(true, predicted) counts summed over the runs: each test clip counts once per seed, so the
    diagonal's share of the total is the mean test accuracy over seeds."""
    return confusion_matrix(*pooled(runs, labels), labels=range(n_classes))


def class_word(classes: Sequence[str]) -> str:
    """What the report calls the classes: "genre" when they are all GTZAN's genre names (GTZAN and
    the synthetic set), else "class" (digits, instruments, sounds, ...)."""
    return "genre" if set(classes) <= set(GTZAN_GENRES) else "class"


def per_genre(true: np.ndarray, predicted: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Precision, recall (the class's accuracy: its clips predicted as itself) and F1 of each class
    from pooled (true, predicted) classes (`pooled`: each test clip once per run), and the class it
    is most often mistaken for; the first column is named by `class_word`."""
    indices = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=indices, zero_division=np.nan
    )
    matrix = confusion_matrix(true, predicted, labels=indices)
    return pd.DataFrame(
        {
            class_word(classes): list(classes),
            "test clips x seeds": support,
            "accuracy (recall)": recall,
            "precision": precision,
            "F1": f1,
            "most often mistaken for": [_most_confused(matrix, i, classes) for i in indices],
        }
    )


def macro_f1(result: ClipResults) -> dict[str, Any]:
    """Macro-F1 per seed, as `spread` gives it, and of the seeds' ensemble."""
    labels, indices = result.labels, range(len(result.classes))
    per_seed = [f1_score(labels, predicted, labels=indices, average="macro") for predicted in result.predictions]
    ensemble = f1_score(labels, result.ensemble_predictions, labels=indices, average="macro")
    return {**spread(per_seed), "ensemble": float(ensemble)}


def accuracy_intervals(results: dict[str, ClipResults]) -> dict[str, Interval]:
    """The 95% intervals of the seed-averaged accuracies and of the test ensemble's."""
    return {
        "valid": accuracy_interval(results["valid"].correct),
        "test": accuracy_interval(results["test"].correct),
        "test_ensemble": accuracy_interval(results["test"].ensemble_correct),
    }


def _most_confused(matrix: np.ndarray, row: int, classes: Sequence[str]) -> str:
    others = matrix[row].copy()
    others[row] = 0
    if others.sum() == 0:
        return "-"
    worst = int(others.argmax())
    return f"{classes[worst]} ({others[worst]})"
