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
class FitData:
    """What training sees: train and valid only (the test split is not an input of `fit()`)."""

    train: SplitArrays
    valid: SplitArrays
    mean: np.ndarray  # (bins,) float32, per-bin statistics of the train split only
    std: np.ndarray  # (bins,) float32
    classes: tuple[str, ...]
    setting: FeatureSetting

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
        except (OSError, FileNotFoundError) as err:
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
            group = f[split]
            return SplitArrays(
                features=group["features"][()],
                lengths=group["lengths"][()].astype(np.int32),
                labels=group["labels"][()].astype(np.int64),
                clip_ids=tuple(s.decode() for s in group["clip_ids"][()]),
            )

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
        )


# Attributes stored as JSON text: the store describes itself.
JSON_ATTRS = ("setting", "classes", "dataset", "versions", "skipped", "counts")
