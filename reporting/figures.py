"""The pictures of a report (`draw_report`) and of a comparison, drawn with matplotlib's Agg backend
(no display needed) into PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: a report runs on servers without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from common.partials import atomic_write  # noqa: E402
from common.trials import METRIC  # noqa: E402
from reporting.markdown import ReportData, plural  # noqa: E402
from reporting.results import class_word  # noqa: E402
from reporting.retrain import SeedRun  # noqa: E402

DPI = 120


def draw_report(data: ReportData, out_dir: Path) -> dict[str, str]:
    """Every figure of a report as a PNG next to report.md; returns their file names (report.md links them)."""
    drawn = {
        "confusion": confusion_png(
            data.confusions["standard"],
            data.classes,
            f"test, summed over {plural(len(data.standard), 'seed')}",
            out_dir / "confusion.png",
        ),
        "curves": learning_curves_png(data.standard, out_dir / "learning_curves.png"),
        "history": search_history_png(data.trials.table, out_dir / "search_history.png"),
    }
    if data.merged:
        title = f"test, models trained on train+valid, summed over {plural(len(data.merged), 'seed')}"
        drawn["confusion_merged"] = confusion_png(
            data.confusions["merged"], data.classes, title, out_dir / "confusion_train_valid.png"
        )
    if data.importance.values:
        drawn["importance"] = importance_png(data.importance.values, out_dir / "importance.png")
    return {key: path.name for key, path in drawn.items()}


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic_write(path, "wb") as file:
        fig.savefig(file, dpi=DPI, format="png")
    plt.close(fig)  # figures are kept by pyplot until closed: a long report would hoard memory
    return path


def confusion_png(matrix: np.ndarray, classes: Sequence[str], title: str, path: Path) -> Path:
    """Counts, and colours by each true class's share (rows sum to 1), so rare classes show too."""
    size = max(4.0, 0.6 * len(classes) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if shares[row, col] > 0.5 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    word = class_word(classes)
    ax.set_xlabel(f"predicted {word}")
    ax.set_ylabel(f"true {word}")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label=f"share of the true {word}'s clips")
    return _save(fig, path)


def learning_curves_png(runs: list[SeedRun], path: Path) -> Path:
    """Train (solid) and validation (dashed) loss, and validation clip accuracy, one colour per seed."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        epochs = [m.epoch for m in run.history]
        colour = f"C{run.seed % 10}"
        loss_ax.plot(epochs, [m.train_loss for m in run.history], color=colour, label=f"seed {run.seed} train")
        loss_ax.plot(epochs, [m.valid_loss for m in run.history], "--", color=colour, label=f"seed {run.seed} valid")
        acc_ax.plot(epochs, [m.valid_clip_acc for m in run.history], color=colour, label=f"seed {run.seed}")
        acc_ax.axvline(run.epoch, color=colour, linestyle=":", linewidth=1)  # the epoch kept
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="valid clip accuracy", title="validation clip accuracy (dotted: epoch kept)")
    acc_ax.set_ylim(0.0, 1.0)
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def search_history_png(table: pd.DataFrame, path: Path) -> Path:
    return _save(search_history_figure(table), path)


def search_history_figure(table: pd.DataFrame) -> plt.Figure:
    """Each trial's best validation clip accuracy in the order trials started, with the running best.
    A trial without an epoch has no accuracy: a grey vertical line marks where it started."""
    ordered = table.sort_values("start_order")
    fig, ax = plt.subplots(figsize=(8, 4))
    markers = {"finished": ("o", "ran every epoch"), "stopped early": ("v", "stopped early")}
    markers.update({"interrupted": ("s", "interrupted")})
    for status, (marker, label) in markers.items():
        chosen = ordered[ordered["status"] == status]
        if chosen.empty:
            continue  # no legend entry for an outcome no trial had
        ax.scatter(chosen["start_order"], chosen[METRIC], marker=marker, label=label, alpha=0.8)
    failed = ordered[ordered[METRIC].isna()] if METRIC in ordered else ordered
    for index, start in enumerate(failed["start_order"]):
        label = "no epoch finished (errored or cut off): no accuracy" if index == 0 else None
        ax.axvline(start, color="grey", linestyle=":", linewidth=1.5, label=label)
    running = ordered[METRIC].astype(float).cummax().ffill()
    ax.step(ordered["start_order"], running, where="post", color="black", label="running best")
    ax.set(xlabel="trial (start order)", ylabel="best valid clip accuracy", title="search history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def importance_png(values: dict[str, float], path: Path) -> Path:
    names = list(values)[::-1]  # highest on top
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.5))
    ax.barh(names, [values[name] for name in names], color="C0")
    ax.set(xlabel="importance (fANOVA, sums to 1)", title="hyperparameter importance")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def comparison_png(
    names: Sequence[str],
    intervals: Sequence[Sequence[tuple[float, float, float]]],
    per_class: pd.DataFrame,
    path: Path,
) -> Path:
    """Left: each experiment's test accuracy with its 95% interval, seed-averaged and ensemble
    (`intervals[i]` = (estimate, low, high) of each); right: per-class recall of A minus B."""
    fig, (acc_ax, class_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for offset, (label, column) in enumerate((("seed-averaged", 0), ("ensemble", 1))):
        estimates = np.array([row[column] for row in intervals], dtype=np.float64)
        below, above = estimates[:, 0] - estimates[:, 1], estimates[:, 2] - estimates[:, 0]
        positions = np.arange(len(names)) + (offset - 0.5) * 0.3
        acc_ax.errorbar(positions, estimates[:, 0], yerr=[below, above], fmt="o", capsize=5, label=label)
    acc_ax.set_xticks(range(len(names)), names)
    acc_ax.set(ylabel="test clip accuracy", title="test accuracy, 95% intervals (bootstrap over clips)")
    acc_ax.set_xlim(-0.6, len(names) - 0.4)
    acc_ax.grid(axis="y", alpha=0.3)
    acc_ax.legend(fontsize=8)
    colours = ["C2" if value >= 0 else "C3" for value in per_class["difference"]]
    class_ax.barh(per_class.iloc[:, 0], per_class["difference"], color=colours)  # the classes
    class_ax.axvline(0.0, color="black", linewidth=1)
    class_ax.set(xlabel=f"recall of {names[0]} minus {names[1]}", title="per-class test accuracy difference")
    class_ax.invert_yaxis()
    class_ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)
