"""The Ray Tune trainable: a thin wrapper that runs `training.fit()` on one trial's config and
reports every epoch, with a checkpoint, through `ray.tune.report`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from training import TrainingState, TrialConfig, fit
from training.config import trial_config

STATE_FILE = "state.pt"
CONFIG_FILE = "trial_config.json"


def train_trial(config: dict[str, Any], stores: dict[str, ray.ObjectRef]) -> None:
    """Run one trial; `stores` maps a feature setting's name to its `FitData` in Ray's object store
    (one copy per node, shared by every trial there, shipped by Ray to other nodes)."""
    trial = TrialConfig.from_dict(trial_config(config))
    # One torch thread per CPU the trial holds: more threads than cores slows small CNNs badly.
    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    data = ray.get(stores[trial.features.name])
    checkpoint = tune.get_checkpoint()
    resume = None
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = TrainingState.load(Path(folder) / STATE_FILE)

    def report(metrics, state: TrainingState) -> None:
        with tempfile.TemporaryDirectory() as folder:
            state.save(Path(folder) / STATE_FILE)
            (Path(folder) / CONFIG_FILE).write_text(json.dumps(trial.to_dict(), indent=2))
            tune.report(metrics.to_dict(), checkpoint=tune.Checkpoint.from_directory(folder))

    fit(trial, data, report, resume=resume)
