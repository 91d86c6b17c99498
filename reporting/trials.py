"""The search's trials as one pandas table, read from the experiment folder's plain files: each
trial folder's params.json (its config), result.json or else progress.csv (one row per epoch) and
whether it holds an error file, and the trials' order and statuses from Ray's
experiment_state-*.json, read as plain JSON. Nothing is unpickled: no *.pkl file is opened and
Ray's ExperimentAnalysis is not used (it unpickles objects embedded in the state file and errored
trials' error.pkl), so a crafted experiment folder cannot run code here."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import UserError
from common.experiment import (
    TRIAL_ERROR_FILES,
    TRIAL_PARAMS_FILE,
    TRIAL_PROGRESS_FILE,
    TRIAL_RESULT_FILE,
    search_seconds,
    start_time,
    trial_folders,
)
from common.trials import METRIC, TrialRecord, epoch_history, leaderboard_text, ranked, read_stops, trial_rows
from common.upstream import TRIAL_ERROR, TRIAL_TERMINATED, newest_run_state, run_state_trials
from training.config import trial_config

log = logging.getLogger(__name__)

# Ray's statuses of a trial that ended; any other (pending, running, paused, or a trial started after
# the state was last saved) means the search was cut off while the trial was under way.
ENDED_STATUSES = (TRIAL_TERMINATED, TRIAL_ERROR)


@dataclass(frozen=True)
class Trials:
    table: pd.DataFrame  # one row per trial, best first (common.trials.trial_rows) plus start order
    histories: dict[str, pd.DataFrame]  # trial folder name -> one row per reported epoch
    configs: dict[str, dict[str, Any]]  # trial folder name -> Ray's config of the trial (params.json)


@dataclass(frozen=True)
class BestTrial:
    name: str
    best_epoch: int
    valid_clip_acc: float
    valid_loss: float
    config: dict[str, Any]  # the trial's saved nested config (sections only, no Optuna flat keys)


@dataclass(frozen=True)
class ListedTrial:
    """One trial as Ray's saved state lists it (plain JSON fields only)."""

    status: str | None
    config: dict[str, Any] | None


def load_trials(folder: Path, max_epochs: int) -> Trials:
    """Every trial of the experiment in `folder`: those Ray's state lists, in the order Ray created
    (and started) them, then trial folders it did not list yet. The table is the leaderboard's, plus
    that order, Ray's status, seconds trained and when each trial last reported."""
    listed = listed_trials(folder)
    names = [*listed, *sorted(p.name for p in trial_folders(folder) if p.name not in listed)]
    if not names:
        raise UserError(f"{folder}: the experiment has no trials: nothing to report")
    stops = read_stops(folder)
    records = [_record(folder / name, listed.get(name), stops.get(name)) for name in names]
    table = trial_rows(records, max_epochs)
    histories = {record.name: record.history for record in records}
    table["start_order"] = table["trial"].map({name: index for index, name in enumerate(names, start=1)})
    table["ray_status"] = table["trial"].map({name: trial.status for name, trial in listed.items()})
    interrupted = ~table["ray_status"].isin(ENDED_STATUSES) & (table["status"] != "error")
    table.loc[interrupted, "status"] = "interrupted"
    table["seconds"] = table["trial"].map({n: _last(h, "time_total_s") for n, h in histories.items()})
    table["last_report"] = table["trial"].map({n: _last(h, "timestamp") for n, h in histories.items()})
    configs = {record.name: dict(record.config or {}) for record in records}
    return Trials(table, histories, configs)


def listed_trials(folder: Path) -> dict[str, ListedTrial]:
    """Trial folder name -> status and config, from Ray's newest snapshot of the run (none before
    Ray first saved it; common.upstream says why the report reads Ray's snapshot). Each trial's
    entry is itself a JSON text; values Ray could not write as JSON are pickled inside it, and stay
    opaque dicts here."""
    path = newest_run_state(folder)
    if path is None:
        return {}
    listed = {name: _listed(entry) for name, entry in run_state_trials(path, "relative_logdir").items()}
    for name in listed:
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
            raise UserError(f"{path}: trial folder {name!r} is not a folder name inside the experiment")
    return listed


def _listed(entry: dict[str, Any]) -> ListedTrial:
    config = entry.get("config")
    return ListedTrial(status=entry.get("status"), config=config if isinstance(config, dict) else None)


def _record(trial_dir: Path, listed: ListedTrial | None, stop: dict[str, Any] | None = None) -> TrialRecord:
    """A trial as the search's leaderboard sees it. Errored as Ray decides it: an error file in a
    trial that did not end well (a failed attempt that a retry recovered leaves one too)."""
    status = listed.status if listed else None
    params = trial_dir / TRIAL_PARAMS_FILE
    config = _json_object(params) if params.is_file() else (listed.config if listed else None)
    has_error = any((trial_dir / name).is_file() for name in TRIAL_ERROR_FILES)
    errored = status == TRIAL_ERROR or (status != TRIAL_TERMINATED and has_error)
    return TrialRecord(trial_dir.name, str(trial_dir), config, _history(trial_dir), errored, stop)


def _json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not readable as JSON ({type(err).__name__}: {err})") from err
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _history(trial_dir: Path) -> pd.DataFrame:
    """One row per reported epoch, as Ray reads them: result.json first, else progress.csv."""
    rows = _result_rows(trial_dir / TRIAL_RESULT_FILE) if (trial_dir / TRIAL_RESULT_FILE).is_file() else []
    if rows:
        history = pd.json_normalize(rows, sep="/")
    elif (trial_dir / TRIAL_PROGRESS_FILE).is_file() and (trial_dir / TRIAL_PROGRESS_FILE).stat().st_size:
        history = pd.read_csv(trial_dir / TRIAL_PROGRESS_FILE, dtype={"trial_id": str})
    else:
        return pd.DataFrame()
    return epoch_history(history)


def _result_rows(path: Path) -> list[dict[str, Any]]:
    """result.json's rows without their copies of the config. A search killed while Ray wrote a
    row leaves that last line cut off: it is left out, with a warning."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except ValueError as err:
            if number < len(lines):
                raise UserError(f"{path}: line {number} is not JSON ({err})") from err
            log.warning("%s: last line cut off (the search was killed while writing it): left out", path)
            break
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {number} is not a JSON object")
        rows.append({key: value for key, value in row.items() if key != "config"})
    return rows


def _last(history: pd.DataFrame, column: str) -> float:
    return float(history[column].max()) if column in history and not history.empty else float("nan")


def require_an_epoch(trials: Trials, folder: Path) -> None:
    """Before any training: when no trial reported an epoch (every trial errored, or the search was
    cut off first), print the trials there are and stop with one line saying so."""
    table = trials.table
    if not ranked(table).empty:
        return
    print(f"Trials of {folder} (none reported an epoch):")
    print(leaderboard_text(table, limit=len(table)))
    outcomes = ", ".join(f"{count} {status}" for status, count in table["status"].value_counts().items())
    raise UserError(f"{folder}: no trial finished an epoch ({len(table)} trial(s): {outcomes}): nothing to report")


def best_trial(trials: Trials, folder: Path) -> BestTrial:
    """The leaderboard's first trial: best validation clip accuracy at any epoch (ASHA cuts trials
    short, so the last epoch would favour trials that ran longest), ties as common.trials.rank_key says."""
    finished = ranked(trials.table)
    if finished.empty:
        raise UserError(f"{folder}: no trial finished an epoch: nothing to report")
    row = finished.iloc[0]
    return BestTrial(
        name=row["trial"],
        best_epoch=int(row["best_epoch"]),
        valid_clip_acc=float(row[METRIC]),
        valid_loss=float(row["valid_loss"]),
        config=trial_config(trials.configs[row["trial"]]),
    )


def search_numbers(trials: Trials, metadata: dict[str, Any], folder: Path) -> dict[str, Any]:
    """How the search went: trials by outcome, epochs run against the full budget, time taken."""
    table, max_epochs = trials.table, int(metadata["search"]["max_epochs"])
    counts = table["status"].value_counts()
    epochs_run = int(table["epochs"].sum())
    budget = len(table) * max_epochs
    return {
        "trials": len(table),
        "finished": int(counts.get("finished", 0)),
        "stopped_early": int(counts.get("stopped early", 0)),
        "errored": int(counts.get("error", 0)),
        "interrupted": int(counts.get("interrupted", 0)),
        "no_result": int(counts.get("no result", 0)),
        "epochs_run": epochs_run,
        "epoch_budget": budget,
        "epochs_fraction": epochs_run / budget if budget else float("nan"),
        "max_epochs": max_epochs,
        "scheduler": metadata["search"].get("scheduler", "asha"),
        "wall_seconds": _wall_seconds(table, metadata, folder),
        "trial_seconds": float(table["seconds"].sum()),
    }


def _wall_seconds(table: pd.DataFrame, metadata: dict[str, Any], folder: Path) -> float:
    """The search's own clock (one entry per run: a resumed search adds one). Older experiments
    lack it: then from the recorded start to the last result any trial reported (Ray's
    whole-second timestamps); NaN when that is missing too."""
    seconds, started = search_seconds(folder), start_time(metadata)
    if seconds is not None:
        return seconds
    return float("nan") if started is None else float(table["last_report"].max() - started)
