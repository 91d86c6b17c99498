"""One report from start to end (`python report.py`): the steps in order, each done by the module
named for its job, from finding the experiment to writing report.md and printing it.

Find the experiment and pick its best trial (locate.py, trials.py); report its baseline.yaml sibling
first if that has no per-clip results (baselines.py); retrain and test the best trial (retrain.py);
keep each clip's result per seed in predictions.csv (clips.py), measure the intervals (results.py)
and the paired comparison with the baseline (baselines.py); draw the figures (figures.py); write
report.md (markdown.py) and report.json (report_json.py), the same numbers for programs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import remote
from common.errors import UserError
from common.experiment import REPORT_DIR, Experiment, is_uri, read_metadata
from common.partials import atomic_write
from reporting import clips
from reporting.baselines import (
    REPORT_JSON,
    against_baseline,
    baseline_experiment,
    homework_baseline,
    homework_interval,
    report_if_needed,
)
from reporting.figures import draw_report
from reporting.importance import param_importances
from reporting.locate import find_experiment
from reporting.markdown import ReportData, render
from reporting.report_json import write_numbers
from reporting.results import accuracy_intervals, confusion, macro_f1
from reporting.retrain import prepare_retraining, run_seeds, store_note
from reporting.trials import BestTrial, Trials, best_trial, load_trials, require_an_epoch, search_numbers

REPORT_FILE = "report.md"


@dataclass(frozen=True)
class ReportRequest:
    experiment: str | None = None  # a path, or a name in `storage`; None: the latest experiment
    seeds: int = 3
    merge_train_valid: bool = False
    out: str | None = None  # default: <experiment>/report/
    storage: str | None = None  # default: runs/ in the project


def make_report(request: ReportRequest) -> Path:
    """Write the report; returns the path of report.md. Bad input raises `UserError`."""
    if request.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {request.seeds}")
    folder = find_experiment(request.experiment, request.storage)
    metadata = read_metadata(folder)
    remote_storage = is_uri(str(metadata.get("storage", "")))
    if remote_storage:  # Ray's trial files are at the URI, not in the driver's folder
        remote.download(Experiment(metadata["storage"], metadata["name"], folder))
    trials = load_trials(folder, int(metadata["search"]["max_epochs"]))
    require_an_epoch(trials, folder)
    best = best_trial(trials, folder)
    baseline = baseline_experiment(folder, metadata)
    if baseline is not None:  # before our retraining: a failure there costs nothing of ours
        report_if_needed(baseline, request.seeds, _report_baseline)
    out_dir = Path(request.out).expanduser().resolve() if request.out else folder / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = _retrain_and_write(request, folder, metadata, trials, best, baseline, out_dir)
    if remote_storage and out_dir == folder / REPORT_DIR:
        remote.upload_report(Experiment(metadata["storage"], metadata["name"], folder))
    return written


def _report_baseline(folder: Path, seeds: int) -> None:
    """The baseline's own report, as `python report.py --experiment FOLDER --seeds N` makes it."""
    make_report(ReportRequest(experiment=str(folder), seeds=seeds))


def _retrain_and_write(
    request: ReportRequest,
    folder: Path,
    metadata: dict[str, Any],
    trials: Trials,
    best: BestTrial,
    baseline: dict[str, Any] | None,
    out_dir: Path,
) -> Path:
    """Retrain the best trial's config per seed, measure it on valid and test, and write it all."""
    job, store = prepare_retraining(folder, metadata, best, out_dir)
    standard, merged = run_seeds(job, request.seeds, request.merge_train_valid)
    results = {
        "valid": clips.from_runs(standard, "valid", job.data.valid, job.data.classes),
        "test": clips.from_runs(standard, "test", job.test, job.data.classes),
    }
    clips.write(results, [run.seed for run in standard], out_dir)  # first: what a later comparison pairs on
    if baseline is not None:
        baseline.update(against_baseline(baseline, results["test"]))
    labels, n_classes = job.test.labels, len(job.data.classes)
    confusions = {"standard": confusion(standard, labels, n_classes)}
    if merged:
        confusions["merged"] = confusion(merged, labels, n_classes)
    homework = homework_baseline(metadata["dataset"])
    intervals = accuracy_intervals(results)
    data = ReportData(
        folder=folder,
        metadata=metadata,
        trials=trials,
        best=best,
        config=job.config,
        standard=standard,
        merged=merged,
        classes=job.data.classes,
        confusions=confusions,
        search=search_numbers(trials, metadata, folder),
        importance=param_importances(folder, metadata["name"]),
        homework=homework,
        baseline=baseline,
        store_note=store_note(store, metadata),
        test_labels=labels,
        intervals=intervals,
        ensemble_acc=intervals["test_ensemble"].estimate,
        macro_f1=macro_f1(results["test"]),
        homework_interval=homework_interval(homework),
    )
    data.figures.update(draw_report(data, out_dir))
    return _write(data, out_dir)


def _write(data: ReportData, out_dir: Path) -> Path:
    text = render(data)
    path = out_dir / REPORT_FILE
    with atomic_write(path) as file:
        file.write(text)
    write_numbers(data, out_dir / REPORT_JSON)
    print(text)
    print(f"report written to {path}")
    return path
