"""A run's progress, and the checkpoint that continues it exactly where it stopped: what an epoch
reports (`EpochMetrics`), what the loop carries from epoch to epoch (`Progress`), the checkpoint
(`TrainingState`) with its file format, and the two ways between them (`snapshot`, `restore`).

Only plain containers, numbers, strings and tensors go into a checkpoint, so `load` can use
``torch.load(weights_only=True)``: a checkpoint cannot run code when it is read.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.errors import UserError
from common.partials import atomic_write
from training.config import TrialConfig
from training.schedules import Plateau

STATE_FORMAT_VERSION = 2  # 2: EpochMetrics without prep_seconds, validation metrics optional


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based: epochs completed, as Ray Tune's training_iteration
    train_loss: float  # mean cross-entropy of the training crops (soft targets with mixup, no L1 term)
    train_acc: float  # crops whose top class is their (dominant, with mixup) target
    # None in a run without validation (fit(validate=False)); see ClipEvaluation for their meaning.
    valid_loss: float | None
    valid_clip_acc: float | None  # the number the search optimises
    valid_segment_acc: float | None
    lr: float  # rate of the epoch's last step
    epoch_seconds: float  # training and validation, wall clock

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass
class Progress:
    """The mutable part of a run: what a checkpoint saves besides model and optimizer."""

    generator: torch.Generator  # crops, shuffling, masks, gain
    rng: np.random.Generator  # mixup weights
    epoch: int = 0
    plateau: Plateau = field(default_factory=Plateau)
    history: list[EpochMetrics] = field(default_factory=list)
    best_epoch: int = 0  # 0 until an epoch is validated
    best_model: dict[str, torch.Tensor] | None = None  # state_dict at best_epoch, on the CPU

    @classmethod
    def start(cls, seed: int) -> Progress:
        return cls(torch.Generator().manual_seed(seed), np.random.default_rng(seed))


@dataclass
class TrainingState:
    """A run after `epoch` completed epochs; every tensor is on the CPU."""

    config: dict[str, Any]  # TrialConfig.to_dict() of the run
    epoch: int  # epochs completed (the schedule's step is epoch * steps per epoch)
    model: dict[str, torch.Tensor]  # model state_dict
    optimizer: dict[str, Any]  # optimizer state_dict (momentum buffers, Adam moments)
    plateau: dict[str, Any]  # schedules.Plateau as a dict
    rng: dict[str, Any]  # torch (CPU), cuda (or None), crops (torch.Generator), numpy (bit generator)
    history: list[dict[str, Any]]  # EpochMetrics as dicts, one per completed epoch
    best_epoch: int  # 0 before the first validated epoch
    best_model: dict[str, torch.Tensor] | None  # state_dict at best_epoch

    def save(self, path: str | Path) -> None:
        """Write atomically (a partial file, then a rename): a run killed mid-save leaves the
        previous checkpoint intact rather than a truncated one."""
        payload = {"format_version": STATE_FORMAT_VERSION}
        payload.update({f.name: getattr(self, f.name) for f in fields(self)})
        with atomic_write(Path(path), "wb") as file:
            torch.save(payload, file)

    @classmethod
    def load(cls, path: str | Path) -> TrainingState:
        try:
            payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
            raise UserError(f"{path}: not a readable training checkpoint ({err})") from err
        version = payload.pop("format_version", None)
        if version != STATE_FORMAT_VERSION:
            raise UserError(f"{path}: checkpoint format {version!r}, expected {STATE_FORMAT_VERSION}")
        return cls(**payload)


def check_resumable(state: TrainingState, config: TrialConfig) -> None:
    """A checkpoint continues only the run that wrote it: the same config, key for key."""
    saved, wanted = _flat(TrialConfig.from_dict(state.config).to_dict()), _flat(config.to_dict())
    for key in sorted(saved.keys() | wanted.keys()):
        if saved.get(key) != wanted.get(key):
            raise UserError(
                f"resume: the checkpoint's {key} ({saved.get(key)!r}) differs from the config's ({wanted.get(key)!r})"
            )


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as {dotted key: value}."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def snapshot(
    config: TrialConfig, progress: Progress, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> TrainingState:
    """A CPU copy of everything needed to continue after the current epoch."""
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return TrainingState(
        config=config.to_dict(),
        epoch=progress.epoch,
        model=cpu_copy(model.state_dict()),
        optimizer=cpu_copy(optimizer.state_dict()),
        plateau=progress.plateau.to_dict(),
        rng={
            "torch": torch.get_rng_state(),
            "cuda": cuda_rng,
            "crops": progress.generator.get_state(),
            "numpy": progress.rng.bit_generator.state,
        },
        history=[metrics.to_dict() for metrics in progress.history],
        best_epoch=progress.best_epoch,
        best_model=progress.best_model,
    )


def restore(state: TrainingState, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> Progress:
    """Load `state` into a freshly built model and optimizer; returns the run's progress."""
    model.load_state_dict(state.model)
    optimizer.load_state_dict(state.optimizer)
    torch.set_rng_state(state.rng["torch"])
    if device.type == "cuda" and state.rng.get("cuda") is not None:
        torch.cuda.set_rng_state(state.rng["cuda"], device)
    generator = torch.Generator()
    generator.set_state(state.rng["crops"])
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng["numpy"]
    return Progress(
        generator=generator,
        rng=rng,
        epoch=state.epoch,
        plateau=Plateau.from_dict(state.plateau),
        history=[EpochMetrics(**metrics) for metrics in state.history],
        best_epoch=state.best_epoch,
        best_model=state.best_model,
    )


def cpu_copy(value: Any) -> Any:
    """A deep copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: cpu_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(item) for item in value)
    return value
