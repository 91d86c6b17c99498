"""Watching a search: the terminal's progress line, counting trials by status with the best so far.
A real running search, watched by trial (Ray's dashboard API, the metrics endpoint, TensorBoard),
is tests/test_watch_live.py's test_a_running_search_is_visible_by_trial: one search for both."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.experiment import Trial

from search.progress import Plan, progress_line, snapshot


class Named(SimpleNamespace):
    def __str__(self) -> str:
        return self.name


def trial(name: str, status: str, epochs: int = 0, best: float | None = None) -> Named:
    analysis = {"valid_clip_acc": {"max": best}} if best is not None else {}
    return Named(name=name, status=status, last_result={"training_iteration": epochs}, metric_analysis=analysis)


def test_progress_line_counts_trials_by_status_with_the_best_so_far() -> None:
    trials = [
        trial("a", Trial.TERMINATED, epochs=8, best=0.5),
        trial("b", Trial.TERMINATED, epochs=2, best=0.75),  # ASHA stopped it
        trial("c", Trial.ERROR),
        trial("d", Trial.RUNNING, epochs=3, best=0.625),
        trial("e", Trial.PENDING),
    ]
    line = progress_line(snapshot(trials, max_epochs=8), Plan(10, 8, valid_clips=8), elapsed=150.0)
    # 13 epochs run in 150 s; of 10 trials x 8 epochs, the 3 ended ones never run 14: 53 left, about 611 s.
    assert line == (
        "[2m30s] 3/10 done (1 finished, 1 stopped early, 1 errored), 1 running"
        " | leader b 0.750, 1 clip ahead of d 0.625 | 13/66 epochs | about 10m11s left"
    )
    # With an epoch budget: 13 of 40 epochs in 150 s, the other 27 in about 311 s more.
    line = progress_line(snapshot(trials, max_epochs=8), Plan(10, 8, epoch_budget=40), elapsed=150.0)
    assert line.endswith("| leader b 0.750, 0.125 ahead of d 0.625 | 13/40 epochs | about 5m11s left")
