"""Written for ray 2.60.0 and optuna 5.0.0 (requirements.txt's pins): their internals, touched here alone.

Every use of a private or developer-level name of Ray or Optuna is one small function (or name)
below, so that an upgrade is checked in one place: tests/test_internals.py has a test per touch that
names it and the pinned version, and `check_versions()` warns in one line when a search starts on
other versions. Ray and Optuna are imported inside the functions: `common` and `reporting` never
load them.

Where a public API does the job, it is used instead (elsewhere). What stays here, and why:
- Ray's run snapshot (`experiment_state-*.json`) is read as plain JSON. The searcher's restore
  must read it: it is what Ray resumes, and the searcher's own snapshot and the Optuna study can be
  older or newer than it (search.optuna_search says how they are reconciled). The report reads it
  too, for each trial's status and the order Ray created the trials, rather than a record of the
  project's own written by a `Callback.on_trial_result`: that record would be a fourth file to keep
  in step with Ray's after a killed driver (a trial started after Ray's last snapshot is one Ray
  never resumes), it would miss trials that never reported, and experiments searched before it
  existed have only Ray's snapshot.
- Ray Tune hands its callbacks `Trial` objects (a developer API): the progress line reads their
  status, last result and best metric (Ray restores them from the run snapshot on resume; a count
  of our own from `on_trial_result` would start again at zero).
- Naming each trial's worker after its trial (the dashboard's Actors page) has no public API.
- Restoring the searcher reads OptunaSearch's trials and study (no public accessor).
- Why ASHA cut a trial (its rung and cutoff) has no public API: search.asha reads ASHA's rungs.
- A local Ray on the loopback address alone has no public switch on Linux.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import UserError

if TYPE_CHECKING:
    import optuna
    from ray._private.node import Node as RayNode  # noqa: F401 (what ray.cluster_utils.Cluster.add_node returns)
    from ray.tune.search.optuna import OptunaSearch

log = logging.getLogger(__name__)

PINNED = {"ray": "2.60.0", "optuna": "5.0.0"}  # requirements.txt's pins (tests/test_internals.py checks)


def check_versions() -> None:
    """Warn in one line when the installed Ray or Optuna is not the version pinned (and checked)."""
    installed = {name: metadata.version(name) for name in PINNED}
    if installed != PINNED:
        have = ", ".join(f"{name} {version}" for name, version in installed.items())
        pinned = ", ".join(f"{name} {version}" for name, version in PINNED.items())
        log.warning(
            "%s installed, not the pinned %s (requirements.txt) that common/upstream.py's touches of "
            "their internals were written for: python -m pytest tests/test_internals.py checks them",
            have,
            pinned,
        )


# --- Ray: starting a local Ray ----------------------------------------------------------------


@contextmanager
def ray_constant(name: str, value: Any) -> Iterator[None]:
    """Ray's constant `ray._private.ray_constants.<name>` set to `value` inside the block, for
    Ray's own functions that read it when called (as `services.get_node_ip_address` reads
    ENABLE_RAY_CLUSTER)."""
    from ray._private import ray_constants

    previous = getattr(ray_constants, name)
    setattr(ray_constants, name, value)
    try:
        yield
    finally:
        setattr(ray_constants, name, previous)


# --- Ray Tune: the trainable's workers ----------------------------------------------------------


class TrialNamedWorker:
    """Mixed into Ray Tune's wrapper of a function trainable: the worker's repr is the name of the
    trial it was created for, where Tune's is the function's name. Ray reads an actor's repr once,
    after its `__init__` (ray-project/ray#33555, Ray 2.60 has no call to change it later): a worker
    reused for a later trial keeps its first trial's name there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._name = self.trial_name  # what Tune's wrapper returns as its repr


def name_workers_after_trials(train_func: Callable[..., Any]) -> None:
    """Make each worker of the function trainable `train_func` show its trial's name as its repr
    (TrialNamedWorker): Tune's wrapper inherits from the function's `__mixins__`, which
    `tune.with_parameters` carries over."""
    train_func.__mixins__ = (TrialNamedWorker,)


# --- Ray Tune: the trials its callbacks get -------------------------------------------------------

# Ray Tune's statuses of a trial (Trial.status, and each trial's "status" in the run snapshot).
TRIAL_RUNNING = "RUNNING"
TRIAL_TERMINATED = "TERMINATED"
TRIAL_ERROR = "ERROR"


def ray_trial_status(trial: Any) -> str:
    """A Ray Tune trial's status (PENDING, RUNNING, PAUSED, TERMINATED, ERROR)."""
    return trial.status


def ray_trial_last_result(trial: Any) -> dict[str, Any]:
    """The last result a Ray Tune trial reported ({} or a few keys before its first report)."""
    return trial.last_result or {}


def ray_trial_best(trial: Any, metric: str) -> float | None:
    """The best (highest) value of `metric` the trial reported at any epoch (Tune keeps it per
    trial, restored from the run snapshot on resume); None before its first report."""
    return trial.metric_analysis.get(metric, {}).get("max")


def ray_trial_config(trial: Any) -> dict[str, Any]:
    """The config Ray Tune's trial runs with (what the searcher proposed)."""
    return trial.config


def ray_trial_folder(trial: Any) -> Path:
    """The trial's folder on the driver, made if missing: where Ray Tune's loggers write."""
    trial.init_local_path()
    return Path(trial.local_path)


# --- Ray Tune: its snapshot of the run ------------------------------------------------------------

RUN_STATE_PATTERN = "experiment_state-*.json"  # Ray Tune's snapshots of the run (TuneController.CKPT_FILE_TMPL)


def newest_run_state(folder: Path) -> Path | None:
    """Ray Tune's newest snapshot of the run in `folder`, the one `Tuner.restore` resumes from;
    None before Ray first saved one."""
    saved = sorted(Path(folder).glob(RUN_STATE_PATTERN))
    return saved[-1] if saved else None


def run_state_trials(path: Path, key: str) -> dict[Any, dict[str, Any]]:
    """A run snapshot's trial entries by `key` (trial_id, relative_logdir). Each entry is a JSON text
    of its own inside the file, read as plain JSON: values Ray could only pickle stay opaque dicts."""
    try:
        entries = [json.loads(trial) for trial, _runtime in json.loads(path.read_text())["trial_data"]]
        return {entry[key]: entry for entry in entries}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a readable Ray Tune experiment state ({type(err).__name__}: {err})") from err


# --- Ray Tune: stopping a run as Ctrl-C does ------------------------------------------------------

# Ray Tune's documented switch that keeps `Tuner.fit` from taking SIGINT over (the driver's own
# handler then decides, for SIGTERM too: search.lifecycle).
TUNE_SIGINT_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"


def tune_stop_handler() -> Callable[[int, Any], None] | None:
    """Ray Tune's graceful stop of the `Tuner.fit` under way (its run's state saved, its trials
    stopped, its results returned): the handler `fit` installs for SIGUSR1 always, and for SIGINT
    unless TUNE_SIGINT_SWITCH is set (ray/tune/tune.py, `_setup_signal_catching`). None before
    `fit` installed it; call it only while `fit` runs."""
    import signal

    handler = signal.getsignal(signal.SIGUSR1)
    return handler if callable(handler) else None


# --- Ray Tune's OptunaSearch -------------------------------------------------------------------


def optuna_search_trials(searcher: OptunaSearch) -> dict[str, optuna.trial.Trial]:
    """The Optuna trial OptunaSearch asked for each Ray trial id it proposed."""
    return searcher._ot_trials


def optuna_search_study(searcher: OptunaSearch) -> optuna.Study:
    """OptunaSearch's Optuna study."""
    return searcher._ot_study


# --- Ray Tune's ASHA ------------------------------------------------------------------------------


def asha_next_rung(scheduler: Any, trial_id: str, epoch: int) -> tuple[int, float] | None:
    """The rung (its epoch) that the trial's result at `epoch` reaches now in Ray's ASHA, and the
    rung's cutoff before this result counts; None when it reaches none or the rung has no value
    yet. As `_Bracket.on_result` walks its rungs (stop_last_trials: the default)."""
    bracket = scheduler._trial_info.get(trial_id)
    if bracket is None:
        return None
    for milestone, recorded in bracket._rungs:
        if epoch < milestone or trial_id in recorded:
            continue
        cutoff = bracket.cutoff(recorded)
        return None if cutoff is None else (int(milestone), float(cutoff))
    return None


# --- for the tests and benchmarks -----------------------------------------------------------------

# What `ray.init()` without an address calls to find the latest Ray started on this machine (`ray
# start`); a test replaces it to pretend one is running.
LATEST_RAY_ADDRESS_FINDER = "ray._private.services.find_bootstrap_address"


def ray_memory_summary(gcs_address: str, stats_only: bool = True) -> str:
    """`ray memory`'s summary of the object store (its stats only, by default)."""
    from ray._private.internal_api import memory_summary

    return memory_summary(gcs_address, stats_only=stats_only)
