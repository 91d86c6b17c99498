"""The end of a search in numbers: one row per trial (common.trials), why it ended included, saved
as `leaderboard.csv`, and the best trial's config (common.trials.rank_key) as `best_config.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from common.experiment import BEST_CONFIG_FILE, LEADERBOARD_FILE
from common.trials import (
    INTERRUPTED,
    METRIC,
    TrialRecord,
    epoch_history,
    leaderboard_text,
    ranked,
    read_stops,
    trial_rows,
)
from training.config import trial_config

SHOWN = 10  # trials printed at the end


def trial_records(results: Any, stops: dict[str, dict[str, Any]] | None = None) -> list[TrialRecord]:
    """Ray's ResultGrid as plain records (in the order Ray created the trials), with why each ended."""
    stops = stops or {}
    return [
        TrialRecord(
            name=Path(result.path).name,
            path=result.path,
            config=result.config or _saved_config(result),
            history=epoch_history(result.metrics_dataframe),
            errored=result.error is not None,
            stop=stops.get(Path(result.path).name),
        )
        for result in results
    ]


def _saved_config(result: Any) -> dict[str, Any] | None:
    """The config Ray saved in the trial's folder when it started (`params.json`); None when the
    trial never started. Ray keeps a result's config in the trial's last result, which a resumed
    search can hold without it (a trial restored from a snapshot taken before its first report)."""
    try:
        with result.filesystem.open_input_stream(f"{result.path}/params.json") as stream:
            return json.loads(stream.read())
    except FileNotFoundError:
        return None


def summarize(results: Any, local_dir: Path, max_epochs: int, interrupted: bool = False) -> pd.DataFrame:
    """Print and save the leaderboard and the best config; say how many trials errored and where.
    In a search `interrupted` (Ctrl-C, SIGTERM), a trial cut off while it ran is "interrupted", as
    the report calls it (Ray Tune marks every trial it stops at the end as terminated)."""
    records = trial_records(results, read_stops(local_dir))
    table = trial_rows(records, max_epochs)
    if interrupted and not table.empty:
        cut_off = [Path(r.path).name for r in results if r.error is None and not (r.metrics or {}).get("done")]
        table.loc[table["trial"].isin(cut_off), "status"] = INTERRUPTED
    table.to_csv(Path(local_dir) / LEADERBOARD_FILE, index=False)
    shown = f"top {SHOWN} of {len(table)} trials" if len(table) > SHOWN else f"all {len(table)} trials"
    print(f"\nLeaderboard ({shown}; every column in {Path(local_dir) / LEADERBOARD_FILE}):")
    print(leaderboard_text(table, limit=SHOWN))
    errored = [record for record in records if record.errored]
    if errored:
        print(f"{len(errored)} trial(s) errored; their logs (error.txt) are in:")
        for record in errored:
            print(f"  {record.path}")
    finished = ranked(table)
    if finished.empty:
        print("no trial finished an epoch: nothing to report")
        return table
    best_trial = finished.iloc[0]
    best = next(record for record in records if record.name == best_trial["trial"])
    best_config = {
        "trial": best_trial["trial"],
        "best_epoch": int(best_trial["best_epoch"]),
        METRIC: float(best_trial[METRIC]),
        "config": trial_config(best.config),
    }
    (Path(local_dir) / BEST_CONFIG_FILE).write_text(json.dumps(best_config, indent=2))
    print(f"best: {best_trial['trial']} {METRIC} {best_trial[METRIC]:.4f} at epoch {best_config['best_epoch']}")
    return table
