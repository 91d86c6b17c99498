"""Which kind of dataset `--data` names, detected from what is there, and the one line saying so:

1. a folder with train/valid/test_filtered.txt at its root: those lists;
2. a folder of class sub-folders without lists: GTZAN's genre folders get the project's
   fault-filtered lists, any other gets a split made for it (features.split_maker);
3. a CSV file: a manifest (features.manifest).

The dataset records how its split came about (`Dataset.source`), and `open_recorded` reopens
exactly that split for a report or a resumed search."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.errors import UserError
from features.dataset import (
    LISTS_AT_ROOT,
    MADE_SPLIT,
    MANIFEST,
    PROJECT_LISTS,
    PROJECT_SPLITS_DIR,
    SPLIT_FILES,
    SPLIT_NAMES,
    Dataset,
    load_dataset,
)
from features.locate import resolve_data_root
from features.manifest import FoldChoice, load_manifest
from features.split_maker import DEFAULT_FRACTIONS, SplitSettings, audio_files_by_class, made_split, parse_fractions

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
# The command-line options that only some layouts use: given for another layout, they are refused.
OPTION_LAYOUTS = {"split": MADE_SPLIT, "split_seed": MADE_SPLIT, "group": MADE_SPLIT}
OPTION_LAYOUTS |= {"test_fold": MANIFEST, "valid_fold": MANIFEST, "audio_dir": MANIFEST}
LAYOUT_NAMES = {
    LISTS_AT_ROOT: "a folder with split lists",
    PROJECT_LISTS: "GTZAN's genre folders (the project's split lists)",
    MADE_SPLIT: "class folders without split lists",
    MANIFEST: "a manifest",
}


@dataclass(frozen=True)
class DataOptions:
    """How to split data that has no split of its own, as given on the command line (None: not given)."""

    split: str | None = None  # "0.6,0.2,0.2": train, valid, test fractions of class folders
    split_seed: int | None = None
    group: str | None = None  # regular expression over file names: a match's group never straddles splits
    test_fold: int | None = None  # manifests with folds
    valid_fold: int | None = None
    audio_dir: str | None = None  # the folder a manifest's paths are relative to

    def split_settings(self) -> SplitSettings:
        fractions = parse_fractions(self.split) if self.split else DEFAULT_FRACTIONS
        return SplitSettings(fractions, 0 if self.split_seed is None else self.split_seed, self.group)


def open_dataset(data: str | Path | None, options: DataOptions = DataOptions()) -> Dataset:
    """The dataset `--data` (or the default data) names, its layout printed in one line."""
    path = resolve_data_root(data).expanduser().resolve()
    made_now = None
    if path.is_file():
        _refuse_options_of_other_layouts(options, MANIFEST, path)
        audio_dir = Path(options.audio_dir) if options.audio_dir else None
        dataset = load_manifest(path, audio_dir, FoldChoice(options.test_fold, options.valid_fold))
    elif not path.is_dir():
        raise UserError(f"--data {path}: no such folder or manifest file")
    elif any((path / SPLIT_FILES[split]).is_file() for split in SPLIT_NAMES):
        _refuse_options_of_other_layouts(options, LISTS_AT_ROOT, path)
        dataset = load_dataset(path)
    else:
        dataset, made_now = _class_folders(path, options)
    announce(dataset, made_now)
    return dataset


def open_recorded(described: dict[str, Any]) -> Dataset:
    """The dataset as an experiment recorded it (`Dataset.describe()`): same layout, same split."""
    source = described.get("source") or {}
    layout, made_now = source.get("layout"), None
    if layout == MANIFEST:
        folds = FoldChoice(**source["folds"]) if source.get("folds") else FoldChoice()
        dataset = load_manifest(Path(source["manifest"]), Path(source["audio_dir"]), folds)
    elif layout == MADE_SPLIT:
        dataset, made_now = _made_split(Path(described["root"]), SplitSettings(**_settings(source)))
    else:
        dataset = load_dataset(described["root"])
    announce(dataset, made_now)
    return dataset


def stores_variant(dataset: Dataset) -> str:
    """What tells this dataset's feature stores from those of another split of the same folder."""
    source = dict(dataset.source)
    return "" if source.get("layout") in (LISTS_AT_ROOT, PROJECT_LISTS, None) else repr(sorted(source.items()))


def announce(dataset: Dataset, made_now: bool | None = None) -> None:
    """One line: the layout found, what was done about its split, and the clips per split."""
    source = dataset.source
    counts = "/".join(str(len(dataset.splits[split])) for split in SPLIT_NAMES)
    clips = f"{counts} train/valid/test clips of {len(dataset.classes)} classes"
    layout = source.get("layout")
    if layout == MANIFEST:
        folds = source.get("folds")
        how = f"folds: test {folds['test']}, valid {folds['valid']}, the rest train" if folds else "its split column"
        line = f"manifest {source['manifest']} -> {how}"
    elif layout == MADE_SPLIT:
        made = "made" if made_now else "reused"
        line = f"class folders without split lists -> {made} a {SplitSettings(**_settings(source)).describe()}"
        line += f", kept in {dataset.split_lists}"
    elif layout == PROJECT_LISTS:
        line = "GTZAN's genre folders without split lists -> the project's fault-filtered 8-genre split"
    else:
        line = f"split lists at the root of {dataset.root} -> used as they are"
    tqdm.write(f"data: {line}: {clips}")


def _class_folders(root: Path, options: DataOptions) -> tuple[Dataset, bool | None]:
    """The dataset of class folders, and whether its split was made now (None: not made)."""
    files = audio_files_by_class(root)
    if not files:
        raise UserError(
            f"--data {root}: no split lists and no class sub-folders of audio files "
            "(expected <class>/<file>.wav folders, split lists, or a manifest .csv file)"
        )
    if _is_gtzan(files):
        _refuse_options_of_other_layouts(options, PROJECT_LISTS, root)
        return load_dataset(root, PROJECT_SPLITS_DIR), None
    _refuse_options_of_other_layouts(options, MADE_SPLIT, root)
    return _made_split(root, options.split_settings())


def _made_split(root: Path, settings: SplitSettings) -> tuple[Dataset, bool]:
    folder, made_now = made_split(root, audio_files_by_class(root), settings)
    source = {"layout": MADE_SPLIT, "split": asdict(settings)}
    return load_dataset(root, folder, source), made_now


def _settings(source: dict[str, Any]) -> dict[str, Any]:
    return {**source["split"], "fractions": tuple(source["split"]["fractions"])}


def _is_gtzan(files: dict[str, list[str]]) -> bool:
    """GTZAN as many keep it: its genre folders (at least the project's lists' 8 genres), holding
    most of the clips those lists name. Other files in genre folders (a copy of the synthetic set,
    another collection) get a split of their own instead of lists that name files they lack."""
    listed = [name for split in SPLIT_NAMES for name in (PROJECT_SPLITS_DIR / SPLIT_FILES[split]).read_text().split()]
    if not {name.split("/")[0] for name in listed} <= set(files) <= set(GTZAN_GENRES):
        return False
    present = {f"{genre}/{Path(name).stem}" for genre, names in files.items() for name in names}
    return sum(str(Path(name).with_suffix("")) in present for name in listed) >= len(listed) / 2


def _refuse_options_of_other_layouts(options: DataOptions, layout: str, data: Path) -> None:
    for option, used_by in OPTION_LAYOUTS.items():
        if getattr(options, option) is not None and used_by != layout:
            flag, value = "--" + option.replace("_", "-"), getattr(options, option)
            why = f"applies only to {LAYOUT_NAMES[used_by]}, and {data} is {LAYOUT_NAMES[layout]}"
            raise UserError(f"{flag}: {value!r} {why}")
