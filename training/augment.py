"""Augmentation of training batches on normalised features (see `AugmentConfig`): random gain,
SpecAugment time and frequency masks, mixup. Random draws come from the CPU generators the loop
checkpoints, so a resumed run and a run on another device draw the same numbers; they reach a GPU
without blocking (`to_device`)."""

from __future__ import annotations

import numpy as np
import torch

from training.config import AugmentConfig
from training.segments import to_device


def augment_batch(
    x: torch.Tensor,
    targets: torch.Tensor,
    config: AugmentConfig,
    gain_per_db: torch.Tensor | None,
    generator: torch.Generator,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`x` (batch, bins, frames) and soft `targets` (batch, classes) after the enabled augmentations.

    `gain_per_db` (bins,) is the change of each normalised bin per dB of gain (None: no gain).
    Gain comes first (it models a louder or quieter recording), masks next (so a masked region
    stays exactly at the mean), mixup last (it blends whole augmented examples).
    """
    if config.gain_db > 0 and gain_per_db is not None:
        x = random_gain(x, config.gain_db, gain_per_db, generator)
    if config.time_masks > 0 and config.time_mask_frames > 0:
        x = random_masks(x, 2, config.time_masks, config.time_mask_frames, generator)
    if config.freq_masks > 0 and config.freq_mask_bins > 0:
        x = random_masks(x, 1, config.freq_masks, config.freq_mask_bins, generator)
    if config.mixup_alpha > 0:
        x, targets = mixup(x, targets, config.mixup_alpha, rng)
    return x, targets


def random_gain(x: torch.Tensor, gain_db: float, gain_per_db: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each example shifted by a uniform gain in [-gain_db, gain_db] dB, converted per bin."""
    gains = (torch.rand(len(x), generator=generator) * 2.0 - 1.0) * gain_db
    return x + to_device(gains, x.device).to(x.dtype)[:, None, None] * gain_per_db[None, :, None]


def random_masks(x: torch.Tensor, axis: int, count: int, max_width: int, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment: `count` bands of 0..`max_width` steps along `axis` (1 bins, 2 frames) set to 0
    in each example (0 is the training mean after normalisation)."""
    size = x.shape[axis]
    widths = (torch.rand(len(x), count, generator=generator) * (min(max_width, size) + 1)).long()
    starts = (torch.rand(len(x), count, generator=generator) * (size - widths + 1)).long()
    starts, ends = to_device(starts, x.device), to_device(starts + widths, x.device)
    steps = torch.arange(size, device=x.device)
    hit = ((steps >= starts[..., None]) & (steps < ends[..., None])).any(dim=1)  # (batch, size)
    shape = (len(x), 1, size) if axis == 2 else (len(x), size, 1)
    return x.masked_fill(hit.view(shape), 0.0)


def mixup(
    x: torch.Tensor, targets: torch.Tensor, alpha: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each example with its neighbour in the (already shuffled) batch, weight ~ Beta(a, a).

    Pairing by rolling the batch needs no extra permutation: the batch order is random already.
    The Beta draws use numpy because torch's Beta sampler takes no generator.
    """
    weights = to_device(torch.as_tensor(rng.beta(alpha, alpha, size=len(x)), dtype=x.dtype), x.device)
    mixed = weights[:, None, None] * x + (1 - weights[:, None, None]) * x.roll(1, dims=0)
    soft = weights[:, None] * targets + (1 - weights[:, None]) * targets.roll(1, dims=0)
    return mixed, soft
