"""A search's trials as one table, one row per trial: best epoch, epochs run, status and the values
Optuna chose. The search builds its records from Ray's ResultGrid, the report from the experiment
folder's files; both rank and print trials through the functions here, so they always agree."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

METRIC = "valid_clip_acc"  # what the search maximises, and the leaderboard ranks by
LOSS = "valid_loss"  # breaks ties between trials (and between one trial's epochs)
EPOCH = "training_iteration"  # Ray's count of a trial's reports: one per epoch
ROW_COLUMNS = ["trial", "status", "epochs", "best_epoch", METRIC, LOSS]
# The status of a trial cut off by Ctrl-C or SIGTERM, in the search's leaderboard and the report alike.
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class TrialRecord:
    name: str  # the trial's folder name
    path: str  # its folder: a local path, or a URI for remote storage
    config: dict[str, Any] | None  # Ray's config (nested sections plus Optuna's flat `section.key` values)
    history: pd.DataFrame  # one row per reported epoch, with EPOCH, METRIC and LOSS; empty when none
    errored: bool


def epoch_history(reports: pd.DataFrame | None) -> pd.DataFrame:
    """A trial's reports as one row per epoch, in order; empty when it reported none. An epoch
    reported twice keeps its later report: after a killed driver, Ray resumes a trial from the
    checkpoint its last snapshot knew, so the epochs reported after that snapshot run again."""
    if reports is None or reports.empty or EPOCH not in reports:
        return pd.DataFrame()
    return reports.drop_duplicates(EPOCH, keep="last").sort_values(EPOCH).reset_index(drop=True)


def trial_rows(records: Iterable[TrialRecord], max_epochs: int) -> pd.DataFrame:
    """Per trial: its best epoch by validation clip accuracy (ties: lower validation loss), epochs
    run, status, and the values Optuna chose; best first, trials without an epoch last."""
    table = pd.DataFrame([_row(record, max_epochs) for record in records])
    if table.empty or METRIC not in table:  # no trial reported an epoch: nothing to rank by
        return table
    table["best_epoch"] = table["best_epoch"].astype("Int64")  # stays whole beside trials without one
    return table.sort_values([METRIC, LOSS], ascending=[False, True], na_position="last").reset_index(drop=True)


def _row(record: TrialRecord, max_epochs: int) -> dict[str, Any]:
    history = record.history
    row: dict[str, Any] = {"trial": record.name, "path": record.path}
    if history.empty or METRIC not in history:
        row.update(status="error" if record.errored else "no result", epochs=0)
    else:
        best = history.sort_values([METRIC, LOSS], ascending=[False, True]).iloc[0]
        epochs = int(history[EPOCH].max())
        status = "error" if record.errored else ("finished" if epochs >= max_epochs else "stopped early")
        row.update(status=status, epochs=epochs, best_epoch=int(best[EPOCH]))
        row.update({METRIC: float(best[METRIC]), LOSS: float(best[LOSS])})
    row.update(searched_values(record.config))
    return row


def searched_values(config: dict[str, Any] | None) -> dict[str, Any]:
    """Optuna's flat `section.key` entries of a Ray config; none when the config is unknown (a
    trial that never started)."""
    return {key: value for key, value in (config or {}).items() if "." in key}


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """The trials that reported at least one epoch, best first: the only ones a best can come from."""
    return table.dropna(subset=[METRIC]) if METRIC in table else table.iloc[0:0]


def leaderboard_text(table: pd.DataFrame, limit: int = 10) -> str:
    """The first `limit` rows as plain text: the row columns and the searched values."""
    if table.empty:
        return "(no trials)"
    shown = [c for c in ROW_COLUMNS if c in table] + [c for c in table.columns if "." in c]
    return table[shown].head(limit).to_string(index=False, float_format=lambda v: f"{v:.4g}")
