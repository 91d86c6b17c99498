"""How sure a reported accuracy is, and whether one model really beats another on the same clips.

Intervals are scipy's bootstrap over clips (BCa, seeded, so a report is reproducible): the test
set is a sample of clips, and a model's accuracy on another sample of the same size would differ.
With several seeds, each clip's correctness is first averaged over the seeds, so the interval
covers the seed-averaged accuracy and carries both the training noise and the finite test set.
A published accuracy without its predictions gets the exact binomial (Clopper-Pearson) interval.
Two models on the same clips are compared by McNemar's exact test: a binomial test on the clips
exactly one of them gets right.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE  # the level of the verdicts: "better at the 5% level"
RESAMPLES = 9999
BOOTSTRAP_SEED = 0
BOOTSTRAP_METHOD = (
    "bootstrap over clips (scipy.stats.bootstrap, BCa, 9999 resamples, seed 0) of each clip's correctness"
    " averaged over the seeds"
)
BINOMIAL_METHOD = "exact binomial (Clopper-Pearson) interval"
MCNEMAR_METHOD = "McNemar's exact test (scipy.stats.binomtest on the clips exactly one model gets right)"


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": CONFIDENCE}

    def text(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


def accuracy_interval(correct: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """The 95% interval of the accuracy of `correct`, (clips,) or (seeds, clips) booleans."""
    per_clip = np.atleast_2d(np.asarray(correct, dtype=np.float64)).mean(axis=0)
    return _bootstrap_mean(per_clip, resamples, seed)


def difference_interval(
    correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> Interval:
    """The 95% interval of accuracy(A) - accuracy(B) on the same clips, each (clips,) or
    (seeds, clips): a paired bootstrap (both models' results of a clip are resampled together)."""
    per_clip_a = np.atleast_2d(np.asarray(correct_a, dtype=np.float64)).mean(axis=0)
    per_clip_b = np.atleast_2d(np.asarray(correct_b, dtype=np.float64)).mean(axis=0)
    return _bootstrap_mean(per_clip_a - per_clip_b, resamples, seed)


def _bootstrap_mean(values: np.ndarray, resamples: int, seed: int) -> Interval:
    estimate = float(values.mean())
    if np.ptp(values) == 0:  # every clip alike (all right, say): no resample differs, BCa is undefined
        return Interval(estimate, estimate, estimate)
    with warnings.catch_warnings():  # BCa's warning on nearly degenerate samples: the interval still stands
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (values,), np.mean, n_resamples=resamples, confidence_level=CONFIDENCE, rng=np.random.default_rng(seed)
        )
    return Interval(estimate, float(result.confidence_interval.low), float(result.confidence_interval.high))


def proportion_interval(accuracy: float, clips: int) -> Interval:
    """The exact binomial interval of an accuracy published as a number only, on `clips` clips."""
    right = round(accuracy * clips)
    ci = stats.binomtest(right, clips).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return Interval(accuracy, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class McNemar:
    only_a: int  # clips A gets right and B wrong
    only_b: int  # clips B gets right and A wrong
    pvalue: float


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's exact test on two models' (clips,) correctness on the same clips: under "equally
    good", each discordant clip is A's or B's with probability 1/2."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return McNemar(0, 0, 1.0)
    return McNemar(only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue))


def verdict(test: McNemar, clips: int, other: str) -> str:
    """One sentence: A against `other` ("the baseline", "B") at the 5% level."""
    if test.pvalue >= ALPHA:
        return f"not distinguishable from {other} on {clips} test clips"
    better = "better" if test.only_a > test.only_b else "worse"
    return f"{better} than {other} at the 5% level"


@dataclass(frozen=True)
class Comparison:
    """Model A against model B on the same test clips."""

    clips: int
    difference: Interval  # seed-averaged accuracy A - B, paired bootstrap
    ensemble_difference: Interval  # the seeds' ensembles, A - B, paired bootstrap
    test: McNemar  # on the ensembles' correctness: one classifier per side, as the test needs
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "test_clips": self.clips,
            "difference": self.difference.to_dict(),
            "ensemble_difference": self.ensemble_difference.to_dict(),
            "mcnemar": {**asdict(self.test), "method": MCNEMAR_METHOD},
            "verdict": self.verdict,
        }


def compare(
    seeds_a: np.ndarray, seeds_b: np.ndarray, ensemble_a: np.ndarray, ensemble_b: np.ndarray, other: str
) -> Comparison:
    """A against B: (seeds, clips) correctness of each seed, and (clips,) of each ensemble."""
    test = mcnemar(ensemble_a, ensemble_b)
    clips = len(ensemble_a)
    return Comparison(
        clips=clips,
        difference=difference_interval(seeds_a, seeds_b),
        ensemble_difference=difference_interval(ensemble_a, ensemble_b),
        test=test,
        verdict=verdict(test, clips, other),
    )
