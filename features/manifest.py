"""A manifest: a CSV file with one row per clip naming its audio file, its label, and its split or
fold, read with pandas. ESC-50's and UrbanSound8K's metadata files work as they ship."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from common.errors import UserError
from common.safe_load import MAX_MANIFEST_BYTES, read_bounded
from features.dataset import MANIFEST, SPLIT_NAMES, Clip, Dataset, check_every_class_trains

# Accepted spellings of each column (case-insensitive); the first one present is used.
PATH_COLUMNS = ("path", "file", "filename", "file_name", "slice_file_name", "audio")
LABEL_COLUMNS = ("label", "class", "category", "genre")
SPLIT_COLUMNS = ("split", "set", "subset")
FOLD_COLUMNS = ("fold",)
SPLIT_SPELLINGS = {
    **dict.fromkeys(("train", "training"), "train"),
    **dict.fromkeys(("valid", "validation", "val", "dev"), "valid"),
    **dict.fromkeys(("test", "testing"), "test"),
}


@dataclass(frozen=True)
class FoldChoice:
    """Which folds are test and valid (the rest train); None: the last fold is test, the one before
    it valid."""

    test: int | None = None
    valid: int | None = None


@dataclass(frozen=True)
class _Columns:
    path: str
    label: str
    split: str | None
    fold: str | None


def load_manifest(manifest: Path, audio_dir: Path | None = None, folds: FoldChoice = FoldChoice()) -> Dataset:
    """The dataset a manifest describes; paths are relative to `audio_dir` (default: the manifest's
    folder). A bad row raises `UserError` naming the manifest and the row's line."""
    manifest = Path(manifest).expanduser().resolve()
    audio_dir = Path(audio_dir).expanduser().resolve() if audio_dir else manifest.parent
    if not audio_dir.is_dir():
        raise UserError(f"--audio-dir {audio_dir} is not a folder")
    rows = _read(manifest)
    columns = _columns(manifest, rows)
    chosen = _fold_choice(manifest, rows[columns.fold], folds) if columns.fold else None
    classes = tuple(sorted(set(rows[columns.label])))
    splits: dict[str, list[Clip]] = {split: [] for split in SPLIT_NAMES}
    seen: dict[str, int] = {}
    for index, row in rows.iterrows():
        line = f"{manifest}:{index + 2}"  # the header is line 1
        split = _split_of(line, row, columns, chosen)
        path = _audio_path(line, row, columns, audio_dir)
        clip_id = str(PurePosixPath(path.relative_to(audio_dir).as_posix()).with_suffix(""))
        if clip_id in seen:
            raise UserError(f"{line}: {row[columns.path]!r} is listed twice (first on line {seen[clip_id]})")
        seen[clip_id] = index + 2
        if not row[columns.label]:
            raise UserError(f"{line}: the {columns.label!r} column is empty")
        splits[split].append(Clip(clip_id, path, classes.index(row[columns.label])))
    for split, clips in splits.items():
        if not clips:
            raise UserError(f"{manifest}: no row is in split {split} (every split needs clips)")
    frozen = {split: tuple(clips) for split, clips in splits.items()}
    check_every_class_trains(classes, frozen, str(manifest))
    source = {"layout": MANIFEST, "manifest": str(manifest), "audio_dir": str(audio_dir), "folds": chosen}
    return Dataset(audio_dir, classes, frozen, None, (), source, manifest)


def _read(manifest: Path) -> pd.DataFrame:
    try:
        data = io.BytesIO(read_bounded(manifest, MAX_MANIFEST_BYTES, "a manifest"))
        rows = pd.read_csv(data, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{manifest}: not a readable CSV manifest ({err})") from err
    rows.columns = [str(c).strip() for c in rows.columns]
    return rows.apply(lambda column: column.str.strip())


def _columns(manifest: Path, rows: pd.DataFrame) -> _Columns:
    by_lower = {name.lower(): name for name in rows.columns}

    def find(options: tuple[str, ...]) -> str | None:
        return next((by_lower[o] for o in options if o in by_lower), None)

    path, label, split, fold = find(PATH_COLUMNS), find(LABEL_COLUMNS), find(SPLIT_COLUMNS), find(FOLD_COLUMNS)
    has = f"(it has {', '.join(rows.columns)})"
    if path is None:
        raise UserError(f"{manifest}:1: no audio path column: name one {'/'.join(PATH_COLUMNS)} {has}")
    if label is None:
        raise UserError(f"{manifest}:1: no label column: name one {'/'.join(LABEL_COLUMNS)} {has}")
    if split is None and fold is None:
        names = "/".join(SPLIT_COLUMNS + FOLD_COLUMNS)
        raise UserError(f"{manifest}:1: no split or fold column: name one {names} {has}")
    return _Columns(path, label, split, None if split else fold)


def _fold_choice(manifest: Path, column: pd.Series, folds: FoldChoice) -> dict[str, int]:
    numbers = []
    for index, value in column.items():
        try:
            numbers.append(int(value))
        except ValueError:
            raise UserError(f"{manifest}:{index + 2}: fold {value!r} is not a whole number") from None
    present = sorted(set(numbers))
    if len(present) < 3:
        raise UserError(f"{manifest}: folds {present}: at least 3 are needed (test, valid, and train)")
    test = present[-1] if folds.test is None else folds.test
    valid = folds.valid if folds.valid is not None else max(f for f in present if f != test)
    for flag, fold in (("--test-fold", test), ("--valid-fold", valid)):
        if fold not in present:
            raise UserError(f"{flag}: {fold} is not a fold of {manifest} (folds: {', '.join(map(str, present))})")
    if test == valid:
        raise UserError(f"--valid-fold: {valid} is also the test fold: choose another")
    return {"test": test, "valid": valid}


def _split_of(line: str, row: pd.Series, columns: _Columns, chosen: dict[str, int] | None) -> str:
    if chosen is not None:
        fold = int(row[columns.fold])
        return "test" if fold == chosen["test"] else "valid" if fold == chosen["valid"] else "train"
    name = row[columns.split]
    if name.lower() not in SPLIT_SPELLINGS:
        raise UserError(f"{line}: split {name!r} is not one of {', '.join(SPLIT_SPELLINGS)}")
    return SPLIT_SPELLINGS[name.lower()]


def _audio_path(line: str, row: pd.Series, columns: _Columns, audio_dir: Path) -> Path:
    """The row's audio file under `audio_dir`, as written or in its `fold<N>/` folder
    (UrbanSound8K's layout); a path leaving `audio_dir` or a missing file is an error."""
    written = row[columns.path]
    parts = PurePosixPath(written.replace("\\", "/")).parts
    if not written or written.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise UserError(f"{line}: {written!r} is not a path inside {audio_dir} (relative, without '..')")
    candidates = [audio_dir.joinpath(*parts)]
    if columns.fold:
        candidates.append(audio_dir / f"fold{row[columns.fold]}" / PurePosixPath(*parts))
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise UserError(f"{line}: audio file {written!r} not found under {audio_dir}")
    return found
