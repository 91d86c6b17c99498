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

from common.trials import METRIC, STOP_COLUMNS, TIE_RULE
from reporting.baselines import HOMEWORK_TEST_CLIPS, is_baseline
from reporting.importance import Importance
from reporting.results import class_word, per_genre, pooled, seed_table, spread
from reporting.retrain import SeedRun
from reporting.stats import BINOMIAL_METHOD, BOOTSTRAP_METHOD, MCNEMAR_METHOD, Comparison, Interval
from reporting.trials import BestTrial, Trials
from training import TrialConfig

LEADERBOARD_ROWS = 10
LEADERBOARD_COLUMNS = ["trial", "status", "epochs", "best_epoch", METRIC, "valid_loss", *STOP_COLUMNS]


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
    test_labels: np.ndarray  # (test clips,) class index
    intervals: dict[str, Interval]  # "valid", "test", "test_ensemble": bootstrap over clips (reporting.stats)
    macro_f1: dict[str, Any]  # reporting.results.macro_f1
    homework_interval: Interval | None  # the published accuracy's own interval on its 227 clips
    figures: dict[str, str] = field(default_factory=dict)  # figure key -> file name next to report.md

    @property
    def optimism(self) -> float:
        """Best trial's search-time validation accuracy minus its retrained one: the optimism of
        picking the best of many trials on the same validation clips."""
        return self.best.valid_clip_acc - self.intervals["valid"].estimate


def fmt(value: Any) -> str:
    """A table cell: accuracies with 4 decimals, small numbers (learning rates) in 3 significant digits."""
    if value is pd.NA:  # a whole-number column's missing value (a trial without a best epoch)
        return "n/a"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3g}" if value != 0 and abs(value) < 0.01 else f"{value:.4f}"
    return str(value).replace("|", "\\|")


def plural(count: int, noun: str) -> str:
    """`1 seed`, `3 seeds`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def seed_values(count: int) -> str:
    """The seeds 0..count-1 as the report names them: `training.seed = 0`, `training.seed = 0..2`."""
    return "training.seed = 0" if count == 1 else f"training.seed = 0..{count - 1}"


def segments_wording(overlap: float) -> str:
    """How a clip is cut for evaluation, as training.eval_overlap says."""
    if overlap == 0:
        return "cut into consecutive segments that do not overlap"
    return f"cut into segments that overlap by {overlap:.0%}"


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
        f"All accuracies are clip accuracies in [0, 1]: each clip is"
        f" {segments_wording(data.config.training.eval_overlap)}, the model's segment probabilities are averaged,"
        f" and the most probable {class_word(data.classes)} is the clip's prediction.",
    ]


def _result(data: ReportData) -> list[str]:
    n, best = len(data.standard), data.best
    lines = [
        f"## Result: the best config retrained with {plural(n, 'seed')}",
        "",
        f"Best trial of the search: `{best.name}` (best validation clip accuracy {best.valid_clip_acc:.4f} at epoch "
        f"{best.best_epoch}; {TIE_RULE}). Its saved config was retrained from scratch with "
        f"{seed_values(n)} for {data.config.training.max_epochs} epochs (search.max_epochs) each, keeping"
        " per seed the weights of the epoch with the best validation clip accuracy; test clips were read once, here.",
        "",
        "| measured | mean ± std over seeds | 95% interval |",
        "|---|---|---|",
        f"| validation clip accuracy | {mean_std(spread([r.valid.clip_acc for r in data.standard]))} |"
        f" {_bounds(data.intervals['valid'])} |",
        f"| **test clip accuracy** | **{mean_std(spread([r.test.clip_acc for r in data.standard]))}** |"
        f" **{_bounds(data.intervals['test'])}** |",
    ]
    if data.merged:
        merged = mean_std(spread([r.test.clip_acc for r in data.merged]))
        lines.append(f"| test clip accuracy of the models trained on train+valid | {merged} | n/a |")
    lines += [
        f"| test clip accuracy of the seeds' averaged probabilities (an ensemble) | {data.ensemble_acc:.4f} |"
        f" {_bounds(data.intervals['test_ensemble'])} |",
        f"| test macro-F1 (ensemble: {data.macro_f1['ensemble']:.4f}) | {mean_std(data.macro_f1)} | n/a |",
        "",
        f"Intervals: {BOOTSTRAP_METHOD}, so they count the finite number of clips"
        f" ({len(data.test_labels)} test clips: one clip is {100 / len(data.test_labels):.2f} points) as well as"
        " the seeds' spread; the standard deviation measures the seeds alone.",
        "",
        f"Optimism of the search: the best trial's validation clip accuracy in the search ({best.valid_clip_acc:.4f})"
        f" minus its retrained mean ({data.intervals['valid'].estimate:.4f}) is **{data.optimism:+.4f}**: picking the"
        f" best of {data.search['trials']} trial(s) on the same validation clips favours trials that were lucky on"
        " those clips, and this gap measures it (positive: the search's number overstates the config); the retrained"
        " and test numbers do not carry that selection.",
    ]
    lines += ["", "Per seed:", "", *md_table(seed_table(data.standard, data.merged))]
    if data.merged:
        lines += [
            "",
            "The train+valid models were trained on the validation clips, so they have no validation accuracy: "
            "the `valid clip acc` column is always the standard (train-only) run's, measured on held-out clips; each "
            "train+valid run trained for its seed's `best epoch` and kept its last weights.",
        ]
    return lines


def _bounds(interval: Interval) -> str:
    return f"[{interval.low:.4f}, {interval.high:.4f}]"


def _comparison(data: ReportData) -> list[str]:
    ours_valid = mean_std(spread([r.valid.clip_acc for r in data.standard]))
    ours_test = mean_std(spread([r.test.clip_acc for r in data.standard]))
    ours = f"{ours_valid} | {ours_test} | {_bounds(data.intervals['test'])}"
    rows = [f"| this search's best config ({plural(len(data.standard), 'seed')}) | {ours} |"]
    dataset = data.metadata["dataset"]
    if data.homework_interval is not None:
        bounds = f"{_bounds(data.homework_interval)} ({BINOMIAL_METHOD} on its {HOMEWORK_TEST_CLIPS} test clips)"
        rows.append(f"| homework baseline, published (GTZAN; a single run) | n/a | {data.homework:.4f} | {bounds} |")
        why = ""
    else:
        why = (
            f"The homework baseline's published 0.6344 test accuracy is not shown: it was measured on the"
            f" {HOMEWORK_TEST_CLIPS} test clips of GTZAN's fault-filtered split (8 genres), and this report's test"
            f" split is {'synthetic' if dataset.get('synthetic') else 'another one'}"
            f" ({plural(len(data.test_labels), 'clip')} of {', '.join(data.classes)})."
        )
    rows += _baseline_rows(data)
    header = "| model | validation clip acc | test clip acc | test 95% interval |"
    lines = ["## Compared with the baselines", "", header, "|---|---|---|---|", *rows]
    return lines + ([""] + [why] if why else []) + _paired(data)


def _paired(data: ReportData) -> list[str]:
    """The paired comparison with baseline.yaml on the same test clips, and its verdict."""
    found = data.baseline or {}
    if "comparison" not in found:
        return []
    result: Comparison = found["comparison"]
    return ["", *paired_lines(result, "this search's best config", "the baseline")]


def paired_lines(result: Comparison, ours: str, other: str) -> list[str]:
    """The difference A - B with its intervals, McNemar's test and the one-sentence verdict."""
    test = result.test
    return [
        f"Paired on the same {result.clips} test clips, {ours} minus {other}: seed-averaged accuracy"
        f" {result.difference.estimate:+.4f} [{result.difference.low:+.4f}, {result.difference.high:+.4f}],"
        f" ensembles {result.ensemble_difference.estimate:+.4f} [{result.ensemble_difference.low:+.4f},"
        f" {result.ensemble_difference.high:+.4f}] (95% intervals, paired bootstrap over clips). {MCNEMAR_METHOD}"
        f" on the ensembles: {test.only_a} clip(s) only {ours} gets right, {test.only_b} only {other},"
        f" p = {test.pvalue:.4g}. The verdict is this exact test's: the bootstrap intervals are approximate when few"
        " clips differ.",
        "",
        f"**Verdict: {ours} is {result.verdict}.**",
    ]


def _baseline_rows(data: ReportData) -> list[str]:
    if is_baseline(data.metadata):
        return ["| (this experiment is baseline.yaml's search: the row above is the baseline) | | | |"]
    found = data.baseline
    if found is None:
        return ["| baseline.yaml: no experiment of it on this dataset in this storage folder | n/a | n/a | n/a |"]
    label = f"baseline.yaml, experiment `{found['name']}`"
    if "comparison" in found:
        numbers = f"{mean_std(found['valid'])} | {mean_std(found['test'])} | {_bounds(found['test_interval'])}"
        return [f"| {label} (its report) | {numbers} |"]
    valid = fmt(found["search_valid"]) if found.get("search_valid") is not None else "n/a"
    hint = found.get("unpaired", "not reported")
    return [f"| {label} (best trial in its search) | {valid} | n/a | {fmt(hint)} |"]


def _genres(data: ReportData) -> list[str]:
    n, word = len(data.standard), class_word(data.classes)
    table = per_genre(*pooled(data.standard, data.test_labels), data.classes)
    if data.merged:
        merged = per_genre(*pooled(data.merged, data.test_labels), data.classes)
        table["accuracy (train+valid model)"] = merged["accuracy (recall)"]
    lines = [
        f"## Per {word} (test split)",
        "",
        f"Summed over the {plural(n, 'seed')}: each test clip counts once per seed, so a {word}'s accuracy (its"
        " recall) is its mean over seeds (the confusion matrix counts are clips x seeds, not averaged"
        " probabilities); precision, recall and F1 are scikit-learn's on these pooled predictions.",
        "",
        *md_table(table),
        "",
        f"![Confusion matrix, test split, summed over {plural(n, 'seed')}]({data.figures['confusion']})",
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
        f"Ranked by best {METRIC} over each trial's epochs; {TIE_RULE}. `stop_reason`: why a trial ended"
        " (`rung_cut`: ASHA cut it at `rung`, below that rung's `cutoff`).",
        "",
        *md_table(shown),
    ]


def _importance(data: ReportData) -> list[str]:
    lines = ["## Hyperparameter importance", "", data.importance.note + "."]
    if data.importance.values:
        rows = [(name, f"{value:.2f}") for name, value in data.importance.values.items()]  # a rough ranking
        lines += ["", *md_table(pd.DataFrame(rows, columns=["parameter", "importance"]))]
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
