"""One report from start to end (`python report.py`): the steps in order, each done by the module
named for its job, from finding the experiment to writing report.md and printing it.

Find the experiment and pick its best trial (locate.py, trials.py); report its baseline.yaml sibling
first if that has no complete report (baselines.py); retrain and test the best trial (retrain.py);
keep each clip's result per seed in predictions.csv (clips.py), measure the intervals (results.py)
and the paired comparison with the baseline (baselines.py); draw the figures (figures.py); write
report.md (markdown.py) and report.json (report_json.py), the same numbers for programs. Everything
is written into a staging folder and moved into place when complete, report.json last (outputs.py)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from common import remote
from common.driver_lease import DriverLease
from common.errors import UserError
from common.experiment import REPORT_DIR, Experiment, is_uri, read_metadata
from common.partials import atomic_write
from models.plugins import recorded_among
from reporting import clips, outputs
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
    plugins: tuple[str, ...] = ()  # plugin files the user names (--plugin): records alone run no code
    baseline: bool = True  # False (--no-baseline): no baseline.yaml experiment reported nor compared


def make_report(request: ReportRequest) -> Path:
    """Write the report; returns the path of report.md. Bad input raises `UserError`."""
    if request.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {request.seeds}")
    folder = find_experiment(request.experiment, request.storage)
    out_dir = Path(request.out).expanduser().resolve() if request.out else folder / REPORT_DIR
    # Retraining into the experiment folder: as its one driver (refused while a search runs there).
    with DriverLease(folder) if out_dir.is_relative_to(folder) else nullcontext():
        return _make_report(request, folder)


def _make_report(request: ReportRequest, folder: Path) -> Path:
    metadata = read_metadata(folder)
    remote_storage = is_uri(str(metadata.get("storage", "")))
    if remote_storage:  # Ray's trial files are at the URI, not in the driver's folder
        remote.download(Experiment(metadata["storage"], metadata["name"], folder))
    trials = load_trials(folder, int(metadata["search"]["max_epochs"]))
    require_an_epoch(trials, folder)
    best = best_trial(trials, folder)
    baseline = baseline_experiment(folder, metadata) if request.baseline else None
    if baseline is not None:  # before our retraining: a failure there costs nothing of ours
        report_baseline = partial(_report_baseline, plugins=request.plugins)
        report_if_needed(baseline, request.seeds, report_baseline, metadata["dataset"]["fingerprint"])
    out_dir = Path(request.out).expanduser().resolve() if request.out else folder / REPORT_DIR
    staging = outputs.start(out_dir)
    try:
        text = _retrain_and_write(request, folder, metadata, trials, best, baseline, staging, out_dir)
    except BaseException:  # Ctrl-C too: the previous report, if any, stays whole
        outputs.discard(staging)
        raise
    outputs.commit(staging, out_dir, REPORT_JSON)
    print(text)
    print(f"report written to {out_dir / REPORT_FILE}")
    if remote_storage and out_dir == folder / REPORT_DIR:
        remote.upload_report(Experiment(metadata["storage"], metadata["name"], folder))
    return out_dir / REPORT_FILE


def _report_baseline(folder: Path, seeds: int, plugins: tuple[str, ...]) -> None:
    """The baseline's own report, as `python report.py --experiment FOLDER --seeds N` makes it,
    with those plugin files the user named that it records (its records alone run nothing)."""
    named = recorded_among(plugins, read_metadata(folder).get("plugins") or [])
    make_report(ReportRequest(experiment=str(folder), seeds=seeds, plugins=named))


def _retrain_and_write(
    request: ReportRequest,
    folder: Path,
    metadata: dict[str, Any],
    trials: Trials,
    best: BestTrial,
    baseline: dict[str, Any] | None,
    staging: Path,
    out_dir: Path,
) -> str:
    """Retrain the best trial's config per seed, measure it on valid and test, and write it all into
    `staging` (moved to `out_dir` when complete); returns report.md's text."""
    job, store = prepare_retraining(folder, metadata, best, staging, request.plugins)
    standard, merged = run_seeds(job, request.seeds, request.merge_train_valid)
    for run in [*standard, *merged]:  # where each model will be once the report is moved into place
        run.model_file = out_dir / run.model_file.name
    results = {
        "valid": clips.from_runs(standard, "valid", job.data.valid, job.data.classes),
        "test": clips.from_runs(standard, "test", job.test, job.data.classes),
    }
    clips.write(results, [run.seed for run in standard], staging)
    if baseline is not None:
        baseline.update(against_baseline(baseline, results["test"]))
    labels, n_classes = job.test.labels, len(job.data.classes)
    confusions = {"standard": confusion(standard, labels, n_classes)}
    if merged:
        confusions["merged"] = confusion(merged, labels, n_classes)
    homework = homework_baseline(metadata["dataset"], job.test.clip_ids)
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
    data.figures.update(draw_report(data, staging))
    return _write(data, staging)


def _write(data: ReportData, staging: Path) -> str:
    text = render(data)
    with atomic_write(staging / REPORT_FILE) as file:
        file.write(text)
    write_numbers(data, staging / REPORT_JSON)
    return text
