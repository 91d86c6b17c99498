"""One report from start to end: find the experiment, pick its best trial, retrain and test it,
draw the figures, write report.md (and report.json, the same numbers for programs) and print it."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.experiment import METADATA_FILE, REPORT_DIR, read_metadata
from common.trials import leaderboard_text, ranked
from features.store import FeatureStore
from models.plugins import load_recorded
from reporting import figures
from reporting.baselines import REPORT_JSON, baseline_experiment, homework_baseline
from reporting.importance import param_importances
from reporting.locate import find_experiment
from reporting.markdown import ReportData, render
from reporting.results import confusion, ensemble_accuracy, spread
from reporting.retrain import Retraining, load_test_split, open_store, run_seeds
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
    trials = load_trials(folder, int(metadata["search"]["max_epochs"]))
    _require_an_epoch(trials, folder)
    best = best_trial(trials, folder)
    out_dir = Path(request.out).expanduser().resolve() if request.out else folder / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    job, store = _retraining(folder, metadata, best, out_dir)
    standard, merged = run_seeds(job, request.seeds, request.merge_train_valid)
    labels = job.test.labels
    confusions = {"standard": confusion(standard, labels, len(job.data.classes))}
    if merged:
        confusions["merged"] = confusion(merged, labels, len(job.data.classes))
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
        ensemble_acc=ensemble_accuracy(standard, labels),
        search=search_numbers(trials, metadata),
        importance=param_importances(folder, metadata["name"]),
        homework=homework_baseline(metadata["dataset"]),
        baseline=baseline_experiment(folder, metadata),
        store_note=_store_note(store, metadata),
    )
    data.figures.update(_draw(data, out_dir))
    return _write(data, out_dir)


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
        "classes": list(data.classes),
        "dataset": data.metadata["dataset"],
        "search": data.search,
        "importance": data.importance.values,
        "models": [str(run.model_file) for run in [*data.standard, *data.merged]],
    }


def _plain(value: Any) -> Any:
    """NaN (one seed's std) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
