"""The search: stores built, features put in Ray's object store, then Ray Tune's `Tuner` with
Optuna's TPE proposing configs and ASHA stopping weak trials, each trial one `fit()`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ray import tune

from common import experiment as experiments
from common import remote, upstream
from common.errors import UserError
from features.dataset import Dataset
from features.durations import check_segment_seconds
from features.extract import build_stores
from features.layouts import DataOptions, open_dataset, stores_variant
from features.locate import default_stores_dir
from features.settings import FeatureSetting
from search.distributions import Distribution
from search.leaderboard import summarize
from search.lifecycle import (
    located_for_resume,
    record_new,
    recorded_dataset,
    recorded_space,
    removed_if_start_fails,
    resume_command,
    set_orphans_aside,
    start_again,
    wall_clock,
)
from search.optuna_search import ResumableOptunaSearch, SpaceSampler  # noqa: F401 (pickled names: below)
from search.progress import print_where_to_watch
from search.ray_session import start_ray
from search.settings import SearchSettings
from search.space import Space, load_space
from search.tuner import EpochBudget, build_tuner, trial_name  # noqa: F401 (pickled names: below)
from training.config import TrainingConfig

# Ray pickles the searcher, the stopper and the trial name creator by module and name (tuner.pkl,
# searcher-state-*.pkl): a search started before this module was split names ResumableOptunaSearch,
# SpaceSampler, EpochBudget and trial_name here, so they stay importable from here for it to resume.


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


def run_search(request: SearchRequest) -> SearchOutcome:
    """Run (or resume) a search to its end or to Ctrl-C."""
    upstream.check_versions()
    experiment, space, dataset = _resumed(request) if request.resume else _new(request)
    stores = build_stores(dataset, space.feature_settings(), _stores_dir(dataset))
    restore = request.resume and experiments.has_run_state(experiment)
    if request.resume and not restore:
        start_again(experiment)
    with removed_if_start_fails(experiment, new=not request.resume):
        if not request.resume:
            record_new(experiment, space, dataset, stores)
        start_ray(request.address, experiment.name, space.plugins)
        tuner = build_tuner(experiment, space, stores, restore)
    print_where_to_watch(experiment)
    with wall_clock(experiment.local_dir):
        try:
            results = tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C, or one before Ray Tune took the signal over
            return SearchOutcome(experiment.local_dir, True, resume_command(experiment))
    stopped = _stopped_early(results, space.search)
    set_orphans_aside(experiment.local_dir, results)
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
    experiment = located_for_resume(request.storage, request.name)
    if request.data_options != DataOptions():
        raise UserError("the split is recorded in the experiment: resume without --split, --group or fold options")
    return experiment, recorded_space(experiment), recorded_dataset(experiment, request.data)
