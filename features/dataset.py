"""A dataset: its classes and its clips, split into train, valid and test.

Split lists (`<root>/<genre>/<genre>.NNNNN.wav` listed in train/valid/test_filtered.txt) are read
here: real GTZAN and the built-in synthetic set have them, and a split made for a folder without
them is written as such lists (features.split_maker). A manifest builds its `Dataset` from its rows
(features.manifest). Which applies to a folder or file is decided in features.layouts. Classes are
the class folders of the listed clips found on disk, exactly as named, sorted; nothing here knows
the genres.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "valid", "test")
SPLIT_FILES = {split: f"{split}_filtered.txt" for split in SPLIT_NAMES}
# The project's copy of the fault-filtered 8-genre lists, used when a root has none of its own.
PROJECT_SPLITS_DIR = Path(__file__).resolve().parent / "splits"
SYNTHETIC_MARKER = "SYNTHETIC.json"
AUDIO_FALLBACK_SUFFIXES = (".au",)  # GTZAN's original format; a listed .wav may exist only as .au
# features.layouts' names for where a dataset's split came from, as experiment.json records them.
LISTS_AT_ROOT, PROJECT_LISTS, MADE_SPLIT, MANIFEST = "split lists", "project lists", "made split", "manifest"


@dataclass(frozen=True)
class Clip:
    clip_id: str  # "jazz/jazz.00054": the listed name without its extension
    path: Path  # the resolved audio file
    label: int  # index into Dataset.classes


@dataclass(frozen=True)
class Dataset:
    root: Path
    classes: tuple[str, ...]
    splits: dict[str, tuple[Clip, ...]]
    split_lists: Path | None  # the folder the split lists came from (None: a manifest)
    missing: tuple[str, ...]  # listed clips not found on disk, left out
    # How the split was obtained (features.layouts): recorded, so a report or resume reopens the same.
    source: dict[str, Any] = field(default_factory=dict)
    manifest: Path | None = None  # the manifest file the clips and split came from

    @property
    def synthetic(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).is_file()

    def all_clips(self) -> list[Clip]:
        return [clip for split in SPLIT_NAMES for clip in self.splits[split]]

    def fingerprint(self) -> str:
        """Changes when any split list (or the manifest and its fold choice) or listed file changes
        (path, size, modification time)."""
        digest = hashlib.sha256()
        if self.manifest is not None:
            digest.update(self.manifest.read_bytes())
            digest.update(json.dumps(self.source.get("folds"), sort_keys=True).encode())
        else:
            for split in SPLIT_NAMES:
                digest.update((self.split_lists / SPLIT_FILES[split]).read_bytes())
        for clip in self.all_clips():
            stat = clip.path.stat()
            digest.update(f"{clip.path.relative_to(self.root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        """What every output records about the data it came from."""
        return {
            "root": str(self.root),
            "synthetic": self.synthetic,
            "fingerprint": self.fingerprint(),
            "split_lists": str(self.split_lists) if self.split_lists else None,
            "source": self.source,
            "classes": list(self.classes),
            "counts": {split: len(self.splits[split]) for split in SPLIT_NAMES},
            "generator": self.generator_settings(),
        }

    def generator_settings(self) -> dict | None:
        marker = self.root / SYNTHETIC_MARKER
        return json.loads(marker.read_text()) if marker.is_file() else None


def load_dataset(root: str | Path, split_lists: Path | None = None, source: dict[str, Any] | None = None) -> Dataset:
    """Parse the split lists (in `split_lists`, else at the root, else the project's) and resolve
    every listed clip; bad input raises `UserError`. Classes are the class folders of the clips
    found, named exactly as on disk; a listed file missing on disk is left out with a warning."""
    root = Path(root).expanduser().resolve()
    expected = "a folder with <genre>/<genre>.NNNNN.wav files and train/valid/test_filtered.txt"
    if not root.is_dir():
        raise UserError(f"data root {root} does not exist or is not a folder (expected {expected})")
    split_lists = split_lists or _split_lists_folder(root)
    found, missing, unknown = _listed_clips(root, split_lists)
    if not any(found.values()):
        listed = len(missing) + len(unknown)
        raise UserError(f"data root {root} holds none of the {listed} listed audio files (expected {expected})")
    if unknown:  # a class without a folder would be an output without clips
        line, name = unknown[0]
        more = f" ({len(unknown) - 1} more such lines)" if len(unknown) > 1 else ""
        label = name.split("/")[0]
        raise UserError(
            f"{line}: {name!r}: class {label!r} has no folder in {root}{more} (a class is a folder of clips)"
        )
    classes = tuple(sorted({name.split("/")[0] for clips in found.values() for name, _ in clips}))
    splits = {split: tuple(_clip(name, path, classes) for name, path in clips) for split, clips in found.items()}
    if missing:
        where = ", ".join(f"{line} {name}" for line, name in missing)
        counts = class_counts(classes, splits)
        message = "%d listed clips are missing under %s and left out: %s; clips per class (train/valid/test): %s"
        log.warning(message, len(missing), root, where, counts)
    for split, clips in splits.items():
        if not clips:
            raise UserError(f"split {split} of {root} is empty: none of its listed clips exist")
    check_every_class_trains(classes, splits, str(split_lists / SPLIT_FILES["train"]))
    source = source or {"layout": PROJECT_LISTS if split_lists == PROJECT_SPLITS_DIR else LISTS_AT_ROOT}
    return Dataset(root, classes, splits, split_lists, tuple(name for _, name in missing), source)


def _listed_clips(root: Path, split_lists: Path) -> tuple[dict[str, list[tuple[str, Path]]], list, list]:
    """Per split, (name on disk, file) of each listed clip found; (list:line, name) of each one
    missing, and of each one whose class has no folder."""
    found: dict[str, list[tuple[str, Path]]] = {split: [] for split in SPLIT_NAMES}
    missing: list[tuple[str, str]] = []
    unknown: list[tuple[str, str]] = []
    for split in SPLIT_NAMES:
        list_file = split_lists / SPLIT_FILES[split]
        for number, written in _read_split_list(list_file):
            line = f"{list_file}:{number}"
            name, path = _on_disk(root, written, line)
            if path is not None:
                found[split].append((name, path))
            else:
                (missing if (root / name.split("/")[0]).is_dir() else unknown).append((line, name))
    return found, missing, unknown


def _clip(name: str, path: Path, classes: tuple[str, ...]) -> Clip:
    return Clip(str(Path(name).with_suffix("")), path, classes.index(name.split("/")[0]))


def class_counts(classes: tuple[str, ...], splits: dict[str, tuple[Clip, ...]]) -> str:
    """`'blues' 3/2/2, 'rock' 3/2/1`: each class's clips in train/valid/test."""
    counts = {label: [0, 0, 0] for label in range(len(classes))}
    for index, split in enumerate(SPLIT_NAMES):
        for clip in splits[split]:
            counts[clip.label][index] += 1
    return ", ".join(f"{classes[label]!r} {'/'.join(map(str, n))}" for label, n in counts.items())


def check_every_class_trains(classes: tuple[str, ...], splits: dict[str, tuple[Clip, ...]], where: str) -> None:
    """Refuse a class without train clips (one only in the test split, say): the network would have
    an output it never learns, and every clip of that class would count as an error."""
    trained = {clip.label for clip in splits["train"]}
    untrained = [classes[label] for label in range(len(classes)) if label not in trained]
    if untrained:
        raise UserError(
            f"{where}: class {', '.join(map(repr, untrained))} has no train clip (clips per class, "
            f"train/valid/test: {class_counts(classes, splits)}): give it train clips or leave it out"
        )


def _split_lists_folder(root: Path) -> Path:
    present = [split for split in SPLIT_NAMES if (root / SPLIT_FILES[split]).is_file()]
    if len(present) == len(SPLIT_NAMES):
        return root
    if present:
        absent = [SPLIT_FILES[s] for s in SPLIT_NAMES if s not in present]
        raise UserError(f"data root {root} has some split lists but not {', '.join(absent)}")
    log.info("%s has no split lists: using the project's fault-filtered 8-genre split", root)
    return PROJECT_SPLITS_DIR


def _read_split_list(path: Path) -> list[tuple[int, str]]:
    """(line number, name as written) per listed clip: only the line ending is removed (a folder
    name may start or end with spaces), and a byte-order mark at the start is not part of a name."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _on_disk(root: Path, written: str, where: str) -> tuple[str, Path | None]:
    """The listed clip's name as on disk and its file (None: missing). The name as written comes
    first; without surrounding spaces only when that is what exists (a list's formatting)."""
    names = list(dict.fromkeys((written, written.strip())))
    for name in names:
        if problem := _listed_name_problem(name):
            raise UserError(f"{where}: {written!r} {problem} (expected 'genre/file.wav' under the data root)")
    for name in names:
        if path := _resolve_audio(root / name):
            return name, path
    return next((name for name in names if (root / name.split("/")[0]).is_dir()), written), None


def _listed_name_problem(name: str) -> str | None:
    """Why a listed name, as written, is not a clip inside the data root (None if it is).

    The name is checked as written, not resolved: `..` would read from outside the root and make a
    class `..` that shifts every label. `.` parts are refused too rather than normalised: the name
    is the clip's id in every store, and its first part is its class. Symlinks placed inside the
    root are the user's choice and are followed.
    """
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "has a '..' part, which leaves the data root"
    if "." in parts:
        return "has a '.' part"
    if len(parts) != 2 or not all(parts):
        return "is not a genre folder and a file name"
    return None


def _resolve_audio(path: Path) -> Path | None:
    if path.is_file():
        return path
    for suffix in AUDIO_FALLBACK_SUFFIXES:
        if path.with_suffix(suffix).is_file():
            return path.with_suffix(suffix)
    return None
