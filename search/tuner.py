"""Ray Tune's `Tuner` for a search, new or restored: the trainable with the features in Ray's object
store, the searcher, ASHA (or FIFO), the epoch budget, checkpoints kept and the progress callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.stopper import Stopper

from common import experiment as experiments
from common import upstream
from features.settings import FeatureSetting
from features.store import FeatureStore
from search.optuna_search import searcher
from search.progress import SearchProgress
from search.space import Space
from search.trainable import train_trial


class EpochBudget(Stopper):
    """Ends the whole search once its trials have reported `epochs` epochs in all (search.epoch_budget):
    searches compared at an equal compute budget. Trials under way when it is reached stop there.
    Its count starts again on a resumed search."""

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.spent = 0

    def __call__(self, trial_id: str, result: dict) -> bool:
        self.spent += 1  # one result per epoch (training.fit reports every epoch)
        return False

    def stop_all(self) -> bool:
        return self.spent >= self.epochs


def build_tuner(
    experiment: experiments.Experiment, space: Space, stores: dict[FeatureSetting, Path], restore: bool
) -> tune.Tuner:
    """The search's Tuner: a new one, or (`restore`) Ray's own restored from the experiment."""
    # The driver loads train and valid only; trials get them from the object store, never from disk.
    refs = {setting.name: ray.put(FeatureStore(path).load_fit_data()) for setting, path in stores.items()}
    failures = str(experiment.local_dir / experiments.CONFIG_FAILURES_DIR)
    trainable = tune.with_parameters(
        train_trial, stores=refs, failures_dir=failures, experiment=experiment.name, plugins=space.plugins
    )
    trainable = tune.with_resources(trainable, _resources(space))
    if restore:
        return tune.Tuner.restore(experiment.uri, trainable=trainable, resume_unfinished=True)
    return _new_tuner(trainable, space, experiment)


def _resources(space: Space) -> dict[str, float]:
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    gpus = space.search.gpus_per_trial if has_gpu else 0.0
    return {"cpu": space.search.cpus_per_trial, "gpu": gpus}


def _new_tuner(trainable: Any, space: Space, experiment: experiments.Experiment) -> tune.Tuner:
    search = space.search
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher(space, experiment.name, optuna.storages.RDBStorage(experiment.study_url)),
            scheduler=_scheduler(space),
            num_samples=-1,  # without end: the searcher counts the trials (ResumableOptunaSearch says why)
            reuse_actors=search.reuse_workers,  # SearchSettings says why not by default
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
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
            stop=EpochBudget(search.epoch_budget) if search.epoch_budget else None,
            callbacks=[SearchProgress(experiment.name, search.num_samples, search.max_epochs, search.epoch_budget)],
        ),
    )


def _scheduler(space: Space) -> Any:
    search = space.search
    if search.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=search.metric,
        mode="max",
        max_t=search.max_epochs,
        grace_period=search.grace_period,
        reduction_factor=search.reduction_factor,
    )


def trial_name(trial: Any) -> str:
    """Readable names for the dashboard and the folders: architecture, optimizer, features, id."""
    config = upstream.ray_trial_config(trial)
    parts = [config["model"]["arch"], config["optimizer"]["name"], config["features"].get("kind", "mel")]
    return "_".join([*parts, trial.trial_id])
