"""The Ray Tune trainable: a thin wrapper that runs `training.fit()` on one trial's config and
reports every epoch, with a checkpoint, through `ray.tune.report`, and to the search's metrics
(search.metrics). Its worker shows its first trial's name as its repr on the dashboard's Actors
page, and each trial's start in its log."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from common.errors import UserError
from common.upstream import name_workers_after_trials
from models.plugins import PluginFile, load_shipped
from search.metrics import record_epoch, trial_ended
from training import TrainingState, TrialConfig, fit
from training.config import trial_config

STATE_FILE = "state.pt"
_TRIALS_HERE: list[str] = []  # the trials this worker process has run, in order (search.reuse_workers)
NODE_ID = "node_id"  # the metric naming the Ray node that ran the epoch


class NotRetried(UserError):
    """A retry of a trial whose config failed: it would fail the same way."""


def train_trial(
    config: dict[str, Any],
    stores: dict[str, ray.ObjectRef],
    failures_dir: str,
    experiment: str,
    plugins: Sequence[PluginFile] = (),
) -> None:
    """Run one trial; `stores` maps a feature setting's name to its `FitData` in Ray's object store
    (one copy per node, shared by every trial there, shipped by Ray to other nodes). The space's
    `plugins` are imported first, from the copies Ray shipped to this node.

    Ray retries a failed trial (`search.max_failures`) whatever the error, but only a lost worker
    or node can go better on a retry: a `UserError` (a diverging loss, a network that cannot be
    built) is recorded as `<failures_dir>/<trial id>.txt`, and a retry that finds it fails at once.
    That folder is in the experiment's own folder, not in Ray's trial folder: Ray copies a failed
    trial's files to its retry's folder in the background, and a retry started first missed them."""
    load_shipped(plugins)  # a file missing on this node is no config failure: a retry elsewhere may find it
    failure = Path(failures_dir) / f"{tune.get_context().get_trial_id()}.txt"
    if failure.is_file():
        raise NotRetried(f"not retried, its config failed: {failure.read_text()}")
    try:
        _train(config, stores, experiment)
    except UserError as err:
        if failure.parent.parent.is_dir():  # the experiment folder: on the driver's machine or shared storage
            failure.parent.mkdir(exist_ok=True)
            failure.write_text(f"{type(err).__name__}: {err}")
        raise


def _train(config: dict[str, Any], stores: dict[str, ray.ObjectRef], experiment: str) -> None:
    trial = TrialConfig.from_dict(trial_config(config))
    # One torch thread per CPU the trial holds: more threads than cores slows small CNNs badly.
    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    data = ray.get(stores[trial.features.name])
    checkpoint = tune.get_checkpoint()
    resume = None
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = TrainingState.load(Path(folder) / STATE_FILE)

    trial_name = tune.get_context().get_trial_name()
    _log_trial_start(trial_name)
    crops_per_epoch = len(data.train) * trial.training.segments_per_clip

    # Which Ray node ran each epoch (Tune's own node_ip is the same for every node of one machine).
    node_id = ray.get_runtime_context().get_node_id()

    def report(metrics, state: TrainingState) -> None:
        values = metrics.to_dict()
        record_epoch(experiment, trial_name, {**values, "examples_per_second": crops_per_epoch / metrics.epoch_seconds})
        with tempfile.TemporaryDirectory() as folder:
            state.save(Path(folder) / STATE_FILE)
            tune.report({**values, NODE_ID: node_id}, checkpoint=tune.Checkpoint.from_directory(folder))

    try:
        fit(trial, data, report, resume=resume)
    finally:
        trial_ended()


def _log_trial_start(trial_name: str) -> None:
    """One line in this worker's log (the dashboard's Actors page links it) per trial it runs: a
    reused worker keeps its first trial's name as its repr, its log says which trial runs now."""
    _TRIALS_HERE.append(trial_name)
    earlier = f" after {', '.join(_TRIALS_HERE[:-1])}" if len(_TRIALS_HERE) > 1 else ""
    print(f"trial {trial_name} starts in worker pid {os.getpid()}{earlier}", flush=True)


name_workers_after_trials(train_trial)  # each worker's repr on the dashboard: its trial's name
