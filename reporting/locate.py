"""Which experiment a report is about: a folder given as a path, a name looked up in the storage
folder, or (by default) the most recently started experiment there."""

from __future__ import annotations

from pathlib import Path

from common import remote
from common.errors import UserError
from common.experiment import (
    DEFAULT_STORAGE,
    METADATA_FILE,
    Experiment,
    is_uri,
    local_folder,
    read_metadata,
    start_time,
)


def find_experiment(spec: str | None, storage: str | None) -> Path:
    """The experiment folder: `spec` as a path when it exists, else as a name in `storage`;
    without `spec`, the latest experiment in `storage`. Every failure names the path it tried.
    With a URI for `storage`, `spec` names the experiment there: its files are fetched first."""
    if storage and is_uri(storage):
        return _fetched(spec, storage)
    storage_dir = Path(storage or DEFAULT_STORAGE).expanduser().resolve()
    if spec is None:
        return latest_experiment(storage_dir)
    as_path, in_storage = Path(spec).expanduser(), storage_dir / spec
    # A bare name means the storage's experiment, even if the current folder has one of that name.
    if Path(spec).name == spec and (in_storage / METADATA_FILE).is_file():
        folder = in_storage
    elif as_path.exists():
        folder = as_path.resolve()
    else:
        raise UserError(f"experiment {spec!r} not found: neither {as_path.resolve()} nor {in_storage} exists")
    read_metadata(folder)  # a folder that is not an experiment fails here, naming itself
    return folder


def _fetched(spec: str | None, storage: str) -> Path:
    """The local folder of experiment `spec` at URI `storage`, its own files fetched from there."""
    if not spec or Path(spec).name != spec:
        raise UserError(f"--storage {storage}: name the experiment there with --experiment NAME")
    experiment = Experiment(storage, spec, local_folder(storage, spec))
    remote.download(experiment, own_files_only=True)
    if not (experiment.local_dir / METADATA_FILE).is_file():
        raise UserError(f"experiment {experiment.uri} not found (no {METADATA_FILE} there)")
    return experiment.local_dir


def experiments_in(storage_dir: Path) -> list[Path]:
    """Every experiment folder directly inside `storage_dir` (those with an experiment.json)."""
    if not storage_dir.is_dir():
        return []
    return sorted(p for p in storage_dir.iterdir() if (p / METADATA_FILE).is_file())


def latest_experiment(storage_dir: Path) -> Path:
    found = experiments_in(storage_dir)
    if not found:
        raise UserError(f"no experiment found in {storage_dir} (run run_search.py first, or pass --experiment)")
    return max(found, key=started_at)


def started_at(folder: Path) -> tuple[float, str]:
    """When the search started, as recorded in experiment.json; the file's modification time when
    that is unreadable (an older or hand-edited file), so one odd folder never breaks the lookup."""
    try:
        when = start_time(read_metadata(folder))
    except (OSError, UserError):
        when = None
    return when if when is not None else (folder / METADATA_FILE).stat().st_mtime, folder.name
