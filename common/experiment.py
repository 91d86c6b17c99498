"""An experiment folder: `<storage>/<name>/`, holding Ray Tune's trials, the Optuna study
(`study.sqlite`), a copy of the space file, and `experiment.json` saying what ran on which data."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORAGE = PROJECT_ROOT / "runs"
METADATA_FILE = "experiment.json"
SPACE_COPY = "space.yaml"
STUDY_FILE = "study.sqlite"
LEADERBOARD_FILE = "leaderboard.csv"  # one row per trial (common.trials.trial_rows), written by the search
BEST_CONFIG_FILE = "best_config.json"


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


def is_uri(storage: str) -> bool:
    return "://" in storage


def locate(storage: str | None, name: str | None, resume: bool, space_path: Path | None = None) -> Experiment:
    """Where the experiment lives; refuses to reuse a name without `--resume`, or resume nothing.
    Without a name, a new experiment is named after its space file and the time."""
    storage = str(storage or DEFAULT_STORAGE)
    if not name:
        if resume or space_path is None:
            raise UserError("--resume needs --name: the experiment to continue")
        name = f"{space_path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    local = DEFAULT_STORAGE / name if is_uri(storage) else Path(storage).expanduser().resolve() / name
    exists = (local / METADATA_FILE).is_file()
    if exists and not resume:
        raise UserError(f"experiment {local} already exists: pass --resume to continue it, or another --name")
    if resume and not exists:
        raise UserError(f"experiment {local} not found: nothing to resume")
    if not resume and local.exists() and any(local.iterdir()):
        raise UserError(f"{local} exists and is not an experiment: choose another --name")
    local.mkdir(parents=True, exist_ok=True)
    storage = storage if is_uri(storage) else str(Path(storage).expanduser().resolve())
    return Experiment(storage, name, local)


def write_metadata(experiment: Experiment, space_path: Path, space: Any, dataset: dict, stores: dict) -> None:
    """Record what the search ran: space, search settings, dataset (with fingerprint), stores."""
    shutil.copyfile(space_path, experiment.local_dir / SPACE_COPY)
    metadata = {
        "name": experiment.name,
        "storage": experiment.storage,
        "space_file": str(space_path),
        "search": asdict(space.search),
        "dataset": dataset,
        "stores": {setting.name: str(path) for setting, path in stores.items()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
    }
    (experiment.local_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2))


def read_metadata(local_dir: Path) -> dict[str, Any]:
    path = Path(local_dir) / METADATA_FILE
    if not path.is_file():
        raise UserError(f"{local_dir} is not an experiment folder (no {METADATA_FILE})")
    return json.loads(path.read_text())


def record_wall_time(local_dir: Path, seconds: float) -> None:
    """Add this run's search wall time (a resumed search adds a second entry)."""
    path = Path(local_dir) / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata.setdefault("search_seconds", []).append(round(seconds, 2))
    path.write_text(json.dumps(metadata, indent=2))
