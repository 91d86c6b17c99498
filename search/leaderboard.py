"""The end of a search in numbers: one row per trial (best epoch, epochs run, searched values),
saved as `leaderboard.csv`, and the best trial's config as `best_config.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from common.experiment import BEST_CONFIG_FILE, LEADERBOARD_FILE
from training.config import trial_config

METRIC = "valid_clip_acc"


def trial_rows(results: Any, max_epochs: int) -> pd.DataFrame:
    """Per trial: its best epoch by validation clip accuracy (ties: lower validation loss), epochs
    run, status, and the values Optuna chose (the config's flat `section.key` entries)."""
    rows = [_row(result, max_epochs) for result in results]
    table = pd.DataFrame(rows)
    if table.empty or METRIC not in table:  # no trial reported an epoch: nothing to rank by
        return table
    return table.sort_values([METRIC, "valid_loss"], ascending=[False, True], na_position="last").reset_index(drop=True)


def _row(result: Any, max_epochs: int) -> dict[str, Any]:
    history = result.metrics_dataframe
    row: dict[str, Any] = {"trial": Path(result.path).name, "path": result.path}
    if history is None or history.empty or METRIC not in history:
        row.update(status="error" if result.error else "no result", epochs=0)
    else:
        best = history.sort_values([METRIC, "valid_loss"], ascending=[False, True]).iloc[0]
        epochs = int(history["training_iteration"].max())
        status = "error" if result.error else ("finished" if epochs >= max_epochs else "stopped early")
        row.update(status=status, epochs=epochs, best_epoch=int(best["training_iteration"]))
        row.update({METRIC: float(best[METRIC]), "valid_loss": float(best["valid_loss"])})
    row.update({key: value for key, value in result.config.items() if "." in key})
    return row


def summarize(results: Any, local_dir: Path, max_epochs: int) -> pd.DataFrame:
    """Print and save the leaderboard and the best config; say how many trials errored and where."""
    table = trial_rows(results, max_epochs)
    table.to_csv(Path(local_dir) / LEADERBOARD_FILE, index=False)
    shown = [c for c in table.columns if c != "path"]
    print(f"\nLeaderboard (top 10 of {len(table)}; all in {Path(local_dir) / LEADERBOARD_FILE}):")
    print(table[shown].head(10).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    errored = [r for r in results if r.error]
    if errored:
        print(f"{len(errored)} trial(s) errored; their logs (error.txt) are in:")
        for result in errored:
            print(f"  {result.path}")
    finished = table.dropna(subset=[METRIC]) if METRIC in table else table.iloc[0:0]
    if finished.empty:
        print("no trial finished an epoch: nothing to report")
        return table
    best_trial = finished.iloc[0]
    best = next(r for r in results if Path(r.path).name == best_trial["trial"])
    best_config = {
        "trial": best_trial["trial"],
        "best_epoch": int(best_trial["best_epoch"]),
        METRIC: float(best_trial[METRIC]),
        "config": trial_config(best.config),
    }
    (Path(local_dir) / BEST_CONFIG_FILE).write_text(json.dumps(best_config, indent=2))
    print(f"best: {best_trial['trial']} {METRIC} {best_trial[METRIC]:.4f} at epoch {best_config['best_epoch']}")
    return table
