"""What a checkpoint holds to continue a run exactly where it stopped, and its file format.

Only plain containers, numbers, strings and tensors go in, so `load` can use
``torch.load(weights_only=True)``: a checkpoint cannot run code when it is read.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError

STATE_FORMAT_VERSION = 1


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
    best_epoch: int  # 0 before the first epoch
    best_model: dict[str, torch.Tensor] | None  # state_dict at best_epoch

    def save(self, path: str | Path) -> None:
        """Write atomically (a temporary file, then a rename): a run killed mid-save leaves the
        previous checkpoint intact rather than a truncated one."""
        path = Path(path)
        temporary = path.with_name(f".{path.name}.partial")
        payload = {"format_version": STATE_FORMAT_VERSION}
        payload.update({f.name: getattr(self, f.name) for f in fields(self)})
        torch.save(payload, temporary)
        os.replace(temporary, path)

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
