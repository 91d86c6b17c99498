"""A search's trials as one table, one row per trial: best epoch, epochs run, status and the values
Optuna chose. The search builds its records from Ray's ResultGrid, the report from the experiment
folder's files; both rank and print trials through the functions here, so they always agree."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

METRIC = "valid_clip_acc"  # what the search maximises, and the leaderboard ranks by
LOSS = "valid_loss"  # breaks ties between trials (and between one trial's epochs)
EPOCH = "training_iteration"  # Ray's count of a trial's reports: one per epoch
# Why a trial ended, and ASHA's numbers when a rung cut it (search.asha): the leaderboard's columns.
STOP_COLUMNS = ["stop_reason", "rung", "cutoff"]
STOPS_FILE = "stops.json"  # trial folder name -> its STOP_COLUMNS, written by the search as trials end
ROW_COLUMNS = ["trial", "status", "epochs", "best_epoch", METRIC, LOSS, *STOP_COLUMNS]
# The status of a trial cut off by Ctrl-C or SIGTERM, in the search's leaderboard and the report alike.
INTERRUPTED = "interrupted"


TIE_RULE = "ties to the lower validation loss at that epoch, then the earlier epoch, then the trial created first"


def rank_key(accuracy: float, loss: float | None, epoch: int, order: int) -> tuple[float, float, int, int]:
    """The one rule for "best", everywhere (live line, gauges, leaderboard, best_config.json,
    report): the highest validation clip accuracy; ties go to the lower validation loss at that
    epoch, then to the one reached at the earlier epoch, then to the trial created first. The
    smallest key is best: for `min()` and sorting, between trials and between one trial's epochs."""
    return (-accuracy, float("inf") if loss is None or loss != loss else loss, epoch, order)


@dataclass(frozen=True)
class TrialRecord:
    name: str  # the trial's folder name
    path: str  # its folder: a local path, or a URI for remote storage
    config: dict[str, Any] | None  # Ray's config (nested sections plus Optuna's flat `section.key` values)
    history: pd.DataFrame  # one row per reported epoch, with EPOCH, METRIC and LOSS; empty when none
    errored: bool
    stop: dict[str, Any] | None = None  # why it ended (search.asha.StopRecord.as_row): STOP_COLUMNS


def epoch_history(reports: pd.DataFrame | None) -> pd.DataFrame:
    """A trial's reports as one row per epoch, in order; empty when it reported none. An epoch
    reported twice keeps its later report: after a killed driver, Ray resumes a trial from the
    checkpoint its last snapshot knew, so the epochs reported after that snapshot run again."""
    if reports is None or reports.empty or EPOCH not in reports:
        return pd.DataFrame()
    return reports.drop_duplicates(EPOCH, keep="last").sort_values(EPOCH).reset_index(drop=True)


def trial_rows(records: Iterable[TrialRecord], max_epochs: int) -> pd.DataFrame:
    """Per trial: its best epoch (rank_key), epochs run, status, why it stopped, and the values
    Optuna chose; best first (rank_key, `records` in the order Ray created the trials), trials
    without an epoch last."""
    rows = [_row(record, max_epochs) for record in records]
    table = pd.DataFrame(rows)
    if table.empty or METRIC not in table:  # no trial reported an epoch: nothing to rank by
        return table
    table["best_epoch"] = table["best_epoch"].astype("Int64")  # stays whole beside trials without one
    if "rung" in table:
        table["rung"] = table["rung"].astype("Int64")
        table["cutoff"] = pd.to_numeric(table["cutoff"])
    order = sorted(range(len(rows)), key=lambda i: _row_key(rows[i], i))
    return table.iloc[order].reset_index(drop=True)


def _row_key(row: dict[str, Any], order: int) -> tuple[int, tuple]:
    if row.get(METRIC) is None:
        return (1, (order,))
    return (0, rank_key(row[METRIC], row.get(LOSS), row["best_epoch"], order))


def _row(record: TrialRecord, max_epochs: int) -> dict[str, Any]:
    history = record.history
    row: dict[str, Any] = {"trial": record.name, "path": record.path}
    if history.empty or METRIC not in history:
        row.update(status="error" if record.errored else "no result", epochs=0)
    else:
        loss = history[LOSS] if LOSS in history else [None] * len(history)
        keys = [rank_key(*values, 0) for values in zip(history[METRIC], loss, history[EPOCH], strict=True)]
        best = history.iloc[keys.index(min(keys))]
        epochs = int(history[EPOCH].max())
        status = "error" if record.errored else ("finished" if epochs >= max_epochs else "stopped early")
        row.update(status=status, epochs=epochs, best_epoch=int(best[EPOCH]))
        row.update({METRIC: float(best[METRIC]), LOSS: float(best[LOSS]) if LOSS in best else None})
    row.update(record.stop or {})
    row.update(searched_values(record.config))
    return row


def read_stops(local_dir: Path) -> dict[str, dict[str, Any]]:
    """Why each trial ended (STOPS_FILE), by trial folder name; empty for a search without it."""
    path = Path(local_dir) / STOPS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def searched_values(config: dict[str, Any] | None) -> dict[str, Any]:
    """Optuna's flat `section.key` entries of a Ray config; none when the config is unknown (a
    trial that never started)."""
    return {key: value for key, value in (config or {}).items() if "." in key}


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The trials that reported at least one epoch, best first: the only ones a best can come from."""
    return table.dropna(subset=[METRIC]) if METRIC in table else table.iloc[0:0]


def leaderboard_text(table: pd.DataFrame, limit: int = 10, width: int = 100) -> str:
    """The first `limit` rows as plain text within `width` columns: the row columns under short
    headings, the last ones left out where they do not fit (every value is in the CSV)."""
    if table.empty:
        return "(no trials)"
    shown = table[[c for c in ROW_COLUMNS if c in table]].head(limit).rename(columns=SHORT_HEADINGS)
    for column in shown.columns[shown.dtypes == "Int64"]:  # blank, not <NA>, where a trial has none
        shown[column] = shown[column].astype(object).where(shown[column].notna(), "")
    while True:
        text = shown.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
        if max(map(len, text.splitlines())) <= width or len(shown.columns) <= 2:
            return text
        shown = shown.iloc[:, :-1]


SHORT_HEADINGS = {"best_epoch": "best_ep", METRIC: "acc", LOSS: "loss", "stop_reason": "stopped"}
