"""Per-clip results of a report's retrained models: which clip each seed got right, with its class
probabilities, kept beside report.json in `predictions.csv` so that a later report (a baseline
comparison, `report.py --compare`) pairs two experiments on identical clip ids without retraining.

One row per (split, run, clip): split (valid or test), trained_on, seed, clip_id, label and
predicted (class names), correct, and one probability column per class (`p:<class>`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import UserError
from common.partials import atomic_write
from features.arrays import SplitArrays
from reporting.retrain import STANDARD, SeedRun

PREDICTIONS_CSV = "predictions.csv"
PROB_PREFIX = "p:"


@dataclass(frozen=True)
class ClipResults:
    """One split's results of the standard (train-only) runs, clips in the split's order."""

    classes: tuple[str, ...]
    clip_ids: tuple[str, ...]
    labels: np.ndarray  # (clips,) class index
    probs: np.ndarray  # (seeds, clips, classes)

    @property
    def predictions(self) -> np.ndarray:
        """(seeds, clips) each seed's predicted class."""
        return self.probs.argmax(axis=2)

    @property
    def correct(self) -> np.ndarray:
        """(seeds, clips) booleans."""
        return self.predictions == self.labels

    def pooled(self) -> tuple[np.ndarray, np.ndarray]:
        """(true, predicted) classes of every clip once per seed, as `results.per_genre` takes them."""
        return np.tile(self.labels, len(self.probs)), self.predictions.ravel()

    @property
    def ensemble_predictions(self) -> np.ndarray:
        """(clips,) the class of the seeds' averaged probabilities: the seeds' ensemble."""
        return self.probs.mean(axis=0).argmax(axis=1)

    @property
    def ensemble_correct(self) -> np.ndarray:
        return self.ensemble_predictions == self.labels


def from_runs(runs: Sequence[SeedRun], split: str, arrays: SplitArrays, classes: Sequence[str]) -> ClipResults:
    """`split` ("valid" or "test") of the runs just retrained, with the split's labels and clip ids."""
    probs = np.stack([getattr(run, split).clip_probs for run in runs])
    return ClipResults(tuple(classes), tuple(arrays.clip_ids), np.asarray(arrays.labels), probs)


def frame(results: dict[str, ClipResults], seeds: Sequence[int]) -> pd.DataFrame:
    """The rows of predictions.csv for each split's results (standard runs, seeds in order)."""
    parts = []
    for split, result in results.items():
        classes = np.asarray(result.classes)
        for index, seed in enumerate(seeds):
            part = pd.DataFrame(
                {
                    "split": split,
                    "trained_on": STANDARD,
                    "seed": seed,
                    "clip_id": result.clip_ids,
                    "label": classes[result.labels],
                    "predicted": classes[result.predictions[index]],
                    "correct": result.correct[index],
                }
            )
            probs = pd.DataFrame(result.probs[index], columns=[PROB_PREFIX + name for name in result.classes])
            parts.append(pd.concat([part, probs], axis=1))
    return pd.concat(parts, ignore_index=True)


def write(results: dict[str, ClipResults], seeds: Sequence[int], out_dir: Path) -> Path:
    path = out_dir / PREDICTIONS_CSV
    with atomic_write(path) as file:
        frame(results, seeds).to_csv(file, index=False)
    return path


def read(path: Path, split: str) -> ClipResults:
    """`split`'s standard runs from a predictions.csv; a file that does not hold them is one line."""
    try:
        table = pd.read_csv(path, dtype={"clip_id": str, "label": str, "predicted": str})  # names stay names
        table = table[(table["split"] == split) & (table["trained_on"] == STANDARD)]
        classes = tuple(c[len(PROB_PREFIX) :] for c in table.columns if c.startswith(PROB_PREFIX))
        seeds = sorted(table["seed"].unique())
        first = table[table["seed"] == seeds[0]]
        clip_ids = tuple(first["clip_id"])
        labels = first["label"].map({name: i for i, name in enumerate(classes)}).to_numpy()
        probs = np.stack([_seed_probs(table, seed, clip_ids, classes) for seed in seeds])
    except (OSError, KeyError, ValueError, IndexError, pd.errors.ParserError) as err:
        raise UserError(f"{path}: not a readable predictions file with {split} clips ({err})") from err
    return ClipResults(classes, clip_ids, labels.astype(np.int64), probs)


def _seed_probs(table: pd.DataFrame, seed: int, clip_ids: tuple[str, ...], classes: tuple[str, ...]) -> np.ndarray:
    rows = table[table["seed"] == seed].set_index("clip_id").loc[list(clip_ids)]
    return rows[[PROB_PREFIX + name for name in classes]].to_numpy(dtype=np.float64)
