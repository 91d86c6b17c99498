"""One report from start to end: find the experiment, pick its best trial, report its baseline.yaml
sibling first if that has no per-clip results, retrain and test the best trial, measure intervals
and the paired comparison, draw the figures, write report.md (and report.json, the same numbers for
programs, and predictions.csv, each clip's result per seed) and print it."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import remote
from common.errors import UserError
from common.experiment import METADATA_FILE, REPORT_DIR, Experiment, is_uri, read_metadata
from common.trials import leaderboard_text, ranked
from features.store import FeatureStore
from models.plugins import load_recorded
from reporting import clips, figures
from reporting.baselines import HOMEWORK_TEST_CLIPS, REPORT_JSON, baseline_experiment, homework_baseline
from reporting.importance import param_importances
from reporting.locate import find_experiment
from reporting.markdown import ReportData, render
from reporting.results import confusion, macro_f1, per_genre, pooled, spread
from reporting.retrain import Retraining, load_test_split, open_store, run_seeds
from reporting.stats import BINOMIAL_METHOD, BOOTSTRAP_METHOD, Interval, accuracy_interval, compare, proportion_interval
from reporting.trials import BestTrial, Trials, best_trial, load_trials, search_numbers
from training import TrialConfig
from training.fit import choose_device

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
    _require_an_epoch(trials, folder)
    best = best_trial(trials, folder)
    baseline = baseline_experiment(folder, metadata)
    if baseline is not None:  # before our retraining: a failure there costs nothing of ours
        _report_if_needed(baseline, request.seeds)
    out_dir = Path(request.out).expanduser().resolve() if request.out else folder / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = _retrain_and_write(request, folder, metadata, trials, best, baseline, out_dir)
    if remote_storage and out_dir == folder / REPORT_DIR:
        remote.upload_report(Experiment(metadata["storage"], metadata["name"], folder))
    return written


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
    job, store = _retraining(folder, metadata, best, out_dir)
    standard, merged = run_seeds(job, request.seeds, request.merge_train_valid)
    results = {
        "valid": clips.from_runs(standard, "valid", job.data.valid, job.data.classes),
        "test": clips.from_runs(standard, "test", job.test, job.data.classes),
    }
    clips.write(results, [run.seed for run in standard], out_dir)  # first: what a later comparison pairs on
    if baseline is not None:
        baseline.update(_against_baseline(baseline, results["test"]))
    labels, n_classes = job.test.labels, len(job.data.classes)
    confusions = {"standard": confusion(standard, labels, n_classes)}
    if merged:
        confusions["merged"] = confusion(merged, labels, n_classes)
    homework = homework_baseline(metadata["dataset"])
    intervals = _intervals(results)
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
        store_note=_store_note(store, metadata),
        test_labels=labels,
        intervals=intervals,
        ensemble_acc=intervals["test_ensemble"].estimate,
        macro_f1=macro_f1(results["test"]),
        homework_interval=proportion_interval(homework, HOMEWORK_TEST_CLIPS) if homework is not None else None,
    )
    data.figures.update(_draw(data, out_dir))
    return _write(data, out_dir)


def _intervals(results: dict[str, clips.ClipResults]) -> dict[str, Interval]:
    """The 95% intervals of the seed-averaged accuracies and of the test ensemble's."""
    return {
        "valid": accuracy_interval(results["valid"].correct),
        "test": accuracy_interval(results["test"].correct),
        "test_ensemble": accuracy_interval(results["test"].ensemble_correct),
    }


def _report_if_needed(baseline: dict[str, Any], seeds: int) -> None:
    """Report a baseline.yaml experiment that has no per-clip test results (never reported, or
    reported before they were kept), with our number of seeds; a failure is noted, not raised."""
    folder = Path(baseline["folder"])
    if (folder / REPORT_DIR / clips.PREDICTIONS_CSV).is_file():
        return
    print(f"baseline.yaml experiment {folder} has no per-clip test results: reporting it first ({seeds} seeds)")
    try:
        make_report(ReportRequest(experiment=str(folder), seeds=seeds))
    except UserError as err:  # our own report goes on: its comparison says why the baseline is missing
        baseline["unpaired"] = f"reporting it failed: {err}"


def _against_baseline(baseline: dict[str, Any], ours: clips.ClipResults) -> dict[str, Any]:
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


def _require_an_epoch(trials: Trials, folder: Path) -> None:
    """Before any training: when no trial reported an epoch (every trial errored, or the search was
    cut off first), print the trials there are and stop with one line saying so."""
    table = trials.table
    if not ranked(table).empty:
        return
    print(f"Trials of {folder} (none reported an epoch):")
    print(leaderboard_text(table, limit=len(table)))
    outcomes = ", ".join(f"{count} {status}" for status, count in table["status"].value_counts().items())
    raise UserError(f"{folder}: no trial finished an epoch ({len(table)} trial(s): {outcomes}): nothing to report")


def _retraining(
    folder: Path, metadata: dict[str, Any], best: BestTrial, out_dir: Path
) -> tuple[Retraining, FeatureStore]:
    """The best trial's own config (never retyped), with the search's epoch limit, and its data."""
    load_recorded(metadata.get("plugins") or [], str(folder / METADATA_FILE))  # the search's own files
    config = TrialConfig.from_dict(best.config)
    # The search's limit, as recorded for the experiment (every trial's training.max_epochs, ASHA's max_t).
    training = dataclasses.replace(config.training, max_epochs=int(metadata["search"]["max_epochs"]))
    config = dataclasses.replace(config, training=training)
    store = open_store(folder, metadata, config.features)
    about = {
        "experiment": metadata["name"],
        "experiment_folder": str(folder),
        "trial": best.name,
        "dataset_fingerprint": store.dataset.get("fingerprint"),
    }
    job = Retraining(
        config=config,
        data=store.load_fit_data(),
        test=load_test_split(store),
        out_dir=out_dir,
        about=about,
        device=choose_device(None),
    )
    return job, store


def _store_note(store: FeatureStore, metadata: dict[str, Any]) -> str:
    ours, searched = store.dataset.get("fingerprint"), metadata["dataset"].get("fingerprint")
    if ours == searched:
        return f"`{store.path}` (built from the searched dataset: same fingerprint)"
    return f"`{store.path}`: WARNING, built from dataset {ours}, but the search ran on {searched}"


def _draw(data: ReportData, out_dir: Path) -> dict[str, str]:
    """Every figure as a PNG next to report.md; returns their file names (report.md links them)."""
    drawn = {
        "confusion": figures.confusion_png(
            data.confusions["standard"],
            data.classes,
            f"test, summed over {len(data.standard)} seeds",
            out_dir / "confusion.png",
        ),
        "curves": figures.learning_curves_png(data.standard, out_dir / "learning_curves.png"),
        "history": figures.search_history_png(data.trials.table, out_dir / "search_history.png"),
    }
    if data.merged:
        title = f"test, models trained on train+valid, summed over {len(data.merged)} seeds"
        drawn["confusion_merged"] = figures.confusion_png(
            data.confusions["merged"], data.classes, title, out_dir / "confusion_train_valid.png"
        )
    if data.importance.values:
        drawn["importance"] = figures.importance_png(data.importance.values, out_dir / "importance.png")
    return {key: path.name for key, path in drawn.items()}


def _write(data: ReportData, out_dir: Path) -> Path:
    text = render(data)
    path = out_dir / REPORT_FILE
    path.write_text(text)
    (out_dir / REPORT_JSON).write_text(json.dumps(_plain(_numbers(data)), indent=2))
    print(text)
    print(f"report written to {path}")
    return path


def _numbers(data: ReportData) -> dict[str, Any]:
    """report.json: the headline numbers, for programs (a later report reads a baseline's)."""
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
        "predictions": clips.PREDICTIONS_CSV,
        "classes": list(data.classes),
        "dataset": data.metadata["dataset"],
        "search": data.search,
        "importance": data.importance.values,
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
