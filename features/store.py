"""Reading a feature store: one HDF5 file per `FeatureSetting`, read-only, safe to open from many
processes at once, every array and the metadata checked against the checksums the store carries.
`features.writer` is the only writer; the arrays it loads are `features.arrays`' plain classes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from common.errors import UserError
from features.arrays import FitData, SplitArrays, TrainCopies, silent_frame_of
from features.settings import FeatureSetting

STORE_FORMAT_VERSION = 3
SPLITS = ("train", "valid", "test")
COPIES_GROUP = "train_copies"  # augmented copies of the training clips, in stores that have them


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
            silent_frame=silent_frame_of(self.setting),  # here, once: not in every trial's worker
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
