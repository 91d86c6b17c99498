"""Ray Tune's `Tuner` for a search, new or restored: the trainable with the features in Ray's object
store, the searcher, ASHA (or FIFO), the epoch budget, checkpoints kept, trial names and the
progress callback; the last four share one record of why each trial ended (search.asha)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler
from ray.tune.stopper import Stopper

from common import experiment as experiments
from common import upstream
from common.trials import STOPS_FILE
from features.settings import FeatureSetting
from features.store import FeatureStore
from search.asha import RecordingASHA, StopLog
from search.optuna_search import first_trial_label, first_trials, searcher
from search.progress import Plan, SearchProgress
from search.space import Space
from search.tensorboard_log import SearchTensorBoard
from search.trainable import train_trial


class EpochBudget(Stopper):
    """Ends the whole search once its trials have reported `epochs` epochs in all (search.epoch_budget):
    searches compared at an equal compute budget. Trials under way when it is reached stop there.
    Its count starts again on a resumed search."""

    stop_log: StopLog | None = None  # also for stoppers pickled before it existed (resume)

    def __init__(self, epochs: int, stop_log: StopLog | None = None):
        self.epochs = epochs
        self.spent = 0
        self.stop_log = stop_log  # told when the budget is spent: the trials stopped then say so

    def __call__(self, trial_id: str, result: dict) -> bool:
        self.spent += 1  # one result per epoch (training.fit reports every epoch)
        return False

    def stop_all(self) -> bool:
        spent = self.spent >= self.epochs
        if spent and self.stop_log is not None:
            self.stop_log.budget_spent = True
        return spent


class UnstartedTrialsQuiet(logging.Filter):
    """Drops Ray's warning "Failed to fetch metrics ... not found" when every trial it names has no
    result file: a trial the epoch budget (or a stop) ended before its first epoch. The leaderboard
    lists it ("no result"); any other failure to read a trial's results is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        lines = record.getMessage().splitlines()
        unstarted = all("FileNotFoundError" in line and "were not found" in line for line in lines[1:])
        return not (lines and lines[0].startswith("Failed to fetch metrics") and len(lines) > 1 and unstarted)


RESULTS_LOGGER = "ray.tune.analysis.experiment_analysis"  # reads each trial's results for the ResultGrid
QUIET = UnstartedTrialsQuiet()


def build_tuner(
    experiment: experiments.Experiment, space: Space, stores: dict[FeatureSetting, Path], restore: bool
) -> tune.Tuner:
    """The search's Tuner: a new one, or (`restore`) Ray's own restored from the experiment."""
    logging.getLogger(RESULTS_LOGGER).addFilter(QUIET)  # once: a filter already there is not added again
    # Ray's own output off (verbose=0 still prints a header box, whose "Number of trials" is
    # 9223372036854775807 for num_samples=-1): Ray's switch to its older output, silent at verbose=0.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # Ray warns, three lines at a time, when a trial's checkpoints force a snapshot of the run within
    # 5 s of the last one: search.keep_checkpoints forces them on purpose (below), and the snapshot is
    # a small file. The warning is off unless the user sets it.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # The driver loads train and valid only; trials get them from the object store, never from disk.
    data = {setting.name: FeatureStore(path).load_fit_data() for setting, path in stores.items()}
    refs = {name: ray.put(fit_data) for name, fit_data in data.items()}
    valid_clips = len(next(iter(data.values())).valid.labels)
    del data
    failures = str(experiment.local_dir / experiments.CONFIG_FAILURES_DIR)
    trainable = tune.with_parameters(
        train_trial, stores=refs, failures_dir=failures, experiment=experiment.name, plugins=space.plugins
    )
    cluster = ray.cluster_resources()
    trainable = tune.with_resources(trainable, _resources(space, cluster))
    if restore:
        return tune.Tuner.restore(experiment.uri, trainable=trainable, resume_unfinished=True)
    return _new_tuner(trainable, space, experiment, valid_clips, trial_slots(space, cluster))


def _resources(space: Space, cluster: dict[str, float]) -> dict[str, float]:
    has_gpu = cluster.get("GPU", 0) > 0
    gpus = space.search.gpus_per_trial if has_gpu else 0.0
    return {"cpu": space.search.cpus_per_trial, "gpu": gpus}


def trial_slots(space: Space, cluster: dict[str, float]) -> int:
    """How many trials the cluster (Ray's resources when the search starts) runs side by side."""
    trial = _resources(space, cluster)
    slots = int(cluster.get("CPU", 0.0) // trial["cpu"])
    if trial["gpu"]:
        slots = min(slots, int(cluster.get("GPU", 0.0) // trial["gpu"]))
    return max(1, slots)


def _new_tuner(
    trainable: Any, space: Space, experiment: experiments.Experiment, valid_clips: int, slots: int
) -> tune.Tuner:
    search = space.search
    stop_log = StopLog(search.max_epochs)  # one object in all four: tuner.pkl keeps them shared on resume
    plan = Plan(search.num_samples, search.max_epochs, search.epoch_budget, valid_clips)
    name = TrialNamer(first_trials(space))
    search_alg = searcher(space, experiment.name, optuna.storages.RDBStorage(experiment.study_url), stop_log)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            scheduler=_scheduler(space, stop_log),
            num_samples=-1,  # without end: the searcher counts the trials (ResumableOptunaSearch says why)
            # As many trials at once as there are slots, no more (ResumableOptunaSearch says why).
            max_concurrent_trials=slots,
            reuse_actors=search.reuse_workers,  # SearchSettings says why not by default
            trial_name_creator=name,
            trial_dirname_creator=name,
        ),
        run_config=tune.RunConfig(
            name=experiment.name,
            storage_path=experiment.storage,
            failure_config=tune.FailureConfig(max_failures=search.max_failures),
            # The newest checkpoints, not the best: only resume reads them (the report retrains
            # from the config), and the run's snapshot, saved every few seconds, then always names
            # a checkpoint that is still there when a killed driver is resumed.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=search.keep_checkpoints),
            # One progress line instead of Ray Tune's tables (a configuration table per trial).
            verbose=0,
            stop=EpochBudget(search.epoch_budget, stop_log) if search.epoch_budget else None,
            callbacks=[
                SearchProgress(experiment.name, plan, stop_log, experiment.local_dir / STOPS_FILE, search_alg),
                SearchTensorBoard(space.parameters()),  # instead of Ray Tune's own TensorBoard logger
            ],
        ),
    )


def _scheduler(space: Space, stop_log: StopLog) -> Any:
    search = space.search
    if search.scheduler == "fifo":
        return FIFOScheduler()
    return RecordingASHA(
        stop_log,
        metric=search.metric,
        max_t=search.max_epochs,
        grace_period=search.grace_period,
        reduction_factor=search.reduction_factor,
    )


def trial_name(trial: Any) -> str:
    """Readable names for the dashboard and the folders: architecture, optimizer, features, id."""
    config = upstream.ray_trial_config(trial)
    parts = [config["model"]["arch"], config["optimizer"]["name"], config["features"].get("kind", "mel")]
    return "_".join([*parts, trial.trial_id])


class TrialNamer:
    """trial_name, but a queued first trial (search.first_trials) is named by its label and id
    (`recipe-3s_<id>`): two first trials of one architecture differ at a glance."""

    def __init__(self, first: list[tuple[str, dict[str, Any]]]):
        self.first = first

    def __call__(self, trial: Any) -> str:
        label = first_trial_label(upstream.ray_trial_config(trial), self.first)
        return f"{label}_{trial.trial_id}" if label else trial_name(trial)
