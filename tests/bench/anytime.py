"""Anytime curves of a search (best validation clip accuracy so far, against epochs spent) from its
per-epoch records, and what bench_peers prints and draws from them: epochs one search needs to
reach another's final best, mean and spread over search seeds, the figure.

A record is one epoch of one trial: columns `trial`, `epoch`, `seconds` (wall clock since the search
started, when the epoch ended) and `valid_clip_acc`. Epochs count in the order they ended: with
trials running side by side, that is the order the search could have used them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

RECORD_COLUMNS = ("trial", "epoch", "seconds", "valid_clip_acc")


def anytime_curve(records: pd.DataFrame, budget: int) -> pd.DataFrame:
    """One search's curve: per epoch spent (1, 2, ...), when it ended and the best validation clip
    accuracy so far. Epochs past `budget` are left out (processes may overshoot it by an epoch
    each); an epoch without a validation number (NaN) counts as spent."""
    ordered = records.sort_values(["seconds", "trial", "epoch"], kind="stable").head(budget)
    best = ordered["valid_clip_acc"].astype(float).fillna(-np.inf).cummax().replace(-np.inf, np.nan)
    return pd.DataFrame(
        {
            "epochs_spent": np.arange(1, len(ordered) + 1),
            "seconds": ordered["seconds"].to_numpy(float),
            "best_valid_clip_acc": best.to_numpy(float),
        }
    )


def best_by_epoch(curve: pd.DataFrame, budget: int) -> np.ndarray:
    """The curve at every epoch count 1..budget: a search that stopped before the budget keeps
    its final best (it had nothing left to run); NaN before its first validated epoch."""
    values = np.full(budget, np.nan)
    best = curve["best_valid_clip_acc"].to_numpy(float)[:budget]
    values[: len(best)] = best
    if len(best):
        values[len(best) :] = best[-1]
    return values


def epochs_to_reach(values: np.ndarray, target: float) -> int | None:
    """The first epoch count at which `values` (best so far by epoch, from 1) reaches `target`;
    None when it never does."""
    reached = np.flatnonzero(np.nan_to_num(values, nan=-np.inf) >= target - 1e-9)
    return int(reached[0]) + 1 if len(reached) else None


def seed_bands(curves: list[np.ndarray]) -> pd.DataFrame:
    """Mean, min and max over search seeds of their best-by-epoch values, per epoch count."""
    stacked = np.vstack(curves)
    return pd.DataFrame(
        {
            "epochs_spent": np.arange(1, stacked.shape[1] + 1),
            "mean": stacked.mean(axis=0),
            "min": stacked.min(axis=0),
            "max": stacked.max(axis=0),
        }
    )


def reach_matrix(bands: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Row A, column B: the epochs A's mean curve needs to reach B's final mean best (NaN: never
    within the budget)."""
    finals = {system: float(band["mean"].iloc[-1]) for system, band in bands.items()}
    table = {
        peer: {system: epochs_to_reach(band["mean"].to_numpy(), finals[peer]) for system, band in bands.items()}
        for peer in bands
    }
    return pd.DataFrame(table, dtype=float).loc[list(bands), list(bands)]


def summary_table(
    bands: Mapping[str, pd.DataFrame],
    finals: Mapping[str, list[float]],
    seconds: Mapping[str, list[float]],
    tests: Mapping[str, list[float]],
    budget: int,
) -> pd.DataFrame:
    """One row per system: final best over search seeds (mean, std), wall seconds the search ran,
    epochs to reach each system's final best as a share of the budget, retrained test accuracy."""
    reach = reach_matrix(bands)
    rows = {}
    for system in bands:
        row = {
            "best_valid_mean": np.mean(finals[system]),
            "best_valid_std": np.std(finals[system]),
            "search_seeds": len(finals[system]),
            "wall_seconds_mean": np.mean(seconds[system]),
            "test_mean": np.mean(tests[system]) if tests.get(system) else np.nan,
            "test_std": np.std(tests[system]) if tests.get(system) else np.nan,
            "retrain_seeds": len(tests.get(system) or []),
        }
        row.update({f"to_reach[{peer}]": reach.loc[system, peer] / budget for peer in bands})
        rows[system] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def format_table(table: pd.DataFrame, budget: int) -> str:
    """The table as bench_peers prints it: shares of the budget as 'epochs (share)', '-' for never."""
    lines = []
    peers = [column[len("to_reach[") : -1] for column in table.columns if column.startswith("to_reach[")]
    head = f"{'system':24} {'best valid (mean ± std)':>24} {'wall s':>8} {'test (mean ± std)':>20}"
    lines.append(head + "".join(f"  to reach {peer:>14}" for peer in peers))
    for system, row in table.iterrows():
        test = f"{row['test_mean']:.3f} ± {row['test_std']:.3f}" if not np.isnan(row["test_mean"]) else "-"
        line = f"{system:24} {row['best_valid_mean']:15.3f} ± {row['best_valid_std']:.3f} "
        line += f"{row['wall_seconds_mean']:8.0f} {test:>20}"
        for peer in peers:
            share = row[f"to_reach[{peer}]"]
            line += "  " + (f"{share * budget:10.0f} ({share:4.0%})" if not np.isnan(share) else f"{'never':>18}")
        lines.append(line)
    return "\n".join(lines)


def draw(
    bands: Mapping[str, pd.DataFrame],
    curves: Mapping[str, list[pd.DataFrame]],
    path: Path,
    peers: Collection[str] = (),
) -> None:
    """Left: the `peers`' mean best-so-far against epochs spent, a band from min to max over search
    seeds. Middle: every system's mean from 0.8 up, the peers bold and the variants thin and dashed, where the
    finish is decided. Right: each of the peers' seeds' best-so-far against wall seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_epochs, top, by_seconds) = plt.subplots(1, 3, figsize=(17, 4.8))
    # Matplotlib's default cycle repeats after 10 colours: tab20's strong ten first, then its pale ones.
    pairs = plt.get_cmap("tab20").colors
    colors = dict(zip(bands, (pairs[0::2] + pairs[1::2]) * 2))
    shown = [system for system in bands if system in peers] or list(bands)
    for system in shown:
        band, color = bands[system], colors[system]
        by_epochs.plot(band["epochs_spent"], band["mean"], color=color, label=system, drawstyle="steps-post")
        by_epochs.fill_between(band["epochs_spent"], band["min"], band["max"], color=color, alpha=0.2, step="post")
        for seed, curve in enumerate(curves[system]):
            label = system if seed == 0 else None
            by_seconds.plot(
                curve["seconds"],
                curve["best_valid_clip_acc"],
                color=color,
                label=label,
                alpha=0.7,
                drawstyle="steps-post",
            )
    for system, band in bands.items():
        width, style = (2.2, "-") if system in shown else (1.0, "--")
        top.plot(
            band["epochs_spent"],
            band["mean"],
            color=colors[system],
            label=system,
            linewidth=width,
            linestyle=style,
            drawstyle="steps-post",
        )
    top.set_ylim(0.8, 1.0)  # the legend sits above the curves, which end below 0.95
    by_epochs.set(xlabel="epochs spent (all trials)", ylabel="best validation clip accuracy so far")
    by_epochs.set_title("mean over search seeds (band: min to max)")
    top.set(xlabel="epochs spent (all trials)", title="means from 0.8 up: bold the peers, dashed the variants")
    by_seconds.set(xlabel="wall seconds", title="each search seed")
    by_epochs.legend(loc="lower right")
    top.legend(loc="upper center", fontsize="small", ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
