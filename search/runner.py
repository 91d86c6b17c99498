"""The search: stores built, features put in Ray's object store, then Ray Tune's `Tuner` with
Optuna's TPE proposing configs and ASHA stopping weak trials, each trial one `fit()`."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch

from common import experiment as experiments
from common.errors import UserError
from features.dataset import load_dataset
from features.extract import build_stores
from features.locate import default_stores_dir, resolve_data_root
from features.store import FeatureStore
from search.leaderboard import summarize
from search.space import Space, load_space
from search.trainable import train_trial

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchRequest:
    """What the command line asks for; None means: what the space file says."""

    space: str | None
    data: str | None = None
    name: str | None = None
    storage: str | None = None
    address: str | None = None
    resume: bool = False
    num_samples: int | None = None
    max_epochs: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None


class SpaceSampler:
    """Optuna's define-by-run function (a picklable object, so a restored searcher has it)."""

    def __init__(self, space: Space):
        self.space = space

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        return self.space.suggest(trial)


class ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch whose study lives in SQLite, written at once, while Ray snapshots the searcher
    every few seconds: after a killed driver, Ray may resume a trial the study has already closed.
    Optuna then refuses its further results (and its completion), which would end the search; they
    change nothing Optuna uses, so they are dropped."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if not self._closed_in_study(trial_id):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if not self._closed_in_study(trial_id):
            super().on_trial_complete(trial_id, result, error)

    def _closed_in_study(self, trial_id: str) -> bool:
        trial = self._ot_trials.get(trial_id)
        return trial is not None and self._ot_study.trials[trial.number].state.is_finished()


def run_search(request: SearchRequest) -> Path:
    """Run (or resume) a search; returns the local experiment folder."""
    experiment, space = _prepare_experiment(request)
    dataset = load_dataset(resolve_data_root(request.data))
    stores = build_stores(dataset, space.feature_settings(), default_stores_dir(dataset.root))
    if not request.resume:
        experiments.write_metadata(experiment, space.path, space, dataset.describe(), stores)
    _start_ray(request.address)
    # The driver loads train and valid only; trials get them from the object store, never from disk.
    refs = {setting.name: ray.put(FeatureStore(path).load_fit_data()) for setting, path in stores.items()}
    trainable = tune.with_resources(tune.with_parameters(train_trial, stores=refs), _resources(space))
    if request.resume:
        tuner = tune.Tuner.restore(experiment.uri, trainable=trainable, resume_unfinished=True)
    else:
        tuner = _new_tuner(trainable, space, experiment)
    started = time.perf_counter()
    results = tuner.fit()
    experiments.record_wall_time(experiment.local_dir, time.perf_counter() - started)
    summarize(results, experiment.local_dir, space.search.max_epochs)
    return experiment.local_dir


def _prepare_experiment(request: SearchRequest) -> tuple[experiments.Experiment, Space]:
    if request.resume:
        # A resumed search runs the space and search settings it started with, not a file edited since.
        experiment = experiments.locate(request.storage, request.name, resume=True)
        saved = experiments.read_metadata(experiment.local_dir)["search"]
        return experiment, load_space(experiment.local_dir / experiments.SPACE_COPY).with_search(**saved)
    if not request.space:
        raise UserError("--space is required (a path, or a file name in spaces/)")
    space = load_space(request.space).with_search(
        num_samples=request.num_samples,
        max_epochs=request.max_epochs,
        cpus_per_trial=request.cpus_per_trial,
        gpus_per_trial=request.gpus_per_trial,
    )
    return experiments.locate(request.storage, request.name, resume=False, space_path=space.path), space


def _start_ray(address: str | None) -> None:
    """Connect to a cluster (`--address`, `RAY_ADDRESS`) or start a local Ray whose dashboard
    listens on 127.0.0.1 only."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        context = ray.init(address=address, log_to_driver=False)
    else:
        context = ray.init(include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
    url = context.dashboard_url
    if url:
        port = url.rsplit(":", 1)[-1]
        print(
            f"Ray dashboard: http://{url}  (access token: `ray get-auth-token`; from a laptop: "
            f"ssh -L {port}:127.0.0.1:{port} this-host, then open http://127.0.0.1:{port})"
        )


def _resources(space: Space) -> dict[str, float]:
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    gpus = space.search.gpus_per_trial if has_gpu else 0.0
    return {"cpu": space.search.cpus_per_trial, "gpu": gpus}


def _new_tuner(trainable: Any, space: Space, experiment: experiments.Experiment) -> tune.Tuner:
    search = space.search
    searcher = ResumableOptunaSearch(
        space=SpaceSampler(space),
        metric=search.metric,
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=search.seed),
        study_name=experiment.name,
        storage=optuna.storages.RDBStorage(experiment.study_url),
    )
    scheduler = _scheduler(space)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=search.num_samples,
            # A new trial reuses a finished trial's worker process: no new process, no imports of
            # torch and the project again (seconds per trial on a small machine).
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=experiment.name,
            storage_path=experiment.storage,
            failure_config=tune.FailureConfig(max_failures=search.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=search.keep_checkpoints,
                checkpoint_score_attribute=search.metric,
                checkpoint_score_order="max",
            ),
            verbose=1,
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
    config = trial.config
    parts = [config["model"]["arch"], config["optimizer"]["name"], config["features"].get("kind", "mel")]
    return "_".join([*parts, trial.trial_id])
