"""The report's statistics: intervals that cover the true accuracy at their stated rate, McNemar's
exact test as the textbook and scipy compute it, and verdicts that say what the clips show."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from scipy import stats

from reporting.stats import (
    accuracy_interval,
    compare,
    mcnemar,
    proportion_interval,
    verdict,
)


def test_interval_covers_the_true_accuracy_at_about_95_percent() -> None:
    """500 simulated test sets of 104 clips, 3 seeds each: a clip's difficulty (its chance of being
    right) is drawn once per clip and shared by the seeds, as a hard clip is hard for every seed.
    The truth is the accuracy over all clips such a test set could hold, not this set's."""
    rng = np.random.default_rng(0)
    a, b = 6.0, 1.5  # Beta(6, 1.5): true accuracy 0.8, clips from easy to hard
    truth, sets, hits = a / (a + b), 500, 0
    for index in range(sets):
        difficulty = rng.beta(a, b, size=104)
        correct = rng.random((3, 104)) < difficulty
        interval = accuracy_interval(correct, resamples=1000, seed=index)
        hits += interval.low <= truth <= interval.high
    assert 0.93 <= hits / sets <= 0.97, hits / sets


def test_interval_of_a_constant_result_is_a_point() -> None:
    interval = accuracy_interval(np.ones((2, 30), dtype=bool))
    assert (interval.estimate, interval.low, interval.high) == (1.0, 1.0, 1.0)


def test_published_accuracy_gets_the_exact_binomial_interval_on_its_clips() -> None:
    interval = proportion_interval(0.6344, 227)  # the homework: 144 of 227 clips
    expected = stats.binomtest(144, 227).proportion_ci(method="exact")
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high))
    assert 0.56 < interval.low < 0.57 and 0.69 < interval.high < 0.70  # about ±6.5 points


def test_mcnemar_matches_the_worked_example_and_scipy() -> None:
    # Worked by hand: 10 discordant clips, 1 only A gets right, 9 only B; under "equally good" each
    # is A's with probability 1/2, so the two-sided exact p is 2 * (C(10,0) + C(10,1)) / 2**10.
    a = np.array([True] * 20 + [True] + [False] * 9 + [False] * 5)
    b = np.array([True] * 20 + [False] + [True] * 9 + [False] * 5)
    result = mcnemar(a, b)
    assert (result.only_a, result.only_b) == (1, 9)
    assert result.pvalue == pytest.approx(2 * (comb(10, 0) + comb(10, 1)) / 2**10)  # 0.021484375
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = rng.random(60) < 0.7, rng.random(60) < 0.6
        result = mcnemar(a, b)
        n = result.only_a + result.only_b
        assert result.pvalue == pytest.approx(stats.binomtest(result.only_a, n, 0.5).pvalue)


def test_identical_models_are_not_distinguishable() -> None:
    correct = np.random.default_rng(2).random((3, 104)) < 0.7
    result = compare(correct, correct, correct[0], correct[0], "the baseline")
    assert result.test.pvalue == 1.0
    assert result.verdict == "not distinguishable from the baseline on 104 test clips"
    assert (result.difference.low, result.difference.high) == (0.0, 0.0)


def test_a_model_right_wherever_the_other_is_wrong_is_better() -> None:
    other = np.random.default_rng(3).random(104) < 0.6
    ours = np.ones(104, dtype=bool)  # right on every clip, so on every clip the other gets wrong
    result = compare(ours[None], other[None], ours, other, "the baseline")
    assert result.test.only_a == (~other).sum() and result.test.only_b == 0
    assert result.verdict == "better than the baseline at the 5% level"
    assert result.difference.low > 0.0
    assert compare(other[None], ours[None], other, ours, "A").verdict == "worse than A at the 5% level"


def test_a_few_clips_apart_is_not_a_verdict() -> None:
    """Three clips of 104 in one model's favour: the kind of gap Sturm warned is read as progress."""
    other = np.arange(104) < 70
    ours = other.copy()
    ours[70:73] = True
    assert verdict(mcnemar(ours, other), 104, "B") == "not distinguishable from B on 104 test clips"
