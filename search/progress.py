"""The search's progress as the driver shows it: where to watch it (TensorBoard, the metrics
endpoint), then one line in the terminal (trials by status, the best so far, elapsed and estimated
time left) instead of Ray Tune's tables, and the same numbers as the search's metrics
(search.metrics). Full details stay in the experiment folder's files."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ray
from ray.tune import Callback

from common import experiment as experiments
from common import upstream
from common.trials import INTERRUPTED, METRIC
from search.lifecycle import stop_signal
from search.metrics import record_search

PRINT_EVERY_SECONDS = 30.0  # at most one line per this many seconds, unless a trial ended


def print_where_to_watch(experiment: experiments.Experiment) -> None:
    """The per-trial viewer's command for this experiment and the node's metrics endpoint (the
    dashboard's URL is printed when Ray starts)."""
    print(
        f"Per-trial curves and hyperparameters: tensorboard --logdir {experiment.uri}  (then open http://localhost:6006)"
    )
    for node in ray.nodes():
        if node["Alive"]:
            address = f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}"
            print(f"Search metrics (Prometheus format, genre_search_*): http://{address}/metrics")


@dataclass(frozen=True)
class Snapshot:
    counts: Counter  # status (search.metrics.STATUSES) -> trials
    best: float | None  # best validation clip accuracy of any trial so far
    best_trial: str | None
    epochs: int = 0  # epochs reported by all trials so far


def trial_status(trial: Any, max_epochs: int, interrupted: bool = False) -> str:
    """A trial's status in the leaderboard's terms: a trial that ended before `max_epochs` was
    stopped early (by ASHA, or by its own schedule); in a search `interrupted`, one that Ray Tune
    stopped at the end without its last result saying `done` was cut off."""
    status = upstream.ray_trial_status(trial)
    if status == upstream.TRIAL_ERROR:
        return "errored"
    last = upstream.ray_trial_last_result(trial)
    if status == upstream.TRIAL_TERMINATED and interrupted and not last.get("done"):
        return INTERRUPTED
    if status == upstream.TRIAL_TERMINATED:
        return "finished" if last.get("training_iteration", 0) >= max_epochs else "stopped_early"
    return "running" if status == upstream.TRIAL_RUNNING else "pending"


def snapshot(trials: Iterable[Any], max_epochs: int, interrupted: bool = False) -> Snapshot:
    trials = list(trials)
    counts = Counter(trial_status(trial, max_epochs, interrupted) for trial in trials)
    scored = [(best_of(trial), str(trial)) for trial in trials if best_of(trial) is not None]
    best, best_trial = max(scored) if scored else (None, None)
    epochs = sum(upstream.ray_trial_last_result(trial).get("training_iteration", 0) for trial in trials)
    return Snapshot(counts, best, best_trial, epochs)


def best_of(trial: Any) -> float | None:
    """The trial's best validation clip accuracy at any epoch (Ray Tune keeps it per trial)."""
    return upstream.ray_trial_best(trial, METRIC)


def progress_line(state: Snapshot, num_samples: int, elapsed: float, epoch_budget: int | None = None) -> str:
    """e.g. `[4m10s] 6/32 done (2 finished, 3 stopped early, 1 errored), 2 running | best 0.812
    cnn2d_adam_mel_1a2b | about 18m left`. The time left assumes the trials still to end take as
    long, on average, as those that ended (ASHA's early stops make it a rough guess). With an
    epoch budget, the epochs spent are shown and the time left assumes the rest run as fast."""
    counts = state.counts
    done = counts["finished"] + counts["stopped_early"] + counts["errored"]
    parts = [
        f"[{_duration(elapsed)}] {done}/{num_samples} done ({counts['finished']} finished, "
        f"{counts['stopped_early']} stopped early, {counts['errored']} errored), {counts['running']} running"
    ]
    if counts[INTERRUPTED]:
        parts[0] += f", {counts[INTERRUPTED]} {INTERRUPTED}"
    if state.best is not None:
        parts.append(f"best {state.best:.3f} {state.best_trial}")
    if epoch_budget is not None:
        parts.append(f"{state.epochs}/{epoch_budget} epochs")
    if epoch_budget is not None and 0 < state.epochs < epoch_budget:
        parts.append(f"about {_duration(elapsed * (epoch_budget - state.epochs) / state.epochs)} left")
    elif 0 < done < num_samples:
        parts.append(f"about {_duration(elapsed * (num_samples - done) / done)} left")
    return " | ".join(parts)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class SearchProgress(Callback):
    """A Ray Tune callback on the driver: after each step of the search loop, the search's gauges;
    a progress line when a trial ended, else at most every PRINT_EVERY_SECONDS."""

    epoch_budget: int | None = None  # also for callbacks pickled before this attribute existed (resume)

    def __init__(self, experiment: str, num_samples: int, max_epochs: int, epoch_budget: int | None = None):
        self.experiment = experiment
        self.num_samples = num_samples
        self.max_epochs = max_epochs
        self.epoch_budget = epoch_budget
        self.setup()

    def setup(self, **info: Any) -> None:
        """Called by Ray Tune as a run starts, a resumed one too (this object is restored from
        the experiment's tuner.pkl): elapsed time counts from here."""
        self.started = time.monotonic()
        self.printed_at = float("-inf")
        self.printed_done = 0

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._update(trials, every=PRINT_EVERY_SECONDS)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._update(trials, every=float("inf"))  # the last line, unless it is printed already

    def _update(self, trials: list[Any], every: float) -> None:
        state = snapshot(trials, self.max_epochs, interrupted=stop_signal() is not None)
        record_search(self.experiment, state.counts, state.best)
        done = state.counts["finished"] + state.counts["stopped_early"] + state.counts["errored"]
        now = time.monotonic()
        if done != self.printed_done or now - self.printed_at >= every:
            print(progress_line(state, self.num_samples, now - self.started, self.epoch_budget), flush=True)
            self.printed_at, self.printed_done = now, done
