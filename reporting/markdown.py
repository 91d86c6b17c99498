"""report.md: the measured numbers, tables and figures of one report, as Markdown text. Every number
here comes from `ReportData`, i.e. from this run's retraining or the experiment's files."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.trials import METRIC
from reporting.importance import Importance
from reporting.results import per_genre, seed_table, spread
from reporting.retrain import SeedRun
from reporting.trials import BestTrial, Trials
from training import TrialConfig

LEADERBOARD_ROWS = 10
LEADERBOARD_COLUMNS = ["trial", "status", "epochs", "best_epoch", METRIC, "valid_loss"]


@dataclass(frozen=True)
class ReportData:
    folder: Path
    metadata: dict[str, Any]  # experiment.json
    trials: Trials
    best: BestTrial
    config: TrialConfig  # the best trial's config in full (defaults filled in), as retrained
    standard: list[SeedRun]
    merged: list[SeedRun]  # empty without --merge-train-valid
    classes: tuple[str, ...]
    confusions: dict[str, np.ndarray]  # "standard" / "merged" -> summed test confusion matrix
    ensemble_acc: float
    search: dict[str, Any]  # reporting.trials.search_numbers
    importance: Importance
    homework: float | None  # the published baseline test accuracy, when the data is GTZAN
    baseline: dict[str, Any] | None  # a sibling baseline.yaml experiment (reporting.baselines)
    store_note: str  # which store the data came from, and whether its dataset matches the search's
    figures: dict[str, str] = field(default_factory=dict)  # figure key -> file name next to report.md


def fmt(value: Any) -> str:
    """A table cell: accuracies with 4 decimals, small numbers (learning rates) in 3 significant digits."""
    if value is pd.NA:  # a whole-number column's missing value (a trial without a best epoch)
        return "n/a"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3g}" if value != 0 and abs(value) < 0.01 else f"{value:.4f}"
    return str(value).replace("|", "\\|")


def mean_std(numbers: dict[str, Any]) -> str:
    std = numbers.get("std")
    std = "n/a (one seed)" if std is None or math.isnan(std) else f"{std:.4f}"
    return f"{numbers['mean']:.4f} ± {std}"


def md_table(frame: pd.DataFrame) -> list[str]:
    lines = ["| " + " | ".join(fmt(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def render(data: ReportData) -> str:
    sections = [
        _header(data),
        _result(data),
        _comparison(data),
        _genres(data),
        _curves(data),
        _search(data),
        _best_config(data),
        _leaderboard(data),
        _importance(data),
        _models(data),
    ]
    return "\n".join(line for section in sections for line in [*section, ""])


def _header(data: ReportData) -> list[str]:
    meta = data.metadata
    return [
        f"# Report: experiment `{meta['name']}`",
        "",
        f"Experiment folder: `{data.folder}`; space file: `{meta.get('space_file')}`;"
        f" search started {meta.get('started')}.",
        "All accuracies are clip accuracies in [0, 1]: each clip is cut into overlapping segments, the model's"
        " segment probabilities are averaged, and the most probable genre is the clip's prediction.",
    ]


def _result(data: ReportData) -> list[str]:
    n, best = len(data.standard), data.best
    lines = [
        f"## Result: the best config retrained with {n} seed(s)",
        "",
        f"Best trial of the search: `{best.name}` (best validation clip accuracy {best.valid_clip_acc:.4f} at epoch "
        f"{best.best_epoch}, ties broken by validation loss). Its saved config was retrained from scratch with "
        f"training.seed = 0..{n - 1} for {data.config.training.max_epochs} epochs (search.max_epochs) each, keeping"
        " per seed the weights of the epoch with the best validation clip accuracy; test clips were read once, here.",
        "",
        "| measured | mean ± std over seeds |",
        "|---|---|",
        f"| validation clip accuracy | {mean_std(spread([r.valid.clip_acc for r in data.standard]))} |",
        f"| **test clip accuracy** | **{mean_std(spread([r.test.clip_acc for r in data.standard]))}** |",
    ]
    if data.merged:
        merged = mean_std(spread([r.test.clip_acc for r in data.merged]))
        lines.append(f"| test clip accuracy of the models trained on train+valid | {merged} |")
    lines.append(f"| test clip accuracy of the seeds' averaged probabilities (an ensemble) | {data.ensemble_acc:.4f} |")
    lines += ["", "Per seed:", "", *md_table(seed_table(data.standard, data.merged))]
    if data.merged:
        lines += [
            "",
            "The train+valid models were trained on the validation clips, so they have no validation accuracy: "
            "the `valid clip acc` column is always the standard (train-only) run's, measured on held-out clips; each "
            "train+valid run trained for its seed's `best epoch` and kept its last weights.",
        ]
    return lines


def _comparison(data: ReportData) -> list[str]:
    ours_valid = mean_std(spread([r.valid.clip_acc for r in data.standard]))
    ours_test = mean_std(spread([r.test.clip_acc for r in data.standard]))
    rows = [f"| this search's best config ({len(data.standard)} seeds) | {ours_valid} | {ours_test} |"]
    dataset = data.metadata["dataset"]
    if data.homework is not None:
        rows.append(f"| homework baseline, published (GTZAN) | n/a | {data.homework:.4f} |")
        why = ""
    else:
        why = (
            "The homework baseline's published 0.6344 test accuracy is not shown: it was measured on GTZAN's 8 homework"
            f" genres, and this dataset is {'synthetic' if dataset.get('synthetic') else 'another one'}"
            f" ({', '.join(dataset.get('classes', []))})."
        )
    rows += _baseline_rows(data)
    lines = ["## Compared with the baselines", "", "| model | validation clip acc | test clip acc |", "|---|---|---|"]
    return lines + rows + ([""] + [why] if why else [])


def _baseline_rows(data: ReportData) -> list[str]:
    from reporting.baselines import is_baseline

    if is_baseline(data.metadata):
        return ["| (this experiment is baseline.yaml's search: the row above is the baseline) | | |"]
    found = data.baseline
    if found is None:
        return ["| baseline.yaml: no experiment of it on this dataset in this storage folder | n/a | n/a |"]
    label = f"baseline.yaml, experiment `{found['name']}`"
    if found.get("test"):
        return [f"| {label} (its report) | {mean_std(found['valid'])} | {mean_std(found['test'])} |"]
    valid = fmt(found["search_valid"]) if found.get("search_valid") is not None else "n/a"
    hint = f"not reported yet: `python report.py --experiment {found['folder']}`"
    return [f"| {label} (best trial in its search) | {valid} | {hint} |"]


def _genres(data: ReportData) -> list[str]:
    n = len(data.standard)
    table = per_genre(data.confusions["standard"], data.classes)
    if data.merged:
        table["accuracy (train+valid model)"] = per_genre(data.confusions["merged"], data.classes)["accuracy"]
    lines = [
        "## Per genre (test split)",
        "",
        f"Summed over the {n} seed(s): each test clip counts once per seed, so a genre's accuracy is its mean over"
        " seeds (the confusion matrix counts are clips x seeds, not averaged probabilities).",
        "",
        *md_table(table),
        "",
        f"![Confusion matrix, test split, summed over {n} seeds]({data.figures['confusion']})",
    ]
    if "confusion_merged" in data.figures:
        lines += ["", f"![Confusion matrix of the train+valid models]({data.figures['confusion_merged']})"]
    return lines


def _curves(data: ReportData) -> list[str]:
    return [
        "## Learning curves of the retraining runs",
        "",
        "Train loss (solid) and validation loss (dashed), and validation clip accuracy per epoch, one colour per"
        " seed (standard runs; a dotted line marks the epoch whose weights were kept).",
        "",
        f"![Learning curves]({data.figures['curves']})",
    ]


def _search(data: ReportData) -> list[str]:
    s, dataset = data.search, data.metadata["dataset"]
    counts = dataset.get("counts", {})
    rows = [
        ("trials", s["trials"]),
        (f"finished (all {s['max_epochs']} epochs)", s["finished"]),
        (_stopped_label(s["scheduler"]), s["stopped_early"]),
        ("errored", s["errored"]),
        *([("interrupted (search cut off while they ran)", s["interrupted"])] if s["interrupted"] else []),
        ("epochs run / (trials x max epochs)", f"{s['epochs_run']} / {s['epoch_budget']} = {s['epochs_fraction']:.2f}"),
        ("search wall time", _duration(s["wall_seconds"])),
        ("training time, summed over trials", _duration(s["trial_seconds"])),
        ("dataset", f"`{dataset.get('root')}` ({'synthetic' if dataset.get('synthetic') else 'audio files'})"),
        ("dataset fingerprint", f"`{dataset.get('fingerprint')}`"),
        ("classes", ", ".join(dataset.get("classes", []))),
        ("clips train / valid / test", " / ".join(str(counts.get(k, "?")) for k in ("train", "valid", "test"))),
        ("feature store", data.store_note),
    ]
    frame = pd.DataFrame(rows, columns=["search", "value"])
    history = ["", f"![Search history]({data.figures['history']})"]
    return ["## The search in numbers", "", *md_table(frame), *_errored(data), *history]


def _errored(data: ReportData) -> list[str]:
    """Which trials errored, and where their logs are."""
    table = data.trials.table
    names = table.loc[table["status"] == "error", "trial"].tolist()
    if not names:
        return []
    where = f"each one's log is error.txt in its folder in `{data.folder}`"
    return ["", f"Errored trials ({len(names)}; {where}): " + ", ".join(f"`{name}`" for name in names) + "."]


def _stopped_label(scheduler: str) -> str:
    # A plateau or step schedule ends a trial by itself once the rate falls below training.min_lr.
    if scheduler == "fifo":
        return "stopped before the last epoch (no early stopping scheduler: learning rate below training.min_lr)"
    return f"stopped early (by {scheduler.upper()}, or by a schedule reaching training.min_lr)"


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")


def _best_config(data: ReportData) -> list[str]:
    text = json.dumps(data.config.to_dict(), indent=2)
    return [
        "## The best config in full",
        "",
        f"Trial `{data.best.name}`'s saved config with every default filled in (training.seed is set per seed):",
        "",
        "```json",
        text,
        "```",
    ]


def _leaderboard(data: ReportData) -> list[str]:
    table = data.trials.table
    params = [c for c in table.columns if "." in c]  # Optuna's flat `section.key` values
    shown = table[[c for c in LEADERBOARD_COLUMNS if c in table] + params].head(LEADERBOARD_ROWS)
    return [
        f"## Leaderboard (top {len(shown)} of {len(table)} trials)",
        "",
        f"Ranked by best {METRIC} over each trial's epochs, ties by validation loss at that epoch.",
        "",
        *md_table(shown),
    ]


def _importance(data: ReportData) -> list[str]:
    lines = ["## Hyperparameter importance", "", data.importance.note + "."]
    if data.importance.values:
        frame = pd.DataFrame(list(data.importance.values.items()), columns=["parameter", "importance"])
        lines += ["", *md_table(frame)]
    if "importance" in data.figures:
        lines += ["", f"![Hyperparameter importance]({data.figures['importance']})"]
    return lines


def _models(data: ReportData) -> list[str]:
    runs = [*data.standard, *data.merged]
    lines = ["## Saved models", ""]
    lines += [
        f"- `{run.model_file.name}`: seed {run.seed}, trained on {run.trained_on}, epoch {run.epoch}" for run in runs
    ]
    example = data.standard[0].model_file
    lines += ["", f"Classify audio files: `python predict.py {example} song.wav [more.wav ...]`"]
    return lines
