"""Optimizers by name, with weight decay and the L1 penalty applied to weights only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from training.config import OptimizerConfig

# name -> constructor(param groups, config). The rate set here is overwritten before every step by
# the schedule; the other hyperparameters stay as constructed.
OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]], OptimizerConfig], torch.optim.Optimizer]] = {
    "sgd": lambda groups, c: torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov),
    "adam": lambda groups, c: torch.optim.Adam(groups, lr=c.lr),  # weight decay as an L2 gradient term
    "adamw": lambda groups, c: torch.optim.AdamW(groups, lr=c.lr),  # decoupled weight decay
    "rmsprop": lambda groups, c: torch.optim.RMSprop(groups, lr=c.lr, momentum=c.momentum),
}


def penalised(model: nn.Module) -> list[nn.Parameter]:
    """The weights that decay and L1 apply to: matrices and kernels. Biases and normalisation
    scales are left alone (as nanoGPT does): shrinking them only fights the normalisation."""
    return [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]


def make_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    weights = penalised(model)
    chosen = {id(p) for p in weights}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in chosen]
    groups = [
        {"params": params, "weight_decay": decay}
        for params, decay in ((weights, config.weight_decay), (others, 0.0))
        if params
    ]
    return OPTIMIZERS[config.name](groups, config)


def l1_penalty(weights: list[nn.Parameter]) -> torch.Tensor:
    """sum(|w|) over `weights`, to be scaled by `optimizer.l1` and added to the loss."""
    return torch.stack([w.abs().sum() for w in weights]).sum()
