"""The experiment folder's format, shared by the search and the report: `<storage>/<name>/` holds
Ray Tune's trials and state, the Optuna study, a copy of the space file, the leaderboard, the best
config, the report, and `experiment.json` saying what ran (plugin files and their hashes included)
on which data and for how long.

This module alone names the folder's files and reads and writes `experiment.json`."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow.fs

from common.errors import UserError
from common.partials import atomic_write
from common.safe_load import load_json
from common.upstream import RUN_STATE_PATTERN

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORAGE = PROJECT_ROOT / "runs"
METADATA_FILE = "experiment.json"
SPACE_COPY = "space.yaml"
STUDY_FILE = "study.sqlite"
LEADERBOARD_FILE = "leaderboard.csv"  # one row per trial (common.trials.trial_rows), written by the search
BEST_CONFIG_FILE = "best_config.json"
REPORT_DIR = "report"
# One line per run of the search (the first, then each resume): its wall time in seconds. Not in
# experiment.json: Ray Tune copies a resumed experiment's top-level .json files into its staging
# folder and writes them back, stale and not atomically, at every snapshot of the run.
RUN_SECONDS_FILE = "search_seconds.txt"
STARTED_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
# Ray Tune's own files: its Tuner, the snapshots of its run (named and read by common.upstream),
# and in each trial folder its config, its epochs and its errors.
TUNER_FILE = "tuner.pkl"
TRIAL_PARAMS_FILE = "params.json"
TRIAL_RESULT_FILE = "result.json"  # one JSON object per line, one line per reported epoch
TRIAL_PROGRESS_FILE = "progress.csv"  # the same rows as a table: read when result.json is missing or empty
TRIAL_ERROR_FILES = ("error.txt", "error.pkl")  # only their presence is checked: error.pkl is never opened
ORPHANS_DIR = "orphaned-trials"
CONFIG_FAILURES_DIR = "config-failures"  # <trial id>.txt: trials that failed for their config, not retried
LEASE_FILE = "driver.lease"  # the live driver's (common.driver_lease): one driver per experiment folder
# The sha256 of the space file's copy, recorded in experiment.json: a resume refuses an edited copy.
SPACE_HASH_KEY = "space_sha256"


@dataclass(frozen=True)
class Experiment:
    storage: str  # a local folder or a URI Ray supports (s3://…)
    name: str
    local_dir: Path  # where our own files go: the experiment folder itself, or a local mirror for URIs

    @property
    def uri(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def study_url(self) -> str:
        return f"sqlite:///{self.local_dir / STUDY_FILE}"


@dataclass(frozen=True)
class RecordedDataset:
    """The data a search ran on, as its experiment.json records it."""

    root: Path
    fingerprint: str
    described: dict[str, Any]  # all that was recorded, how its split came about included


def is_uri(storage: str) -> bool:
    return "://" in storage


def locate(storage: str | None, name: str | None, resume: bool, space_path: Path | None = None) -> Experiment:
    """Where the experiment lives; refuses to reuse a name without `--resume`, or resume nothing.
    Without a name, a new experiment is named after its space file and the time. Creates nothing."""
    storage = str(storage or DEFAULT_STORAGE)
    if not name:
        if resume or space_path is None:
            raise UserError("--resume needs --name: the experiment to continue")
        name = f"{space_path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    local = local_folder(storage, name)
    exists = (local / METADATA_FILE).is_file()
    if exists and not resume:
        raise UserError(f"experiment {local} already exists: pass --resume to continue it, or another --name")
    if resume and not exists:
        raise UserError(f"experiment {local} not found: nothing to resume")
    if not resume and local.exists() and any(p.name != LEASE_FILE for p in local.iterdir()):
        raise UserError(f"{local} exists and is not an experiment: choose another --name")
    storage = storage if is_uri(storage) else str(Path(storage).expanduser().resolve())
    return Experiment(storage, name, local)


def local_folder(storage: str, name: str) -> Path:
    """The experiment's folder, or for a URI the local folder of the driver's own files."""
    return DEFAULT_STORAGE / name if is_uri(storage) else Path(storage).expanduser().resolve() / name


def trial_folders(local_dir: Path) -> list[Path]:
    """The folders Ray Tune made for trials (those holding a trial's params.json)."""
    return sorted(p.parent for p in Path(local_dir).glob(f"*/{TRIAL_PARAMS_FILE}"))


def has_run_state(experiment: Experiment) -> bool:
    """Whether Ray Tune saved its Tuner and a snapshot of the run (what `Tuner.restore` needs), in
    the experiment folder or at its URI."""
    filesystem, path = pyarrow.fs.FileSystem.from_uri(experiment.uri)
    found = filesystem.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    names = [PurePosixPath(info.path).name for info in found]
    return TUNER_FILE in names and any(fnmatch.fnmatch(name, RUN_STATE_PATTERN) for name in names)


def clear_run_state(local_dir: Path) -> None:
    """Remove all but experiment.json, the space copy, the runs' wall times and the driver's
    lease: what a start cut short left behind."""
    for path in Path(local_dir).iterdir():
        if path.name not in (METADATA_FILE, SPACE_COPY, RUN_SECONDS_FILE, LEASE_FILE):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def write_metadata(
    experiment: Experiment, space_path: Path, search: dict, dataset: dict, stores: dict, plugins: list | None = None
) -> None:
    """Record what the search runs: space (and a copy of its file), search settings, dataset (with
    fingerprint), stores, plugin files (`{file, sha256}` each). The folder is created here."""
    experiment.local_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(space_path, experiment.local_dir / SPACE_COPY)
    metadata = {
        "name": experiment.name,
        "storage": experiment.storage,
        "space_file": str(space_path),
        SPACE_HASH_KEY: file_sha256(experiment.local_dir / SPACE_COPY),
        "search": search,
        "dataset": dataset,
        "stores": {setting.name: str(path) for setting, path in stores.items()},
        "plugins": list(plugins or []),
        "started": time.strftime(STARTED_FORMAT),
        "command": sys.argv,
    }
    _write(experiment.local_dir, metadata)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_metadata(local_dir: Path) -> dict[str, Any]:
    path = Path(local_dir) / METADATA_FILE
    if not path.is_file():
        raise UserError(f"{local_dir} is not an experiment folder (no {METADATA_FILE})")
    return load_json(path, "an experiment record")  # within a size limit: it may come from shared storage


def recorded_dataset(local_dir: Path) -> RecordedDataset:
    dataset = read_metadata(local_dir).get("dataset") or {}
    if not dataset.get("root") or not dataset.get("fingerprint"):
        raise UserError(f"{Path(local_dir) / METADATA_FILE}: dataset.root and dataset.fingerprint are not recorded")
    return RecordedDataset(Path(dataset["root"]), dataset["fingerprint"], dataset)


def start_run(local_dir: Path) -> int:
    """A new run of the search (the first, or a resume): a wall-time entry of its own; its index."""
    runs = [*run_seconds(local_dir), 0.0]
    _write_run_seconds(local_dir, runs)
    return len(runs) - 1


def record_wall_time(local_dir: Path, run: int, seconds: float) -> None:
    """Set run `run`'s wall time so far: recorded while it runs, so a killed run still counts."""
    runs = run_seconds(local_dir)
    runs[run] = round(seconds, 2)
    _write_run_seconds(local_dir, runs)


def run_seconds(local_dir: Path) -> list[float]:
    """The wall time of each run of the search so far (empty when none was recorded)."""
    path = Path(local_dir) / RUN_SECONDS_FILE
    if not path.is_file():
        return []
    try:
        return [float(line) for line in path.read_text().split()]
    except ValueError as err:
        raise UserError(f"{path}: not one number per line ({err})") from err


def search_seconds(local_dir: Path) -> float | None:
    """The search's wall time over all its runs (first and resumed ones); None if not recorded."""
    runs = run_seconds(local_dir)
    return float(sum(runs)) if runs else None


def _write_run_seconds(local_dir: Path, runs: list[float]) -> None:
    _replace(Path(local_dir) / RUN_SECONDS_FILE, "".join(f"{seconds}\n" for seconds in runs))


def start_time(metadata: dict[str, Any]) -> float | None:
    """When the search started (seconds since the epoch); None if not recorded in a known form."""
    try:
        return datetime.strptime(metadata["started"], STARTED_FORMAT).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def _write(local_dir: Path, metadata: dict[str, Any]) -> None:
    _replace(Path(local_dir) / METADATA_FILE, json.dumps(metadata, indent=2))


def _replace(path: Path, text: str) -> None:
    # Written whole and renamed into place: a driver killed mid-write leaves the previous file.
    with atomic_write(path) as file:
        file.write(text)
