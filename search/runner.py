"""The search: stores built, features put in Ray's object store, then Ray Tune's `Tuner` with
Optuna's TPE proposing configs and ASHA stopping weak trials, each trial one `fit()`."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from common import experiment as experiments
from common import remote
from common.errors import UserError
from features.dataset import Dataset
from features.durations import check_segment_seconds
from features.extract import build_stores
from features.layouts import DataOptions, open_dataset, open_recorded, stores_variant
from features.locate import default_stores_dir
from features.settings import FeatureSetting
from features.store import FeatureStore
from models.plugins import load_recorded
from search.leaderboard import summarize
from search.progress import SearchProgress
from search.ray_session import start_ray
from search.space import Distribution, SearchSettings, Space, load_space
from search.trainable import train_trial
from training.config import TrainingConfig

log = logging.getLogger(__name__)

WALL_CLOCK_SECONDS = 2.0  # how often a running search records its wall time (a killed run keeps it)


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
    epoch_budget: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    build_stores_only: bool = False
    data_options: DataOptions = DataOptions()  # how to split data without a split of its own


@dataclass(frozen=True)
class SearchOutcome:
    local_dir: Path
    stopped: bool  # interrupted (Ctrl-C) with trials left to run: `resume_command` continues it
    resume_command: str


class SpaceSampler:
    """Optuna's define-by-run function (a picklable object, so a restored searcher has it)."""

    def __init__(self, space: Space):
        self.space = space

    def __call__(self, trial: optuna.Trial) -> dict[str, Any]:
        return self.space.suggest(trial)


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
        elif trial_id not in self._ot_trials:
            log.warning("trial %s was in Ray's snapshot of the run only: Optuna did not learn from it", trial_id)

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        super().restore_from_dir(checkpoint_dir)
        snapshot = experiments.newest_run_state(Path(checkpoint_dir))  # Ray downloaded it there to resume
        self._run_trials = set(experiments.run_state_trials(snapshot, "trial_id")) if snapshot else set()
        resumed = {self._ot_trials[trial_id].number for trial_id in self._run_trials if trial_id in self._ot_trials}
        running = self._ot_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial in running:
            if trial.number not in resumed:
                self._ot_study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def _open_in_study(self, trial_id: str) -> bool:
        trial = self._ot_trials.get(trial_id)
        return trial is not None and not self._ot_study.trials[trial.number].state.is_finished()


def run_search(request: SearchRequest) -> SearchOutcome:
    """Run (or resume) a search to its end or to Ctrl-C."""
    experiment, space, dataset = _resumed(request) if request.resume else _new(request)
    stores = build_stores(dataset, space.feature_settings(), _stores_dir(dataset))
    restore = request.resume and experiments.has_run_state(experiment)
    if request.resume and not restore:
        _start_again(experiment)
    with _removed_if_start_fails(experiment, new=not request.resume):
        if not request.resume:
            search = dataclasses.asdict(space.search)
            plugins = [plugin.to_dict() for plugin in space.plugins]
            experiments.write_metadata(experiment, space.path, search, dataset.describe(), stores, plugins)
            remote.upload(experiment, remote.STARTED_FILES)
        start_ray(request.address, experiment.name, space.plugins)
        tuner = _tuner(experiment, space, stores, restore)
    print_where_to_watch(experiment)
    with _wall_clock(experiment.local_dir):
        try:
            results = tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C, or one before Ray Tune took the signal over
            return SearchOutcome(experiment.local_dir, True, resume_command(experiment))
    stopped = _stopped_early(results, space.search)
    _set_orphans_aside(experiment.local_dir, results)
    summarize(results, experiment.local_dir, space.search.max_epochs)
    remote.upload(experiment)
    return SearchOutcome(experiment.local_dir, stopped, resume_command(experiment))


def _stopped_early(results: tune.ResultGrid, search: SearchSettings) -> bool:
    """Interrupted with trials left to run; a search that spent its epoch budget has ended."""
    spent = sum((result.metrics or {}).get("training_iteration", 0) for result in results)
    if search.epoch_budget is not None and spent >= search.epoch_budget:
        return False
    return len(results) < search.num_samples or results.num_terminated + results.num_errors < len(results)


def build_space_stores(request: SearchRequest) -> dict[FeatureSetting, Path]:
    """Build (or reuse) every feature store the space can select, without starting Ray."""
    if not request.space:
        raise UserError("--space is required (a path, or a file name in spaces/)")
    space = load_space(request.space)
    dataset = open_dataset(request.data, request.data_options)
    return build_stores(dataset, space.feature_settings(), _stores_dir(dataset))


def resume_command(experiment: experiments.Experiment) -> str:
    storage = "" if experiment.storage == str(experiments.DEFAULT_STORAGE) else f" --storage {experiment.storage}"
    return f"python run_search.py --resume --name {experiment.name}{storage}"


def _new(request: SearchRequest) -> tuple[experiments.Experiment, Space, Dataset]:
    if not request.space:
        raise UserError("--space is required (a path, or a file name in spaces/)")
    space = load_space(request.space).with_search(
        num_samples=request.num_samples,
        max_epochs=request.max_epochs,
        epoch_budget=request.epoch_budget,
        cpus_per_trial=request.cpus_per_trial,
        gpus_per_trial=request.gpus_per_trial,
    )
    experiment = experiments.locate(request.storage, request.name, resume=False, space_path=space.path)
    dataset = open_dataset(request.data, request.data_options)
    check_segment_seconds(dataset, _segment_seconds(space))
    return experiment, space, dataset


def _segment_seconds(space: Space) -> list[float]:
    """Every segment length a trial can get (both ends of a range)."""
    value = space.sections["training"].values.get("segment_seconds", TrainingConfig.segment_seconds)
    return [float(v) for v in value.candidates()] if isinstance(value, Distribution) else [float(value)]


def _stores_dir(dataset: Dataset) -> Path:
    return default_stores_dir(dataset.root, stores_variant(dataset))


def _resumed(request: SearchRequest) -> tuple[experiments.Experiment, Space, Dataset]:
    """A resumed search runs the space, search settings, plugin files and dataset it started with,
    not a file edited since nor whatever data is the default now."""
    if request.storage and experiments.is_uri(request.storage) and request.name:
        # Resumed on another machine than the driver's: its own files from the URI.
        local = experiments.local_folder(request.storage, request.name)
        remote.download(experiments.Experiment(request.storage, request.name, local), own_files_only=True)
    experiment = experiments.locate(request.storage, request.name, resume=True)
    if request.data_options != DataOptions():
        raise UserError("the split is recorded in the experiment: resume without --split, --group or fold options")
    metadata = experiments.read_metadata(experiment.local_dir)
    load_recorded(metadata.get("plugins") or [], str(experiment.local_dir / experiments.METADATA_FILE))
    # The copy's plugin paths are relative to the original space file's folder.
    plugins_dir = Path(metadata["space_file"]).parent
    space = load_space(experiment.local_dir / experiments.SPACE_COPY, plugins_dir).with_search(**metadata["search"])
    return experiment, space, _recorded_dataset(experiment, request.data)


def _recorded_dataset(experiment: experiments.Experiment, data: str | None) -> Dataset:
    recorded = experiments.recorded_dataset(experiment.local_dir)
    ran_on = Path(recorded.described.get("source", {}).get("manifest") or recorded.root)
    where = f"experiment {experiment.local_dir} ran on {ran_on}"
    if data and Path(data).expanduser().resolve() != ran_on:
        raise UserError(f"--data {data} is not the data the search ran on: {where} (resume without --data)")
    if not ran_on.exists():
        raise UserError(f"{where}, which is gone: put the data back there to resume")
    dataset = open_recorded(recorded.described)
    now = dataset.fingerprint()
    if now != recorded.fingerprint:
        raise UserError(
            f"{where} (fingerprint {recorded.fingerprint}); it has changed since (now {now}): "
            "resuming would score trials on other data; start a new search instead"
        )
    return dataset


def _start_again(experiment: experiments.Experiment) -> None:
    """A driver killed before Ray's first snapshot of the run left nothing to restore (no trial
    runs before that snapshot): the search starts over. Trial folders there mean another cause."""
    if experiments.trial_folders(experiment.local_dir):
        raise UserError(
            f"experiment {experiment.local_dir} has trial folders but no saved Ray Tune run "
            f"({experiments.TUNER_FILE}, {experiments.RUN_STATE_PATTERN}) to resume: start a new search"
        )
    print(f"experiment {experiment.name}: its first start was cut short; starting its search again")
    experiments.clear_run_state(experiment.local_dir)


@contextmanager
def _removed_if_start_fails(experiment: experiments.Experiment, new: bool) -> Iterator[None]:
    """A new search whose start fails (Ray unreachable, Ctrl-C) leaves no folder behind, so the
    same command can simply be run again."""
    created = new and not experiment.local_dir.exists()
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(experiment.local_dir, ignore_errors=True)
        raise


@contextmanager
def _wall_clock(local_dir: Path) -> Iterator[None]:
    """Record this run's wall time while it runs: a killed run's time counts."""
    run = experiments.start_run(local_dir)
    started = time.perf_counter()
    done = threading.Event()

    def record() -> None:
        while not done.wait(WALL_CLOCK_SECONDS):
            experiments.record_wall_time(local_dir, run, time.perf_counter() - started)

    recorder = threading.Thread(target=record, name="wall-clock", daemon=True)
    recorder.start()
    try:
        yield
    finally:
        done.set()
        recorder.join()
        experiments.record_wall_time(local_dir, run, time.perf_counter() - started)


def _resources(space: Space) -> dict[str, float]:
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    gpus = space.search.gpus_per_trial if has_gpu else 0.0
    return {"cpu": space.search.cpus_per_trial, "gpu": gpus}


def _tuner(
    experiment: experiments.Experiment, space: Space, stores: dict[FeatureSetting, Path], restore: bool
) -> tune.Tuner:
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


def searcher(space: Space, study_name: str, storage: optuna.storages.BaseStorage) -> ResumableOptunaSearch:
    """TPE (or random search) on the space's define-by-run function, search.first_trials queued first."""
    return ResumableOptunaSearch(
        space=SpaceSampler(space),
        metric=space.search.metric,
        mode="max",
        num_samples=space.search.num_samples,
        sampler=_sampler(space.search),
        points_to_evaluate=space.first_trial_params() or None,
        study_name=study_name,
        storage=storage,
    )


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


def _sampler(search: SearchSettings) -> optuna.samplers.BaseSampler:
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


def _set_orphans_aside(local_dir: Path, results: Any) -> None:
    """A driver killed mid-search leaves the folders of trials it started after Ray's last snapshot
    of the run: Ray's restored run knows nothing of them (their Optuna trials are closed as failed
    and other trials run instead), so they are moved out of the experiment's trials."""
    known = {Path(result.path).name for result in results}
    orphans = [folder for folder in experiments.trial_folders(local_dir) if folder.name not in known]
    if not orphans:
        return
    aside = local_dir / experiments.ORPHANS_DIR
    aside.mkdir(exist_ok=True)
    for folder in orphans:
        folder.rename(aside / folder.name)
    print(f"{len(orphans)} trial folder(s) of an interrupted run that Ray did not resume: moved to {aside}")


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
