"""report.json: a report's headline numbers for programs, the same as report.md's (a later report
reads a baseline's, `report.py --compare` reads both sides'). NaN is written as null."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from common.partials import atomic_write
from reporting.baselines import HOMEWORK_TEST_CLIPS, code_stamp
from reporting.clips import PREDICTIONS_CSV
from reporting.markdown import ReportData
from reporting.results import per_genre, pooled, spread
from reporting.stats import BINOMIAL_METHOD, BOOTSTRAP_METHOD


def write_numbers(data: ReportData, path: Path) -> Path:
    with atomic_write(path) as file:
        file.write(json.dumps(_plain(numbers(data)), indent=2))
    return path


def numbers(data: ReportData) -> dict[str, Any]:
    """The headline numbers, as report.json holds them (NaN still NaN)."""
    return {
        "experiment": data.metadata["name"],
        "best_trial": data.best.name,
        "config": data.config.to_dict(),
        "valid": spread([run.valid.clip_acc for run in data.standard]),
        "test": spread([run.test.clip_acc for run in data.standard]),
        "best_epochs": [run.epoch for run in data.standard],
        "test_train_valid": spread([run.test.clip_acc for run in data.merged]) if data.merged else None,
        "test_ensemble": data.ensemble_acc,
        "intervals": {**{key: value.to_dict() for key, value in data.intervals.items()}, "method": BOOTSTRAP_METHOD},
        "macro_f1": data.macro_f1,
        "per_class": per_genre(*pooled(data.standard, data.test_labels), data.classes).to_dict(orient="list"),
        "optimism": {
            "search_valid": data.best.valid_clip_acc,
            "retrained_valid": data.intervals["valid"].estimate,
            "optimism": data.optimism,
        },
        "homework": _homework_numbers(data),
        "baseline": _baseline_numbers(data.baseline),
        "predictions": PREDICTIONS_CSV,
        "classes": list(data.classes),
        "dataset": data.metadata["dataset"],
        "code": code_stamp(),  # what a later report checks before reusing this one as its baseline
        "search": data.search,
        "importance": data.importance.values,
        "importance_trials": data.importance.trials,  # the completed trials it rests on (0: none)
        "models": [str(run.model_file) for run in [*data.standard, *data.merged]],
    }


def _homework_numbers(data: ReportData) -> dict[str, Any] | None:
    if data.homework_interval is None:
        return None
    return {**data.homework_interval.to_dict(), "runs": 1, "test_clips": HOMEWORK_TEST_CLIPS, "method": BINOMIAL_METHOD}


def _baseline_numbers(baseline: dict[str, Any] | None) -> dict[str, Any] | None:
    if baseline is None:
        return None
    plain = {key: value for key, value in baseline.items() if key not in ("test_interval", "comparison")}
    if "comparison" in baseline:
        plain["test_interval"] = baseline["test_interval"].to_dict()
        plain["comparison"] = baseline["comparison"].to_dict()
    return plain


def _plain(value: Any) -> Any:
    """NaN (one seed's std) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
