"""What our numbers are compared with, and the comparison: the homework baseline's published test
accuracy (only on its own test split, recognised by the fingerprint of the test clips' names), and
the result of `baseline.yaml` run on the same data.

Rule for `baseline.yaml`'s result: the experiment itself when its space file was named
baseline.yaml; otherwise the most recently started experiment in the same storage folder whose
space file was named baseline.yaml and whose dataset fingerprint equals this experiment's (numbers
from other data are not comparable). Its validation accuracy is its best trial's (leaderboard.csv);
its test accuracy comes from its own report (report/report.json), when `report.py` has made one.
One without a complete report (`report_complete`) is reported first (`report_if_needed`), so that
the comparison pairs it with ours on the same test clips (`against_baseline`); so is one whose report
was made from other data or other code (`why_not_reused`: its dataset fingerprint and `code_stamp` differ
from now). `report.py --no-baseline` leaves the baseline out.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import UserError
from common.experiment import LEADERBOARD_FILE, REPORT_DIR, read_metadata
from common.trials import METRIC
from features.dataset import PROJECT_SPLITS_DIR, SPLIT_FILES
from reporting import clips
from reporting.locate import experiments_in, started_at
from reporting.stats import Interval, accuracy_interval, compare, proportion_interval

HOMEWORK_TEST_ACC = 0.6344  # the homework baseline's published test accuracy on GTZAN (63.44%)
HOMEWORK_TEST_CLIPS = 227  # ... of one run, on the fault-filtered split's 227 test clips
# `clip_list_fingerprint` of those 227 clips: the names in test_filtered.txt of the fault-filtered
# split's 8 homework genres (../shared/gtzan-splits/, the same list as features/splits/).
HOMEWORK_TEST_FINGERPRINT = "143a7f2df1d5b3c742c54a400ec7c5c26fd01cf843ebe2e303917898fda9f2a7"
BASELINE_SPACE = "baseline.yaml"
REPORT_JSON = "report.json"
PROJECT = Path(__file__).resolve().parent.parent
# What a report's numbers depend on besides its data and config: the code of training, the models
# and the features' loading, and the libraries that compute them (report.json's "code").
CODE_FOLDERS = ("training", "models", "features")
CODE_FILES = ("reporting/retrain.py",)
CODE_PACKAGES = ("torch", "numpy", "scikit-learn")


def homework_genres() -> tuple[str, ...]:
    """The 8 genres of the homework's fault-filtered GTZAN split (the project's own split lists)."""
    names = set()
    for split_file in SPLIT_FILES.values():
        lines = (PROJECT_SPLITS_DIR / split_file).read_text().splitlines()
        names |= {line.split("/")[0] for line in lines if line.strip() and not line.startswith("#")}
    return tuple(sorted(names))


def clip_list_fingerprint(clip_ids: Sequence[str]) -> str:
    """SHA-256 of a test split's clip ids (`genre/genre.00042`: the listed names without their
    extension), sorted, one per line."""
    return hashlib.sha256("".join(f"{name}\n" for name in sorted(clip_ids)).encode()).hexdigest()


def homework_baseline(dataset: dict[str, Any], test_clip_ids: Sequence[str] = ()) -> float | None:
    """The published 63.44% applies only to real audio tested on the homework's own 227 test clips
    (the same genres with other clips, or a split made here, are not its test)."""
    same_test = clip_list_fingerprint(test_clip_ids) == HOMEWORK_TEST_FINGERPRINT
    return HOMEWORK_TEST_ACC if same_test and not dataset.get("synthetic") else None


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
    numbers = json.loads(report.read_text()) if report_complete(folder / REPORT_DIR) else {}
    summary["valid"], summary["test"] = numbers.get("valid"), numbers.get("test")  # {"mean", "std", "seeds"}
    return summary


def report_complete(report_dir: Path) -> bool:
    """Whether `report_dir` holds a whole report with per-clip results: report.json, written last
    (reporting/outputs.py), and predictions.csv (which reports of older versions lack)."""
    return (report_dir / REPORT_JSON).is_file() and (report_dir / clips.PREDICTIONS_CSV).is_file()


def code_stamp() -> dict[str, Any]:
    """The code a report is made by: SHA-256 of the project's source files its numbers depend on
    (CODE_FOLDERS' and CODE_FILES' *.py, by path and content) and the versions of CODE_PACKAGES."""
    digest = hashlib.sha256()
    files = [path for folder in CODE_FOLDERS for path in (PROJECT / folder).rglob("*.py")]
    for path in sorted({*files, *(PROJECT / name for name in CODE_FILES)}):
        digest.update(f"{path.relative_to(PROJECT).as_posix()}\n".encode() + path.read_bytes())
    versions = {name: importlib.metadata.version(name) for name in CODE_PACKAGES}
    return {"source_sha256": digest.hexdigest(), "versions": versions}


def why_not_reused(report_dir: Path, fingerprint: str) -> str | None:
    """Why the report in `report_dir` cannot stand for its experiment now (None: it can): missing or
    incomplete, or made from other data (dataset fingerprint) or by other code (`code_stamp`)."""
    if not report_complete(report_dir):
        return "has no complete report"
    try:
        numbers = json.loads((report_dir / REPORT_JSON).read_text())
    except (OSError, ValueError):
        return "has an unreadable report.json"
    if (numbers.get("dataset") or {}).get("fingerprint") != fingerprint:
        return "has a report made from other data"
    if numbers.get("code") != code_stamp():
        return "has a report made by other code (project sources or library versions differ)"
    return None


def report_if_needed(
    baseline: dict[str, Any], seeds: int, report: Callable[[Path, int], object], fingerprint: str | None = None
) -> None:
    """Report a baseline.yaml experiment whose report cannot be reused (`why_not_reused`; `fingerprint`
    None: any complete report is) with `report(folder, seeds)`, our number of seeds; a failure is
    noted in `baseline`, not raised."""
    folder = Path(baseline["folder"])
    if fingerprint is None:
        why = None if report_complete(folder / REPORT_DIR) else "has no complete report"
    else:
        why = why_not_reused(folder / REPORT_DIR, fingerprint)
    if why is None:
        print(f"baseline.yaml experiment {folder}: reusing its report (same data and code)")
        return
    print(f"baseline.yaml experiment {folder} {why}: reporting it first (--seeds {seeds}; --no-baseline skips it)")
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
