"""The search's progress as the driver shows it: where to watch it (TensorBoard, the metrics
endpoint), then one line in the terminal (trials by status, the leader and its margin, epochs and
time left) and one per ended trial saying why, instead of Ray Tune's tables, with the same numbers
as the search's metrics (search.metrics). Full details stay in the experiment folder's files."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.tune import Callback

from common import experiment as experiments
from common import upstream
from common.partials import atomic_write
from common.trials import EPOCH, INTERRUPTED, LOSS, METRIC, rank_key, read_stops
from search import dashboard
from search.asha import StopLog
from search.lifecycle import stop_signal
from search.metrics import record_search

PRINT_EVERY_SECONDS = 30.0  # at most one line per this many seconds, unless a trial ended


def print_where_to_watch(experiment: experiments.Experiment) -> None:
    """The per-trial viewer's command for this experiment and the node's metrics endpoint (the
    dashboard's URL is printed when Ray starts)."""
    print(
        f"Per-trial curves and hyperparameters: tensorboard --logdir {experiment.uri}  (then open http://localhost:6006)"
    )
    print(f"Trials, curves, importance: {dashboard.command(experiment.study_url)}  (then open {dashboard.URL})")
    for node in ray.nodes():
        if node["Alive"]:
            address = f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}"
            print(f"Search metrics (Prometheus format, genre_search_*): http://{address}/metrics")


@dataclass(frozen=True)
class Snapshot:
    counts: Counter  # status (search.metrics.STATUSES) -> trials
    best: float | None  # best validation clip accuracy of any trial so far
    best_trial: str | None  # the leader (common.trials.rank_key)
    epochs: int = 0  # epochs reported by all trials so far
    runner_up: tuple[str, float] | None = None  # the second trial and its best
    cut: int = 0  # epochs that trials already ended will never run (max_epochs minus their epochs)


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
        return "finished" if last.get(EPOCH, 0) >= max_epochs else "stopped_early"
    return "running" if status == upstream.TRIAL_RUNNING else "pending"


def snapshot(
    trials: Iterable[Any], max_epochs: int, interrupted: bool = False, bests: dict[str, BestEpoch] | None = None
) -> Snapshot:
    """The search now. `bests`: each trial's best epoch as the callback saw it (by trial id), for
    the tie rule; a trial missing there (a resumed run's) counts with Ray's best and its last epoch."""
    trials = list(trials)
    statuses = [trial_status(trial, max_epochs, interrupted) for trial in trials]
    epochs = [upstream.ray_trial_last_result(trial).get(EPOCH, 0) for trial in trials]
    keys = [_rank(trial, order, epochs[order], bests or {}) for order, trial in enumerate(trials)]
    leaders = sorted((key, str(trial)) for key, trial in zip(keys, trials, strict=True) if key is not None)
    best, best_trial = (-leaders[0][0][0], leaders[0][1]) if leaders else (None, None)
    runner_up = (leaders[1][1], -leaders[1][0][0]) if len(leaders) > 1 else None
    ended = [e for s, e in zip(statuses, epochs, strict=True) if s not in ("running", "pending")]
    cut = sum(max(max_epochs - e, 0) for e in ended)
    return Snapshot(Counter(statuses), best, best_trial, sum(epochs), runner_up, cut)


BestEpoch = tuple[float, float | None, int]  # a trial's best validation clip accuracy, its loss and epoch


def _rank(trial: Any, order: int, epochs: int, bests: dict[str, BestEpoch]) -> tuple | None:
    seen = bests.get(getattr(trial, "trial_id", str(trial)))
    if seen is not None:
        return rank_key(*seen, order)
    best = best_of(trial)
    return None if best is None else rank_key(best, None, epochs, order)


def best_of(trial: Any) -> float | None:
    """The trial's best validation clip accuracy at any epoch (Ray Tune keeps it per trial)."""
    return upstream.ray_trial_best(trial, METRIC)


@dataclass(frozen=True)
class Plan:
    """What the search can spend: trials, epochs per trial, the epoch budget; and the validation
    clips (a margin of one clip is 1/valid_clips of accuracy)."""

    num_samples: int
    max_epochs: int
    epoch_budget: int | None = None
    valid_clips: int | None = None

    def spendable(self, state: Snapshot) -> int:
        """Epochs the search can run in all: every trial to max_epochs, less what ended trials will
        never run, within the epoch budget."""
        whole = self.num_samples * self.max_epochs - state.cut
        return whole if self.epoch_budget is None else min(self.epoch_budget, whole)


def progress_line(state: Snapshot, plan: Plan, elapsed: float, ended: bool = False) -> str:
    """e.g. `[4m10s] 6/32 done (2 finished, 3 stopped early, 1 errored), 2 running | leader
    recipe-3s_… 0.812, 2 clips ahead of cnn2d_adam_mel_… 0.781 | 60/236 epochs | about 18m left`.
    The time left assumes the epochs still to run (Plan.spendable) take as long, on average, as
    those run so far; `ended`: the search is over, the line says done."""
    counts = state.counts
    done = counts["finished"] + counts["stopped_early"] + counts["errored"] + counts[INTERRUPTED]
    head = (
        f"[{_duration(elapsed)}] {done}/{plan.num_samples} done ({counts['finished']} finished, "
        f"{counts['stopped_early']} stopped early, {counts['errored']} errored), {counts['running']} running"
    )
    if counts[INTERRUPTED]:
        head += f", {counts[INTERRUPTED]} {INTERRUPTED}"
    parts = [head]
    if state.best is not None:
        parts.append(f"leader {state.best_trial} {state.best:.3f}{_margin(state, plan.valid_clips)}")
    spendable = state.epochs if ended else max(plan.spendable(state), state.epochs)
    parts.append(f"{state.epochs}/{spendable} epochs")
    if ended:
        parts.append("done")
    elif 0 < state.epochs < spendable:
        parts.append(f"about {_duration(elapsed * (spendable - state.epochs) / state.epochs)} left")
    return " | ".join(parts)


def _margin(state: Snapshot, valid_clips: int | None) -> str:
    if state.runner_up is None or state.best is None:
        return ""
    name, value = state.runner_up
    gap = state.best - value
    if valid_clips:
        clips = round(gap * valid_clips)
        ahead = f"{clips} clip{'' if clips == 1 else 's'} ahead of" if clips else "tied with"
    else:
        ahead = f"{gap:.3f} ahead of" if gap else "tied with"
    return f", {ahead} {name} {value:.3f}"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class SearchProgress(Callback):
    """A Ray Tune callback on the driver: after each step of the search loop, the search's gauges;
    a progress line when a trial ended (with why: search.asha), else at most every
    PRINT_EVERY_SECONDS; at the end, the last line and the gauges flushed to the endpoint."""

    # Also for callbacks pickled before these attributes existed (resume).
    epoch_budget: int | None = None
    plan: Plan | None = None
    stop_log: StopLog | None = None
    stops_file: Path | None = None
    searcher: Any = None

    def __init__(
        self,
        experiment: str,
        plan: Plan,
        stop_log: StopLog | None = None,
        stops_file: Path | None = None,
        searcher: Any = None,
    ):
        self.experiment = experiment
        self.plan = plan
        self.num_samples, self.max_epochs, self.epoch_budget = plan.num_samples, plan.max_epochs, plan.epoch_budget
        self.stop_log = stop_log  # shared with the scheduler and the searcher
        self.stops_file = stops_file
        self.searcher = searcher  # told of the trials the epoch budget ended (Ray does not)
        self.setup()

    def setup(self, **info: Any) -> None:
        """Called by Ray Tune as a run starts, a resumed one too (this object is restored from
        the experiment's tuner.pkl): elapsed time counts from here."""
        self.started = time.monotonic()
        self.printed_at = float("-inf")
        self.printed_done = 0
        self.bests: dict[str, BestEpoch] = {}

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        if result.get(METRIC) is None or result.get(EPOCH) is None:
            return
        seen = (float(result[METRIC]), result.get(LOSS), int(result[EPOCH]))
        known = self.bests.get(trial.trial_id)
        if known is None or rank_key(*seen, 0) < rank_key(*known, 0):
            self.bests[trial.trial_id] = seen

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._update(trials, every=PRINT_EVERY_SECONDS)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._file_the_rest(trials)
        self._update(trials, every=0.0, ended=True)  # the last line, saying done (the final counts)

    def _file_the_rest(self, trials: list[Any]) -> None:
        """Trials Ray stopped all at once (the epoch budget spent, Ctrl-C) without telling the searcher
        or the callbacks: why each ended. The study learns it for the budget's; an interrupted trial
        stays open there, as Ray resumes it."""
        if self.stop_log is None:
            return
        interrupted = stop_signal() is not None
        for trial in trials:
            if trial.trial_id in self.stop_log.ended:
                continue
            last = upstream.ray_trial_last_result(trial)
            error = upstream.ray_trial_status(trial) == upstream.TRIAL_ERROR
            if self.searcher is not None and self.stop_log.budget_spent and not interrupted:
                self.searcher.on_trial_complete(trial.trial_id, last, error)  # files it too
            else:
                self.stop_log.file(trial.trial_id, last, error, interrupted)
            self._ended(trial)

    def _ended(self, trial: Any) -> None:
        """Say why the trial ended (filed by the searcher just before), and keep it in stops.json."""
        record = self.stop_log.ended.get(trial.trial_id) if self.stop_log else None
        if record is None:
            return
        print(f"{trial} ended: {record.text()}", flush=True)
        if self.stops_file is not None:
            stops = read_stops(self.stops_file.parent)
            stops[str(trial)] = record.as_row()
            with atomic_write(self.stops_file) as out:
                json.dump(stops, out, indent=1)

    def _update(self, trials: list[Any], every: float, ended: bool = False) -> None:
        state = snapshot(trials, self.max_epochs, interrupted=stop_signal() is not None, bests=self.bests)
        record_search(self.experiment, state.counts, state.best)
        done = sum(state.counts[s] for s in ("finished", "stopped_early", "errored", INTERRUPTED))
        now = time.monotonic()
        if done != self.printed_done or now - self.printed_at >= every:
            plan = self.plan or Plan(self.num_samples, self.max_epochs, self.epoch_budget)
            print(progress_line(state, plan, now - self.started, ended), flush=True)
            self.printed_at, self.printed_done = now, done
