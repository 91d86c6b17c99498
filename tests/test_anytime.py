"""The peers benchmark's arithmetic (tests/bench/anytime.py): anytime curves from per-epoch records
and the epochs one search needs to reach another's final best."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.bench import anytime


def records(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(anytime.RECORD_COLUMNS))


def test_curve_counts_epochs_in_the_order_they_ended_across_trials():
    # Two trials side by side: b's first epoch ends between a's first and second.
    found = records([("a", 1, 10.0, 0.3), ("a", 2, 30.0, 0.5), ("b", 1, 20.0, 0.6), ("b", 2, 40.0, 0.4)])
    curve = anytime.anytime_curve(found, budget=10)
    assert curve["epochs_spent"].tolist() == [1, 2, 3, 4]
    assert curve["seconds"].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert curve["best_valid_clip_acc"].tolist() == [0.3, 0.6, 0.6, 0.6]


def test_curve_leaves_out_epochs_past_the_budget():
    found = records([("a", epoch, float(epoch), epoch / 10) for epoch in range(1, 8)])
    curve = anytime.anytime_curve(found, budget=5)
    assert len(curve) == 5
    assert curve["best_valid_clip_acc"].iloc[-1] == 0.5


def test_an_epoch_without_validation_counts_as_spent_and_leaves_the_best_alone():
    found = records([("a", 1, 1.0, float("nan")), ("a", 2, 2.0, 0.4), ("a", 3, 3.0, float("nan"))])
    curve = anytime.anytime_curve(found, budget=10)
    assert np.isnan(curve["best_valid_clip_acc"].iloc[0])
    assert curve["best_valid_clip_acc"].tolist()[1:] == [0.4, 0.4]


def test_a_search_that_stopped_early_keeps_its_final_best_to_the_budget():
    curve = anytime.anytime_curve(records([("a", 1, 1.0, 0.2), ("a", 2, 2.0, 0.7)]), budget=5)
    assert anytime.best_by_epoch(curve, 5).tolist() == [0.2, 0.7, 0.7, 0.7, 0.7]


def test_epochs_to_reach_is_the_first_epoch_count_at_or_above_the_target():
    values = np.array([np.nan, 0.2, 0.5, 0.5, 0.8])
    assert anytime.epochs_to_reach(values, 0.5) == 3
    assert anytime.epochs_to_reach(values, 0.8) == 5
    assert anytime.epochs_to_reach(values, 0.1) == 2
    assert anytime.epochs_to_reach(values, 0.81) is None


def test_seed_bands_are_mean_min_and_max_per_epoch():
    bands = anytime.seed_bands([np.array([0.2, 0.4, 0.6]), np.array([0.4, 0.4, 1.0])])
    assert np.allclose(bands["mean"], [0.3, 0.4, 0.8])
    assert bands["min"].tolist() == [0.2, 0.4, 0.6]
    assert bands["max"].tolist() == [0.4, 0.4, 1.0]


def test_reach_matrix_gives_the_epochs_each_system_needs_for_each_final_best():
    fast = pd.DataFrame({"mean": [0.5, 0.9, 0.9, 0.9]})  # final 0.9, reached at epoch 2
    slow = pd.DataFrame({"mean": [0.1, 0.3, 0.5, 0.6]})  # final 0.6, reached at epoch 4
    matrix = anytime.reach_matrix({"fast": fast, "slow": slow})
    assert matrix.loc["fast", "slow"] == 2  # fast passes slow's final 0.6 at its epoch 2
    assert matrix.loc["fast", "fast"] == 2
    assert matrix.loc["slow", "slow"] == 4
    assert np.isnan(matrix.loc["slow", "fast"])  # slow never reaches 0.9


def test_summary_shares_are_epochs_over_the_budget():
    fast = pd.DataFrame({"mean": [0.5, 0.9, 0.9, 0.9]})
    slow = pd.DataFrame({"mean": [0.1, 0.3, 0.5, 0.6]})
    table = anytime.summary_table(
        {"fast": fast, "slow": slow},
        finals={"fast": [0.8, 1.0], "slow": [0.6, 0.6]},
        seconds={"fast": [10.0, 20.0], "slow": [5.0, 5.0]},
        tests={"fast": [0.7, 0.9]},
        budget=4,
    )
    assert table.loc["fast", "to_reach[slow]"] == 0.5
    assert np.isclose(table.loc["fast", "best_valid_mean"], 0.9) and np.isclose(
        table.loc["fast", "best_valid_std"], 0.1
    )
    assert table.loc["fast", "wall_seconds_mean"] == 15.0
    assert np.isnan(table.loc["slow", "test_mean"]) and table.loc["slow", "retrain_seeds"] == 0
    assert "never" in anytime.format_table(table, 4)
