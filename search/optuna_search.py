"""The searcher: Ray Tune's OptunaSearch on the space's define-by-run function, with TPE (or random
search) as its sampler, made to survive a killed driver, to count the search's trials itself and to
keep its study the live record of the search (every epoch's value; ASHA's cuts as pruned trials)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from common import upstream
from common.trials import EPOCH
from search.asha import RUNG_CUT, StopLog
from search.lifecycle import stop_signal
from search.settings import SearchSettings
from search.space import Space

log = logging.getLogger(__name__)


def searcher(
    space: Space, study_name: str, storage: optuna.storages.BaseStorage, stop_log: StopLog | None = None
) -> ResumableOptunaSearch:
    """TPE (or random search) on the space's define-by-run function, search.first_trials queued first;
    `stop_log`: why each trial ended, told to the study (search.asha)."""
    return ResumableOptunaSearch(
        stop_log=stop_log,
        first_trials=first_trials(space),
        space=SpaceSampler(space),
        metric=space.search.metric,
        mode="max",
        num_samples=space.search.num_samples,
        sampler=sampler(space.search),
        points_to_evaluate=space.first_trial_params() or None,
        study_name=study_name,
        storage=storage,
    )


def sampler(search: SearchSettings) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for the search's settings: TPE with its options, or random search."""
    if search.searcher == "random":  # Ray Tune's own default, random search, on the same conditional space
        return optuna.samplers.RandomSampler(seed=search.seed)
    with warnings.catch_warnings():  # Optuna marks multivariate, group and constant_liar experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=search.seed,
            multivariate=search.tpe_multivariate,
            group=search.tpe_multivariate,
            constant_liar=search.tpe_constant_liar,
            n_startup_trials=search.tpe_startup_trials,
        )


def first_trials(space: Space) -> list[tuple[str, dict[str, Any]]]:
    """search.first_trials that fit the space, as (label, Optuna's params)."""
    return space.first_trials()


def first_trial_label(config: dict[str, Any], first: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The label of the queued first trial whose values the trial's config holds; None for others."""
    for label, params in first:
        if params and all(config.get(name) == value for name, value in params.items()):
            return label
    return None


class SpaceSampler:
    """Optuna's define-by-run function (a picklable object, so a restored searcher has it)."""

    def __init__(self, space: Space):
        self.space = space

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        return self.space.suggest(trial)


class ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch that survives a killed driver, and counts the search's trials itself.

    Its study lives in SQLite, written at once; Ray writes a snapshot of the run (its trials) and
    one of this searcher every few seconds, and uploads them as separate files. A driver killed at
    any moment can thus leave the three out of step; on restore the run snapshot, which says what
    Ray resumes, decides:
    - study trials that belong to no trial Ray resumes are closed as failed;
    - a trial Ray resumes that the restored searcher never proposed runs, and reaches the
      leaderboard, but Optuna, which has no trial for it, skips its results;
    - a trial Ray resumes that the study has already closed: its further results change nothing
      Optuna uses, so they are dropped (Optuna would refuse them, ending the search);
    - the search's `num_samples` counts the trials the run snapshot holds: Ray's own count lives in
      yet another file, so Ray is told to sample without end and this searcher says when to stop.

    It also proposes no more trials at once than the search has slots (Tune's `max_concurrent_trials`,
    which Ray hands to `set_max_concurrency`): Ray Tune otherwise keeps one trial pending beside the
    running ones, and starts a new worker for it whenever a slot is free; a trial shorter than that
    start then hands its worker to the pending trial and the new worker is thrown away, again and
    again, and the search runs one trial at a time. Counted here rather than by Ray's
    ConcurrencyLimiter, whose restored count would keep a slot for a trial the run never resumed."""

    # Also for searchers pickled before these existed (resume).
    stop_log: StopLog | None = None
    first: list[tuple[str, dict[str, Any]]] = []
    _max_live: int = 0  # 0: no limit
    _live: frozenset[str] = frozenset()

    def __init__(
        self,
        *args: Any,
        num_samples: int,
        stop_log: StopLog | None = None,
        first_trials: list[tuple[str, dict[str, Any]]] = (),
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._num_samples = num_samples
        self._run_trials: set[str] = set()  # the Ray trials of this search (restored: the run snapshot's)
        self.stop_log = stop_log  # shared with the scheduler and the progress callback (search.asha)
        self.first = list(first_trials)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self._max_live = max_concurrent
        return True  # this searcher keeps the limit: Ray's ConcurrencyLimiter passes everything through

    def suggest(self, trial_id: str) -> dict | str | None:
        if len(self._run_trials) >= self._num_samples:
            return Searcher.FINISHED
        if self._max_live and len(self._live) >= self._max_live:
            return None  # Ray asks again once a trial has ended
        self._run_trials.add(trial_id)
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            self._live = self._live | {trial_id}
        label = first_trial_label(config, self.first) if isinstance(config, dict) else None
        if label:
            upstream.optuna_search_trials(self)[trial_id].set_user_attr("label", label)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._open_in_study(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """The study learns why the trial ended (StopLog): its last epoch's value as an intermediate
        value too (Ray reports none for the result a scheduler stops on), and a trial ASHA cut is
        pruned, at its last epoch's value, with `stop_reason`, `rung` and `cutoff` user attrs."""
        self._live = self._live - {trial_id}
        record = self.stop_log.file(trial_id, result, error, stop_signal() is not None) if self.stop_log else None
        if self._open_in_study(trial_id):
            if record is not None:
                self._tell_why(trial_id, result or {}, record)
            pruned = record is not None and record.reason == RUNG_CUT
            super().on_trial_complete(trial_id, None if pruned else result, error)
        elif trial_id not in upstream.optuna_search_trials(self):
            log.warning("trial %s was in Ray's snapshot of the run only: Optuna did not learn from it", trial_id)

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        stop_log = self.stop_log  # this run's, shared with its scheduler and callback
        super().restore_from_dir(checkpoint_dir)
        self.stop_log = stop_log
        self._live = frozenset()  # the trials Ray resumes come back without asking: none is counted
        snapshot = upstream.newest_run_state(Path(checkpoint_dir))  # Ray downloaded it there to resume
        self._run_trials = set(upstream.run_state_trials(snapshot, "trial_id")) if snapshot else set()
        asked, study = upstream.optuna_search_trials(self), upstream.optuna_search_study(self)
        resumed = {asked[trial_id].number for trial_id in self._run_trials if trial_id in asked}
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial in running:
            if trial.number not in resumed:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def _tell_why(self, trial_id: str, result: dict, record: Any) -> None:
        trial = upstream.optuna_search_trials(self)[trial_id]
        if result.get(self.metric) is not None and result.get(EPOCH) is not None:
            with warnings.catch_warnings():  # Optuna warns, and keeps the first, for a step reported twice
                warnings.simplefilter("ignore")
                trial.report(float(result[self.metric]), int(result[EPOCH]))
        trial.set_user_attr("stop_reason", record.reason)
        if record.rung is not None:
            trial.set_user_attr("rung", record.rung)
            trial.set_user_attr("cutoff", record.cutoff)

    def _open_in_study(self, trial_id: str) -> bool:
        trial = upstream.optuna_search_trials(self).get(trial_id)
        return trial is not None and not upstream.optuna_search_study(self).trials[trial.number].state.is_finished()
