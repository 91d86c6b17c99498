"""The search's trials as one pandas table, read back from the experiment folder through Ray's
`ExperimentAnalysis`, with the same per-trial rows as the search's own leaderboard."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import UserError
from common.experiment import search_seconds, start_time
from search.leaderboard import METRIC, trial_rows
from training.config import trial_config

log = logging.getLogger(__name__)

# Ray's statuses of a trial that neither ended nor failed: the search was interrupted while it ran.
UNFINISHED_STATUSES = ("PENDING", "RUNNING", "PAUSED")


@dataclass(frozen=True)
class Trials:
    table: pd.DataFrame  # one row per trial, best first (search.leaderboard.trial_rows) plus start order
    histories: dict[str, pd.DataFrame]  # trial folder name -> its progress.csv (one row per epoch)
    configs: dict[str, dict[str, Any]]  # trial folder name -> Ray's config of the trial (params.json)


@dataclass(frozen=True)
class BestTrial:
    name: str
    best_epoch: int
    valid_clip_acc: float
    valid_loss: float
    config: dict[str, Any]  # the trial's saved nested config (sections only, no Optuna flat keys)


def load_trials(folder: Path, max_epochs: int) -> Trials:
    """Every trial of the experiment in `folder`; the table is the leaderboard's, plus the order the
    trials started in, Ray's status, seconds trained and when each trial last reported."""
    analysis = _analysis(folder)
    from ray.tune import ResultGrid

    results = ResultGrid(analysis)
    table = trial_rows(results, max_epochs)
    if table.empty:
        raise UserError(f"{folder}: the experiment has no trials: nothing to report")
    # Ray keeps trials in the order it created (and started) them; its ids and names are random.
    names = [Path(result.path).name for result in results]
    statuses = {Path(trial.path).name: trial.status for trial in analysis.trials}
    histories = {name: _history(result) for name, result in zip(names, results)}
    table["start_order"] = table["trial"].map({name: index for index, name in enumerate(names, start=1)})
    table["ray_status"] = table["trial"].map(statuses)
    interrupted = table["ray_status"].isin(UNFINISHED_STATUSES) & (table["status"] != "error")
    table.loc[interrupted, "status"] = "interrupted"
    table["seconds"] = table["trial"].map({n: _last(h, "time_total_s") for n, h in histories.items()})
    table["last_report"] = table["trial"].map({n: _last(h, "timestamp") for n, h in histories.items()})
    configs = {name: dict(result.config or {}) for name, result in zip(names, results)}
    return Trials(table, histories, configs)


def _analysis(folder: Path) -> Any:
    from ray.tune import ExperimentAnalysis

    # Ray logs a warning per trial folder without metrics; the table says so (status "no result").
    ray_log = logging.getLogger("ray.tune")
    level = ray_log.level
    ray_log.setLevel(logging.ERROR)
    try:
        return ExperimentAnalysis(str(folder))
    except Exception as err:  # Ray raises several types for a folder without its state files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(f"{folder}: no Ray Tune results readable there ({type(err).__name__}: {first_line})") from err
    finally:
        ray_log.setLevel(level)


def _history(result: Any) -> pd.DataFrame:
    history = result.metrics_dataframe
    if history is None or history.empty or "training_iteration" not in history:
        return pd.DataFrame()
    return history.sort_values("training_iteration").reset_index(drop=True)


def _last(history: pd.DataFrame, column: str) -> float:
    return float(history[column].max()) if column in history and not history.empty else float("nan")


def best_trial(trials: Trials, folder: Path) -> BestTrial:
    """The leaderboard's first trial: best validation clip accuracy at any epoch (ASHA cuts trials
    short, so the last epoch would favour trials that ran longest), ties to the lower loss."""
    ranked = trials.table.dropna(subset=[METRIC]) if METRIC in trials.table else trials.table.iloc[0:0]
    if ranked.empty:
        raise UserError(f"{folder}: no trial finished an epoch: nothing to report")
    row = ranked.iloc[0]
    return BestTrial(
        name=row["trial"],
        best_epoch=int(row["best_epoch"]),
        valid_clip_acc=float(row[METRIC]),
        valid_loss=float(row["valid_loss"]),
        config=trial_config(trials.configs[row["trial"]]),
    )


def search_numbers(trials: Trials, metadata: dict[str, Any]) -> dict[str, Any]:
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
        "wall_seconds": _wall_seconds(table, metadata),
        "trial_seconds": float(table["seconds"].sum()),
    }


def _wall_seconds(table: pd.DataFrame, metadata: dict[str, Any]) -> float:
    """The search's own clock (experiment.json's `search_seconds`, one entry per run: a resumed
    search adds one). Older or interrupted experiments lack it: then from the recorded start to the
    last result any trial reported (Ray's whole-second timestamps); NaN when that is missing too."""
    seconds, started = search_seconds(metadata), start_time(metadata)
    if seconds is not None:
        return seconds
    return float("nan") if started is None else float(table["last_report"].max() - started)
