"""Reading a feature store: one HDF5 file per `FeatureSetting`, read-only, safe to open from many
processes at once. `features.extract` is the only writer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from common.errors import UserError
from features.settings import FeatureSetting

STORE_FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
COPIES_GROUP = "train_copies"  # augmented copies of the training clips, in stores that have them
# Floor on a bin's standard deviation, applied to the stored statistics and wherever features are
# normalised: a constant bin (silence in every training clip) must not divide by zero.
STD_FLOOR = 1e-5


@dataclass(frozen=True)
class SplitArrays:
    """One split of a store, in memory.

    `features[i, :, :lengths[i]]` is clip i; frames past its length are zero padding (clips differ
    slightly in length, and a short clip is kept and padded).
    """

    features: np.ndarray  # (clips, bins, max_frames), float16 as stored, not normalised
    lengths: np.ndarray  # (clips,) int32: valid frames per clip
    labels: np.ndarray  # (clips,) int64: index into the store's classes
    clip_ids: tuple[str, ...]  # "genre/genre.00042"

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class TrainCopies:
    """Augmented copies of training clips (`features.augment`): copy i was made from train clip
    `source[i]`, and has its label; clip ids are the original's with `#<copy number>`."""

    arrays: SplitArrays
    source: np.ndarray  # (copies,) int64: row of the original in the train split

    def __len__(self) -> int:
        return len(self.source)


@dataclass(frozen=True)
class FitData:
    """What training sees: train and valid only (the test split is not an input of `fit()`)."""

    train: SplitArrays
    valid: SplitArrays
    mean: np.ndarray  # (bins,) float32, per-bin statistics of the train split only
    std: np.ndarray  # (bins,) float32
    classes: tuple[str, ...]
    setting: FeatureSetting
    train_copies: TrainCopies | None = None  # augmented copies of train clips, if the setting asks

    @property
    def frames_per_second(self) -> float:
        return self.setting.frames_per_second


class FeatureStore:
    """A finished store on disk. Metadata is read at open; arrays are read on request."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with h5py.File(self.path, "r") as f:
                attrs = dict(f.attrs)
        except OSError as err:
            raise UserError(f"{self.path}: not a readable feature store ({err})") from err
        if not attrs.get("complete") or attrs.get("format_version") != STORE_FORMAT_VERSION:
            raise UserError(f"{self.path}: not a complete feature store of format {STORE_FORMAT_VERSION}")
        self.meta: dict[str, Any] = {key: json.loads(attrs[key]) for key in JSON_ATTRS}
        self.setting = FeatureSetting.from_dict(self.meta["setting"])
        self.classes: tuple[str, ...] = tuple(self.meta["classes"])

    @property
    def dataset(self) -> dict[str, Any]:
        """Which dataset the store came from: root, kind (gtzan/synthetic), fingerprint."""
        return self.meta["dataset"]

    @property
    def skipped(self) -> list[dict[str, str]]:
        """Clips left out at build time, each with its reason."""
        return self.meta["skipped"]

    def load_split(self, split: str) -> SplitArrays:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} (splits: {', '.join(SPLITS)})")
        with h5py.File(self.path, "r") as f:
            return _read_arrays(f[split])

    def load_train_copies(self) -> TrainCopies | None:
        """The augmented copies of the training clips; None for a store without augmentation."""
        with h5py.File(self.path, "r") as f:
            if COPIES_GROUP not in f:
                return None
            group = f[COPIES_GROUP]
            return TrainCopies(_read_arrays(group), group["source"][()].astype(np.int64))

    def copy_params(self) -> list[dict[str, float]]:
        """Each copy's effect values (pitch shift, stretch, ...), in the order of its rows."""
        with h5py.File(self.path, "r") as f:
            if COPIES_GROUP not in f:
                return []
            return [json.loads(text) for text in f[COPIES_GROUP]["params"].asstr()[()]]

    def load_stats(self) -> tuple[np.ndarray, np.ndarray]:
        with h5py.File(self.path, "r") as f:
            return f["stats/mean"][()].astype(np.float32), f["stats/std"][()].astype(np.float32)

    def load_fit_data(self) -> FitData:
        """Train and valid arrays with the train-only statistics; never touches the test split."""
        mean, std = self.load_stats()
        return FitData(
            train=self.load_split("train"),
            valid=self.load_split("valid"),
            mean=mean,
            std=std,
            classes=self.classes,
            setting=self.setting,
            train_copies=self.load_train_copies(),
        )


def _read_arrays(group: h5py.Group) -> SplitArrays:
    return SplitArrays(
        features=group["features"][()],
        lengths=group["lengths"][()].astype(np.int32),
        labels=group["labels"][()].astype(np.int64),
        clip_ids=tuple(s.decode() for s in group["clip_ids"][()]),
    )


# Attributes stored as JSON text: the store describes itself.
JSON_ATTRS = ("setting", "classes", "dataset", "versions", "skipped", "counts")
