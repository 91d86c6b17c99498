"""The searcher: Ray Tune's OptunaSearch on the space's define-by-run function, with TPE (or random
search) as its sampler, made to survive a killed driver and to count the search's trials itself."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from common import upstream
from search.settings import SearchSettings
from search.space import Space

log = logging.getLogger(__name__)


def searcher(space: Space, study_name: str, storage: optuna.storages.BaseStorage) -> ResumableOptunaSearch:
    """TPE (or random search) on the space's define-by-run function, search.first_trials queued first."""
    return ResumableOptunaSearch(
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
      yet another file, so Ray is told to sample without end and this searcher says when to stop."""

    def __init__(self, *args: Any, num_samples: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._num_samples = num_samples
        self._run_trials: set[str] = set()  # the Ray trials of this search (restored: the run snapshot's)

    def suggest(self, trial_id: str) -> dict | str | None:
        if len(self._run_trials) >= self._num_samples:
            return Searcher.FINISHED
        self._run_trials.add(trial_id)
        return super().suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._open_in_study(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if self._open_in_study(trial_id):
            super().on_trial_complete(trial_id, result, error)
        elif trial_id not in upstream.optuna_search_trials(self):
            log.warning("trial %s was in Ray's snapshot of the run only: Optuna did not learn from it", trial_id)

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        super().restore_from_dir(checkpoint_dir)
        snapshot = upstream.newest_run_state(Path(checkpoint_dir))  # Ray downloaded it there to resume
        self._run_trials = set(upstream.run_state_trials(snapshot, "trial_id")) if snapshot else set()
        asked, study = upstream.optuna_search_trials(self), upstream.optuna_search_study(self)
        resumed = {asked[trial_id].number for trial_id in self._run_trials if trial_id in asked}
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial in running:
            if trial.number not in resumed:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def _open_in_study(self, trial_id: str) -> bool:
        trial = upstream.optuna_search_trials(self).get(trial_id)
        return trial is not None and not upstream.optuna_search_study(self).trials[trial.number].state.is_finished()
