"""A split for a folder of class sub-folders without split lists: stratified by class, seeded,
optionally grouped by a pattern in the file names, made with scikit-learn and written once into the
cache as split lists (keyed by the data's fingerprint and the settings), never into the data folder."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from common.errors import UserError
from common.typed import require
from features.dataset import SPLIT_FILES, SPLIT_NAMES
from features.locate import cache_dir

# What libsndfile decodes, plus mp3 (libsndfile 1.1+, else librosa's fallback), by file suffix.
AUDIO_SUFFIXES = (".wav", ".au", ".snd", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".caf")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
SETTINGS_FILE = "split.json"


@dataclass(frozen=True)
class SplitSettings:
    """How to split: train/valid/test fractions, the seed, and an optional group pattern (a regular
    expression searched in each file name; its first group, else its whole match, is the group)."""

    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    seed: int = 0
    group: str | None = None

    def __post_init__(self) -> None:
        text = ",".join(f"{f:g}" for f in self.fractions)
        require(len(self.fractions) == 3, "--split", text, "must be three fractions: train,valid,test")
        require(all(f > 0 for f in self.fractions), "--split", text, "must be three fractions above 0")
        require(abs(sum(self.fractions) - 1) < 1e-6, "--split", text, "must add up to 1")
        if self.group is not None:
            try:
                re.compile(self.group)
            except re.error as err:
                raise UserError(f"--group: {self.group!r} is not a regular expression ({err})") from err

    def describe(self) -> str:
        grouped = f", grouped by {self.group!r}" if self.group else ""
        return f"stratified {'/'.join(f'{f:g}' for f in self.fractions)} split (seed {self.seed}{grouped})"


def parse_fractions(text: str) -> tuple[float, ...]:
    """`--split 0.6,0.2,0.2` as numbers (checked by `SplitSettings`)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError as err:
        raise UserError(f"--split: {text!r} must be three fractions: train,valid,test (e.g. 0.6,0.2,0.2)") from err


def audio_files_by_class(root: Path) -> dict[str, list[str]]:
    """Each sub-folder of `root` holding audio files (a class) and its audio file names, sorted.
    Other files (notes, hidden files) and deeper folders are not clips."""
    found = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        names = sorted(
            f.name for f in folder.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES and not f.name.startswith(".")
        )
        if names:
            found[folder.name] = names
    return found


def made_split(root: Path, files: dict[str, list[str]], settings: SplitSettings) -> tuple[Path, bool]:
    """The folder of split lists for `root` and `settings` in the cache, and whether it was made now
    (False: an earlier run made it, and it is reused as it is)."""
    key = hashlib.sha256(json.dumps([_data_digest(root, files), asdict(settings)]).encode()).hexdigest()[:16]
    folder = cache_dir() / "splits" / f"{root.name}-{key}"
    if (folder / SETTINGS_FILE).is_file():
        return folder, False
    names = [f"{label}/{name}" for label, found in files.items() for name in found]
    labels = np.array([label for label, found in files.items() for _ in found])
    chosen = split_indices(names, labels, settings)
    _write_lists(folder, {split: [names[i] for i in chosen[split]] for split in SPLIT_NAMES}, root, settings)
    return folder, True


def split_indices(names: list[str], labels: np.ndarray, settings: SplitSettings) -> dict[str, list[int]]:
    """Indices of `names` per split: stratified by label; grouped when `settings.group` is set."""
    _, valid, test = settings.fractions
    everything = np.arange(len(names))
    try:
        if settings.group is None:
            rest, test_ids = train_test_split(everything, test_size=test, stratify=labels, random_state=settings.seed)
            train_ids, valid_ids = train_test_split(
                rest, test_size=valid / (1 - test), stratify=labels[rest], random_state=settings.seed
            )
        else:
            groups = np.array([_group_of(name, settings.group) for name in names])
            rest, test_ids = _grouped_part(everything, labels, groups, test, settings.seed)
            train_ids, valid_ids = _grouped_part(rest, labels[rest], groups[rest], valid / (1 - test), settings.seed)
    except ValueError as err:  # scikit-learn's own words: too few clips of a class, or too few groups
        raise UserError(f"--split: cannot make a {settings.describe()} of {len(names)} clips: {err}") from err
    return {"train": sorted(train_ids), "valid": sorted(valid_ids), "test": sorted(test_ids)}


def _grouped_part(ids: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int):
    """(rest, part): one fold of StratifiedGroupKFold with about 1/fraction folds, so a group lies
    wholly in `part` or wholly in `rest` and classes keep their proportions as far as groups allow."""
    folds = max(2, round(1 / fraction))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    rest, part = next(splitter.split(ids, labels, groups))
    return ids[rest], ids[part]


def _group_of(name: str, pattern: str) -> str:
    file_name = name.split("/", 1)[1]
    match = re.search(pattern, file_name)
    if match is None:
        raise UserError(f"--group: {pattern!r} does not match the file name {name!r}: every file needs a group")
    return match.group(1) if match.groups() else match.group(0)


def _data_digest(root: Path, files: dict[str, list[str]]) -> str:
    """Changes when any clip is added, removed or changed (size, modification time)."""
    digest = hashlib.sha256()
    for label, names in files.items():
        for name in names:
            stat = (root / label / name).stat()
            digest.update(f"{label}/{name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _write_lists(folder: Path, listed: dict[str, list[str]], root: Path, settings: SplitSettings) -> None:
    """Written whole into a temporary folder beside, then renamed: never half a split."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    for split, names in listed.items():
        (partial / SPLIT_FILES[split]).write_text("".join(f"{name}\n" for name in names))
    about = {"data": str(root), **asdict(settings), "counts": {s: len(n) for s, n in listed.items()}}
    (partial / SETTINGS_FILE).write_text(json.dumps(about, indent=2))
    try:
        os.rename(partial, folder)
    except OSError:  # another run made the same split at the same time: theirs is identical
        shutil.rmtree(partial)
