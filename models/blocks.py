"""Small building blocks the architectures share, so each family file only says how they are
stacked. The conv blocks have one signature: ``(in_channels, out_channels, kernel_size, stride,
pool, batch_norm)``; convolutions use "same" padding (``kernel_size // 2``) and a pool of 1 is none."""

from __future__ import annotations

import torch
from torch import nn


def _pool_or_identity(pool: int | tuple[int, int], layer: type[nn.Module]) -> nn.Module:
    return nn.Identity() if pool in (1, (1, 1)) else layer(pool)


class ConvBlock1d(nn.Module):
    """Conv1d over time (bins or features as channels) → BatchNorm → ReLU → MaxPool1d."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        pool: int = 1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        # A bias is redundant before batch norm, which subtracts the mean anyway.
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=not batch_norm)
        self.norm = nn.BatchNorm1d(out_channels) if batch_norm else nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.pool = _pool_or_identity(pool, nn.MaxPool1d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.norm(self.conv(x))))


class ConvBlock2d(nn.Module):
    """Conv2d over (bins, frames) → BatchNorm → ReLU → MaxPool2d; `pool` is one int or (freq, time)."""

    # Max-pooling and ReLU commute: both are monotone and the pool picks the same element, so
    # pooling first gives the same values and gradients, with the ReLU on a tensor `pool` times
    # smaller per axis. `training.fast` sets it; False keeps the plain path's order.
    pool_first = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        pool: int | tuple[int, int] = 1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=not batch_norm)
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.pool = _pool_or_identity(pool, nn.MaxPool2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return self.act(self.pool(x)) if self.pool_first else self.pool(self.act(x))


class ResidualBlock2d(nn.Module):
    """He et al. 2016 basic block: two convs with batch norm, plus a skip that is the identity, or a
    strided 1x1 conv + BN when the shape changes; then ReLU and an optional max-pool.

    `kernel_size` must be odd so the main path and the skip keep the same size at any stride.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        pool: int | tuple[int, int] = 1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2
        bias = not batch_norm
        norm = nn.BatchNorm2d if batch_norm else (lambda _channels: nn.Identity())
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias),
            norm(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size, 1, padding, bias=bias),
            norm(out_channels),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=bias), norm(out_channels))
        self.act = nn.ReLU(inplace=True)
        self.pool = _pool_or_identity(pool, nn.MaxPool2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.main(x) + self.skip(x)))


class GlobalPool(nn.Module):
    """Summarise every axis after the channels into one value per channel, so the classifier sees
    the same number of features whatever the input length: "avg", "max", or "avgmax" (both,
    concatenated: twice the features)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("avg", "max", "avgmax"):
            raise ValueError(f"unknown global pooling {kind!r}")
        self.kind = kind

    @staticmethod
    def features(kind: str, channels: int) -> int:
        return 2 * channels if kind == "avgmax" else channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(start_dim=2)
        if self.kind == "avg":
            return flat.mean(dim=2)
        if self.kind == "max":
            return flat.amax(dim=2)
        return torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1)


class AddChannel(nn.Module):
    """(batch, bins, frames) → (batch, 1, bins, frames): the spectrogram as a one-channel image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


def classifier(in_features: int, n_classes: int, dropout: float) -> nn.Sequential:
    """Dropout then one linear layer to the class logits (no softmax: the loss applies it)."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_classes))
