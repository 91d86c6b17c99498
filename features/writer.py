"""Writing one store: into a temporary file, renamed into place only when complete, so an
interrupted build (Ctrl-C, kill -9) never leaves a file a later run takes for finished."""

from __future__ import annotations

import contextlib
import json
import platform
import time
from pathlib import Path

import h5py
import librosa
import numpy as np
import soundfile

from common.errors import UserError
from common.partials import commit_partial, partial_path
from features.arrays import STD_FLOOR
from features.dataset import SPLIT_NAMES, Clip, Dataset
from features.durations import expected_frames
from features.settings import FeatureSetting
from features.store import (
    CHECKSUM_ATTR,
    COPIES_GROUP,
    STORE_FORMAT_VERSION,
    dataset_digests,
    encoded,
    metadata_digest,
)

CHUNK_FRAMES = 512  # frames per HDF5 chunk: 128 KB of 128-band rows; a split wastes less than one


def store_path(stores_dir: Path, setting: FeatureSetting) -> Path:
    return Path(stores_dir) / f"{setting.name}.h5"


class StoreWriter:
    """Receives clips in order, writes each split's rows, keeps train-only per-bin statistics."""

    def __init__(self, path: Path, setting: FeatureSetting, dataset: Dataset, described: dict):
        self.path, self.setting, self.described = Path(path), setting, described
        self.temp_path = partial_path(self.path)
        # The latest file format: HDF5 checksums its own metadata (object headers, chunk indexes).
        # No chunk cache: rows reach the file as they are written, so the writer's memory stays
        # bounded and a full disk fails the write that meets it (through HDF5's cache it failed
        # at close, leaving files h5py could not close, and the process crashed at exit).
        self.file: h5py.File | None = h5py.File(self.temp_path, "w", libver="latest", rdcc_nbytes=0)
        self.split_of = {clip.clip_id: split for split in SPLIT_NAMES for clip in dataset.splits[split]}
        self.rows: dict[str, list[tuple[str, int, int]]] = {group: [] for group in (*SPLIT_NAMES, COPIES_GROUP)}
        self.copy_rows: list[tuple[int, str]] = []  # per copy: its original's train row, its effect values
        self.sums = np.zeros((2, setting.n_bins), dtype=np.float64)  # sum and sum of squares, train only
        self.frame_count = 0
        self.skipped: list[dict[str, str]] = []
        self.datasets: dict[str, h5py.Dataset] = {}
        self.classes = dataset.classes
        self.clips = dataset.all_clips()  # for `bytes_needed`

    def skip(self, clip: Clip, reason: str | None) -> None:
        self.skipped.append({"clip": clip.clip_id, "file": str(clip.path), "reason": reason or "unknown"})

    def add(self, clip: Clip, features: np.ndarray, sums: np.ndarray) -> None:
        """Write one clip's row; `sums` (per-bin sum and sum of squares) count for train clips only."""
        split = self.split_of[clip.clip_id]
        self._write_row(split, clip.clip_id, clip.label, features)
        if split == "train":
            self.sums += sums
            self.frame_count += features.shape[1]

    def add_copy(self, clip: Clip, number: int, features: np.ndarray, params: dict[str, float]) -> None:
        """Write augmented copy `number` (from 1) of the training clip added last; the statistics
        stay those of the originals."""
        self._write_row(COPIES_GROUP, f"{clip.clip_id}#{number}", clip.label, features)
        self.copy_rows.append((len(self.rows["train"]) - 1, json.dumps(params)))

    def _write_row(self, group: str, clip_id: str, label: int, features: np.ndarray) -> None:
        """Append the clip's frames to its group's: each clip takes its own frames only."""
        dataset, frames = self._dataset_of(group), features.shape[1]
        end = dataset.shape[0]
        dataset.resize(end + frames, axis=0)
        dataset[end:] = features.T
        self.rows[group].append((clip_id, label, frames))

    def _dataset_of(self, group: str) -> h5py.Dataset:
        assert self.file is not None
        if group not in self.datasets:
            bins = self.setting.n_bins
            self.datasets[group] = self.file.create_group(group).create_dataset(
                "features", shape=(0, bins), maxshape=(None, bins), chunks=(CHUNK_FRAMES, bins), dtype=np.float16
            )
        return self.datasets[group]

    def finish(self) -> None:
        """Write index arrays, statistics and metadata, then rename into place."""
        assert self.file is not None
        for split in SPLIT_NAMES:
            if not self.rows[split]:
                raise UserError(f"split {split} of {self.described['root']} has no readable clips")
            self._write_index(split)
        if self.copy_rows:
            self._write_index(COPIES_GROUP)
            sources, params = zip(*self.copy_rows)
            self.file[COPIES_GROUP].create_dataset("source", data=np.array(sources, dtype=np.int32))
            self.file[COPIES_GROUP].create_dataset("params", data=encoded(params))
        mean = self.sums[0] / self.frame_count
        std = np.sqrt(np.maximum(self.sums[1] / self.frame_count - mean**2, 0))
        self.file.create_dataset("stats/mean", data=mean.astype(np.float32))
        self.file.create_dataset("stats/std", data=np.maximum(std, STD_FLOOR).astype(np.float32))
        self._write_attrs()
        self.file.close()
        self.file = None
        commit_partial(self.temp_path, self.path)

    def _write_index(self, split: str) -> None:
        assert self.file is not None
        group = self.file[split]
        ids, labels, lengths = zip(*self.rows[split])
        group.create_dataset("clip_ids", data=encoded(ids))
        group.create_dataset("labels", data=np.array(labels, dtype=np.int16))
        group.create_dataset("lengths", data=np.array(lengths, dtype=np.int32))

    def _write_attrs(self) -> None:
        assert self.file is not None
        meta = {
            "setting": self.setting.to_dict(),
            "classes": list(self.classes),
            "dataset": self.described,
            "versions": _library_versions(),
            "skipped": self.skipped,
            "counts": {split: len(rows) for split, rows in self.rows.items() if rows},
            "digests": dataset_digests(self.file),  # read back: what the file holds
        }
        for key, value in meta.items():
            self.file.attrs[key] = json.dumps(value)
        self.file.attrs["format_version"] = STORE_FORMAT_VERSION
        self.file.attrs["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.file.attrs["complete"] = True  # a store without it is not finished
        self.file.attrs[CHECKSUM_ATTR] = metadata_digest(self.file.attrs)  # written last: covers the others

    def bytes_needed(self) -> int:
        """About the size of the finished store: every clip's frames from its duration (its file's
        header, not the first clips written, which may be the long ones), train clips once more per
        augmented copy, in float16."""
        copies = self.setting.audio_augment.copies
        frames = expected_frames(self.clips, self.setting.sample_rate, self.setting.hop_length)
        rows = sum(n * (1 + copies * (self.split_of[c.clip_id] == "train")) for c, n in zip(self.clips, frames))
        return rows * self.setting.n_bins * 2

    def abort(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError, RuntimeError):  # after a failed write (full disk), closing may fail too
                self.file.close()
            self.file = None
            self.temp_path.unlink(missing_ok=True)


def _library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "librosa": librosa.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "soundfile": soundfile.__version__,
    }
