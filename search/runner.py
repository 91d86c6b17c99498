"""The search: stores built, features put in Ray's object store, then Ray Tune's `Tuner` with
Optuna's TPE proposing configs and ASHA stopping weak trials, each trial one `fit()`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from common import experiment as experiments
from common import remote, upstream
from common.driver_lease import DriverLease, refuse_if_held
from common.errors import UserError
from features.dataset import Dataset
from features.durations import check_segment_seconds
from features.extract import build_stores
from features.layouts import DataOptions, open_dataset, stores_variant
from features.locate import default_stores_dir
from features.settings import FeatureSetting
from search import dashboard
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
    stop_signal,
    stoppable_fit,
    wall_clock,
)
from search.metrics import flush_search, seconds_to_final_export
from search.optuna_search import ResumableOptunaSearch, SpaceSampler  # noqa: F401 (pickled names: below)
from search.progress import print_where_to_watch
from search.ray_session import start_ray
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
    dashboard: bool = False  # optuna-dashboard on the study while the search runs (search.dashboard)
    data_options: DataOptions = DataOptions()  # how to split data without a split of its own


@dataclass(frozen=True)
class SearchOutcome:
    local_dir: Path
    stopped: bool  # interrupted (Ctrl-C, SIGTERM): `resume_command` continues it
    resume_command: str
    stop_signal: int | None = None  # the signal that interrupted it


# What a resumed search cannot apply: it runs the space copy and search settings it recorded.
NOT_ON_RESUME = {
    "space": "--space",
    "num_samples": "--num-samples",
    "max_epochs": "--max-epochs",
    "epoch_budget": "--epoch-budget",
    "cpus_per_trial": "--cpus-per-trial",
    "gpus_per_trial": "--gpus-per-trial",
}


def run_search(request: SearchRequest) -> SearchOutcome:
    """Run (or resume) a search to its end or to Ctrl-C or SIGTERM, as the experiment folder's one
    driver (common.driver_lease): a second one is refused before anything is built or started."""
    upstream.check_versions()
    if request.resume:
        _refuse_flags_on_resume(request)
    space = None if request.resume else _requested_space(request)
    experiment = _located(request, space)
    remote.check_storage(experiment)  # a URI that cannot be reached: before any folder or store is made
    with DriverLease(experiment.local_dir) as lease:
        return _run(request, experiment, space, lease.created_folder)


def _run(
    request: SearchRequest, experiment: experiments.Experiment, space: Space | None, created: bool
) -> SearchOutcome:
    if space is None:
        space, dataset = _resumed(request, experiment)
    else:
        dataset = _new_dataset(request, space)
    stores = build_stores(dataset, space.feature_settings(), _stores_dir(dataset))
    restore = request.resume and experiments.has_run_state(experiment)
    if request.resume and not restore:
        start_again(experiment)
    with removed_if_start_fails(experiment, created):
        if not request.resume:
            record_new(experiment, space, dataset, stores)
        start_ray(request.address, experiment.name, space.plugins)
        tuner = build_tuner(experiment, space, stores, restore)
    print_where_to_watch(experiment)
    browser = dashboard.served_if(request.dashboard, experiment.study_url)
    with wall_clock(experiment.local_dir), stoppable_fit(), browser:
        try:
            results = tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM cut Ray Tune's own stop short
            return SearchOutcome(experiment.local_dir, True, resume_command(experiment), stop_signal())
    interrupted = stop_signal()
    set_orphans_aside(experiment.local_dir, results)
    summarize(results, experiment.local_dir, space.search.max_epochs, interrupted=interrupted is not None)
    remote.upload(experiment)
    if interrupted is None:  # a stopped search ends at once
        wait_for_final_export()
    return SearchOutcome(experiment.local_dir, interrupted is not None, resume_command(experiment), interrupted)


def wait_for_final_export() -> None:
    """The metrics endpoint shows the final counts only after Ray's next export of the driver's
    metrics (search.metrics): the driver waits for it, saying so, after the leaderboard."""
    wait = seconds_to_final_export()
    if wait >= 1:
        print(f"Search metrics: Ray exports the final counts to the endpoint in {wait:.0f} s (Ctrl-C skips the wait)")
    with contextlib.suppress(KeyboardInterrupt):  # the search has ended and is saved: Ctrl-C only skips the wait
        flush_search()


def build_space_stores(request: SearchRequest) -> dict[FeatureSetting, Path]:
    """Build (or reuse) every feature store the space can select, without starting Ray."""
    if not request.space:
        raise UserError("--space is required (a path, or a file name in spaces/)")
    space = load_space(request.space)
    dataset = open_dataset(request.data, request.data_options)
    return build_stores(dataset, space.feature_settings(), _stores_dir(dataset))


def _requested_space(request: SearchRequest) -> Space:
    if not request.space:
        raise UserError("--space is required (a path, or a file name in spaces/)")
    return load_space(request.space).with_search(
        num_samples=request.num_samples,
        max_epochs=request.max_epochs,
        epoch_budget=request.epoch_budget,
        cpus_per_trial=request.cpus_per_trial,
        gpus_per_trial=request.gpus_per_trial,
    )


def _located(request: SearchRequest, space: Space | None) -> experiments.Experiment:
    """The experiment folder; one that a live driver holds is refused naming that driver, before
    any other reason (such as "already exists" for a new search of a running one's name)."""
    try:
        if request.resume:
            return located_for_resume(request.storage, request.name)
        return experiments.locate(request.storage, request.name, resume=False, space_path=space and space.path)
    except UserError:
        if request.name:
            refuse_if_held(experiments.local_folder(str(request.storage or experiments.DEFAULT_STORAGE), request.name))
        raise


def _new_dataset(request: SearchRequest, space: Space) -> Dataset:
    dataset = open_dataset(request.data, request.data_options)
    check_segment_seconds(dataset, _segment_seconds(space))
    for line in space.dropped_first_trials():
        print(line, flush=True)
    return dataset


def _segment_seconds(space: Space) -> list[float]:
    """Every segment length a trial can get (both ends of a range)."""
    value = space.sections["training"].values.get("segment_seconds", TrainingConfig.segment_seconds)
    return [float(v) for v in value.candidates()] if isinstance(value, Distribution) else [float(value)]


def _stores_dir(dataset: Dataset) -> Path:
    return default_stores_dir(dataset.root, stores_variant(dataset))


def _refuse_flags_on_resume(request: SearchRequest) -> None:
    """A resumed search runs what it recorded: flags that would change it are refused, not ignored."""
    given = [flag for field, flag in NOT_ON_RESUME.items() if getattr(request, field) is not None]
    if given:
        raise UserError(
            f"--resume continues experiment {request.name} with the space and search settings it recorded: "
            f"{', '.join(given)} cannot apply (resume without them, or start a new search with them)"
        )
    if request.data_options != DataOptions():
        raise UserError("the split is recorded in the experiment: resume without --split, --group or fold options")


def _resumed(request: SearchRequest, experiment: experiments.Experiment) -> tuple[Space, Dataset]:
    """A resumed search runs the space, search settings, plugin files and dataset it started with,
    not a file edited since nor whatever data is the default now."""
    return recorded_space(experiment), recorded_dataset(experiment, request.data)
