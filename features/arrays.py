"""Features in memory: one split's clips as arrays (`SplitArrays`), augmented copies of the training
clips (`TrainCopies`), and what `fit()` sees (`FitData`). Plain numpy, no HDF5: training imports these.

`features.store` reads them from a store file; tests and benches build them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.settings import FeatureSetting

# Floor on a bin's standard deviation, applied to the stored statistics and wherever features are
# normalised: a constant bin (silence in every training clip) must not divide by zero.
STD_FLOOR = 1e-5


@dataclass(frozen=True)
class SplitArrays:
    """One split of a store, in memory: its clips' frames one after another, each clip only its
    own (clips differ in length, and one long clip must not pad all the others to its length).

    Clip i is `features[offsets[i] : offsets[i] + lengths[i]]`, frames-major; `clip(i)` gives it
    as `(bins, frames)`.
    """

    features: np.ndarray  # (frames of all clips, bins), float16 as stored, not normalised
    lengths: np.ndarray  # (clips,) int32: frames per clip
    labels: np.ndarray  # (clips,) int64: index into the store's classes
    clip_ids: tuple[str, ...]  # "genre/genre.00042"

    def __post_init__(self) -> None:
        if not len(self.lengths) == len(self.labels) == len(self.clip_ids):
            raise ValueError(f"{len(self.lengths)} lengths, {len(self.labels)} labels, {len(self.clip_ids)} clip ids")
        if self.features.ndim != 2 or len(self.features) != self.lengths.sum():
            raise ValueError(f"features {self.features.shape} do not hold {self.lengths.sum()} frames of clips")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_bins(self) -> int:
        return self.features.shape[1]

    @property
    def offsets(self) -> np.ndarray:
        """(clips,) int64: each clip's first frame in `features`."""
        return np.cumsum(self.lengths, dtype=np.int64) - self.lengths

    def clip(self, index: int) -> np.ndarray:
        """Clip `index`'s features `(bins, frames)` (a view)."""
        start = int(self.offsets[index])
        return self.features[start : start + int(self.lengths[index])].T

    @classmethod
    def of_clips(cls, clips: Sequence[np.ndarray], labels: Sequence[int], clip_ids: Sequence[str]) -> SplitArrays:
        """A split of clips given as `(bins, frames)` arrays."""
        return cls(
            features=np.concatenate([clip.T for clip in clips]),
            lengths=np.array([clip.shape[1] for clip in clips], dtype=np.int32),
            labels=np.asarray(labels, dtype=np.int64),
            clip_ids=tuple(clip_ids),
        )


def concat_splits(first: SplitArrays, second: SplitArrays) -> SplitArrays:
    """The clips of `first`, then those of `second`, as one split."""
    return SplitArrays(
        features=np.concatenate([first.features, second.features]),
        lengths=np.concatenate([first.lengths, second.lengths]),
        labels=np.concatenate([first.labels, second.labels]),
        clip_ids=first.clip_ids + second.clip_ids,
    )


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
    # (bins,) float32 raw features of a silent frame, computed where the store is read (a trial's
    # worker then needs no librosa: 1.4 s of a new worker's start); None: computed when asked.
    silent_frame: np.ndarray | None = None

    @property
    def frames_per_second(self) -> float:
        return self.setting.frames_per_second

    @property
    def silence(self) -> np.ndarray | None:
        """(bins,) float32 raw features of a silent frame: what a too-short clip is padded with;
        None where librosa is not installed (the training mean pads then)."""
        return self.silent_frame if self.silent_frame is not None else silent_frame_of(self.setting)


def silent_frame_of(setting: FeatureSetting) -> np.ndarray | None:
    """The setting's silent frame (features.compute), or None where librosa is not installed (a GPU
    machine given the stores): short clips are then padded with the training mean."""
    try:
        from features.compute import silence_frame  # librosa: loaded only where padding is needed
    except ImportError:
        return None
    return silence_frame(setting)
