"""Reading a feature store: one HDF5 file per `FeatureSetting`, read-only, safe to open from many
processes at once, every array and the metadata checked against the checksums the store carries.
`features.writer` is the only writer."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from common.errors import UserError
from features.settings import FeatureSetting

STORE_FORMAT_VERSION = 3
SPLITS = ("train", "valid", "test")
COPIES_GROUP = "train_copies"  # augmented copies of the training clips, in stores that have them
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

    @property
    def frames_per_second(self) -> float:
        return self.setting.frames_per_second


class DamagedStoreError(UserError):
    """A store file that cannot be read, or whose contents do not match their checksums."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: damaged feature store ({reason}); delete it to have it rebuilt")
        self.reason = reason


class FeatureStore:
    """A finished store on disk. Metadata is read and checked at open; arrays are read on request,
    each checked against its checksum (`verify()` checks them all)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self._reading() as f:
            attrs = dict(f.attrs)
        if not attrs.get("complete") or attrs.get("format_version") != STORE_FORMAT_VERSION:
            raise UserError(f"{self.path}: not a complete feature store of format {STORE_FORMAT_VERSION}")
        if attrs.get(CHECKSUM_ATTR) != metadata_digest(attrs):
            raise DamagedStoreError(self.path, "checksum mismatch: metadata")
        self.meta: dict[str, Any] = {key: json.loads(attrs[key]) for key in JSON_ATTRS}
        self.setting = FeatureSetting.from_dict(self.meta["setting"])
        self.classes: tuple[str, ...] = tuple(self.meta["classes"])

    @contextlib.contextmanager
    def _reading(self) -> Iterator[h5py.File]:
        """The file open for reading; HDF5's errors about a damaged or foreign file become one line."""
        try:
            with h5py.File(self.path, "r") as f:
                yield f
        except (OSError, KeyError, ValueError, RuntimeError) as err:
            raise DamagedStoreError(self.path, " ".join(f"{type(err).__name__}: {err}".split())) from err

    def _read(self, f: h5py.File, name: str) -> np.ndarray:
        array = f[name][()]
        if array_digest(array) != self.meta["digests"].get(name):
            raise DamagedStoreError(self.path, f"checksum mismatch: {name}")
        return array

    def verify(self, include_test: bool) -> None:
        """Check every array against its checksum, once when a store is reused, not at every load.
        The search leaves the test split out (it never reads it); the report includes it."""
        with self._reading() as f:
            found = dataset_digests(f)
        expected = self.meta["digests"]
        names = found.keys() | expected.keys()
        if not include_test:
            names = {name for name in names if not name.startswith("test/")}
        damaged = sorted(name for name in names if found.get(name) != expected.get(name))
        if damaged:
            raise DamagedStoreError(self.path, f"checksum mismatch: {', '.join(damaged)}")

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
        with self._reading() as f:
            return self._read_arrays(f, split)

    def load_train_copies(self) -> TrainCopies | None:
        """The augmented copies of the training clips; None for a store without augmentation."""
        with self._reading() as f:
            if COPIES_GROUP not in f:
                return None
            source = self._read(f, f"{COPIES_GROUP}/source").astype(np.int64)
            return TrainCopies(self._read_arrays(f, COPIES_GROUP), source)

    def copy_params(self) -> list[dict[str, float]]:
        """Each copy's effect values (pitch shift, stretch, ...), in the order of its rows."""
        with self._reading() as f:
            if COPIES_GROUP not in f:
                return []
            return [json.loads(text) for text in decoded(self._read(f, f"{COPIES_GROUP}/params"))]

    def load_stats(self) -> tuple[np.ndarray, np.ndarray]:
        with self._reading() as f:
            return self._read(f, "stats/mean").astype(np.float32), self._read(f, "stats/std").astype(np.float32)

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

    def _read_arrays(self, f: h5py.File, group: str) -> SplitArrays:
        return SplitArrays(
            features=self._read(f, f"{group}/features"),
            lengths=self._read(f, f"{group}/lengths").astype(np.int32),
            labels=self._read(f, f"{group}/labels").astype(np.int64),
            clip_ids=tuple(decoded(self._read(f, f"{group}/clip_ids"))),
        )


def encoded(texts: Sequence[str]) -> np.ndarray:
    """Text as fixed-length UTF-8 bytes: stored inside the dataset itself, so its checksum covers
    it (variable-length strings live in a separate heap)."""
    return np.array([text.encode() for text in texts], dtype=np.bytes_)


def decoded(array: np.ndarray) -> list[str]:
    return [item.decode() for item in array]


def array_digest(array: np.ndarray | h5py.Dataset) -> str:
    """sha256 of an array's (or a stored dataset's) type, shape and values in C order, read a
    block of rows at a time."""
    digest = hashlib.sha256(f"{array.dtype.str} {array.shape}".encode())
    rows = max(1, DIGEST_BLOCK_BYTES // max(1, math.prod(array.shape[1:]) * array.dtype.itemsize))
    for start in range(0, array.shape[0], rows):
        digest.update(np.ascontiguousarray(array[start : start + rows]))
    return digest.hexdigest()


DIGEST_BLOCK_BYTES = 2**24


def dataset_digests(f: h5py.File) -> dict[str, str]:
    """`array_digest` of every dataset in the file, by its path."""
    found: dict[str, str] = {}

    def add(name: str, item: h5py.Group | h5py.Dataset) -> None:
        if isinstance(item, h5py.Dataset):
            found[name] = array_digest(item)

    f.visititems(add)
    return found


def metadata_digest(attrs: Mapping[str, Any]) -> str:
    """sha256 of every file attribute but the checksum itself, as text."""
    text = json.dumps({key: str(value) for key, value in attrs.items() if key != CHECKSUM_ATTR}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# Attributes stored as JSON text: the store describes itself (and lists its arrays' checksums).
JSON_ATTRS = ("setting", "classes", "dataset", "versions", "skipped", "counts", "digests")
CHECKSUM_ATTR = "checksum"  # metadata_digest of the other attributes
