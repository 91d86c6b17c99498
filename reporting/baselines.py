"""What our numbers are compared with, and the comparison: the homework baseline's published test
accuracy (only on GTZAN's 8 homework genres), and the result of `baseline.yaml` run on the same data.

Rule for `baseline.yaml`'s result: the experiment itself when its space file was named
baseline.yaml; otherwise the most recently started experiment in the same storage folder whose
space file was named baseline.yaml and whose dataset fingerprint equals this experiment's (numbers
from other data are not comparable). Its validation accuracy is its best trial's (leaderboard.csv);
its test accuracy comes from its own report (report/report.json), when `report.py` has made one.
One without per-clip test results is reported first (`report_if_needed`), so that the comparison
pairs it with ours on the same test clips (`against_baseline`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import UserError
from common.experiment import LEADERBOARD_FILE, REPORT_DIR, read_metadata
from common.trials import METRIC
from features.dataset import MADE_SPLIT, MANIFEST, PROJECT_SPLITS_DIR, SPLIT_FILES
from reporting import clips
from reporting.locate import experiments_in, started_at
from reporting.stats import Interval, accuracy_interval, compare, proportion_interval

HOMEWORK_TEST_ACC = 0.6344  # the homework baseline's published test accuracy on GTZAN (63.44%)
HOMEWORK_TEST_CLIPS = 227  # ... of one run, on the fault-filtered split's 227 test clips
BASELINE_SPACE = "baseline.yaml"
REPORT_JSON = "report.json"


def homework_genres() -> tuple[str, ...]:
    """The 8 genres of the homework's fault-filtered GTZAN split (the project's own split lists)."""
    names = set()
    for split_file in SPLIT_FILES.values():
        lines = (PROJECT_SPLITS_DIR / split_file).read_text().splitlines()
        names |= {line.split("/")[0] for line in lines if line.strip() and not line.startswith("#")}
    return tuple(sorted(names))


def homework_baseline(dataset: dict[str, Any]) -> float | None:
    """The published 63.44% applies only to real GTZAN with the homework's genres, split by lists
    (not by a split made here or a manifest: other clips and splits than the homework's)."""
    own_split = (dataset.get("source") or {}).get("layout") in (MADE_SPLIT, MANIFEST)
    genres = tuple(sorted(dataset.get("classes", [])))
    is_gtzan = not dataset.get("synthetic") and not own_split and genres == homework_genres()
    return HOMEWORK_TEST_ACC if is_gtzan else None


def homework_interval(accuracy: float | None) -> Interval | None:
    """The published accuracy's own 95% interval: one run on its 227 test clips."""
    return proportion_interval(accuracy, HOMEWORK_TEST_CLIPS) if accuracy is not None else None


def is_baseline(metadata: dict[str, Any]) -> bool:
    return Path(str(metadata.get("space_file", ""))).name == BASELINE_SPACE


def baseline_experiment(folder: Path, metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The baseline.yaml experiment to compare with (see the module's rule), summarised; None if none."""
    if is_baseline(metadata):
        return None  # this experiment is the baseline: its own numbers are the comparison
    fingerprint = metadata["dataset"]["fingerprint"]
    candidates = []
    for sibling in experiments_in(folder.parent):
        try:
            other = read_metadata(sibling)
        except (OSError, UserError):
            continue
        if sibling != folder and is_baseline(other) and other.get("dataset", {}).get("fingerprint") == fingerprint:
            candidates.append(sibling)
    if not candidates:
        return None
    return _summary(max(candidates, key=started_at))


def _summary(folder: Path) -> dict[str, Any]:
    """Its best trial's validation accuracy in the search; its report's retrained numbers if any."""
    summary: dict[str, Any] = {"name": folder.name, "folder": str(folder), "search_valid": None}
    leaderboard = folder / LEADERBOARD_FILE
    if leaderboard.is_file():
        table = pd.read_csv(leaderboard)
        if METRIC in table and table[METRIC].notna().any():
            summary["search_valid"] = float(table[METRIC].max())
    report = folder / REPORT_DIR / REPORT_JSON
    numbers = json.loads(report.read_text()) if report.is_file() else {}
    summary["valid"], summary["test"] = numbers.get("valid"), numbers.get("test")  # {"mean", "std", "seeds"}
    return summary


def report_if_needed(baseline: dict[str, Any], seeds: int, report: Callable[[Path, int], object]) -> None:
    """Report a baseline.yaml experiment that has no per-clip test results (never reported, or
    reported before they were kept) with `report(folder, seeds)`, our number of seeds; a failure is
    noted in `baseline`, not raised."""
    folder = Path(baseline["folder"])
    if (folder / REPORT_DIR / clips.PREDICTIONS_CSV).is_file():
        return
    print(f"baseline.yaml experiment {folder} has no per-clip test results: reporting it first ({seeds} seeds)")
    try:
        report(folder, seeds)
    except UserError as err:  # our own report goes on: its comparison says why the baseline is missing
        baseline["unpaired"] = f"reporting it failed: {err}"


def against_baseline(baseline: dict[str, Any], ours: clips.ClipResults) -> dict[str, Any]:
    """The baseline's reported numbers and the paired comparison on our test clips."""
    report_dir = Path(baseline["folder"]) / REPORT_DIR
    if "unpaired" in baseline:
        return {}
    try:
        theirs = clips.read(report_dir / clips.PREDICTIONS_CSV, "test")
    except UserError as err:  # our results stand: the comparison says why it is missing
        return {"unpaired": str(err)}
    if theirs.clip_ids != ours.clip_ids:
        return {"unpaired": f"its test clips differ from ours ({report_dir / clips.PREDICTIONS_CSV})"}
    numbers = json.loads((report_dir / REPORT_JSON).read_text())
    return {
        "valid": numbers.get("valid"),
        "test": numbers.get("test"),
        "test_interval": accuracy_interval(theirs.correct),
        "comparison": compare(
            ours.correct, theirs.correct, ours.ensemble_correct, theirs.ensemble_correct, "the baseline"
        ),
    }
