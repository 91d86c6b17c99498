"""A configurable temporal CNN: the bins are channels and the convolutions slide over time only,
the cheap family that treats a spectrogram frame as a feature vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from models.blocks import ConvBlock1d, GlobalPool, classifier
from models.params import (
    ModelParams,
    Reduction,
    conv,
    pool,
    require_at_least,
    require_dropout,
    require_widths,
    widths,
)
from models.registry import register


@dataclass(frozen=True)
class Cnn1dParams(ModelParams):
    """`depth` blocks of conv-BN-ReLU-maxpool; block i has ``channels * growth**i`` filters."""

    depth: int = 4
    channels: int = 32
    growth: float = 2.0
    kernel_size: int = 5
    stride: int = 1
    pool_size: int = 2
    dropout: float = 0.3
    global_pool: Literal["avg", "max", "avgmax"] = "avgmax"

    TIME_KNOBS = ("depth", "pool_size", "stride")

    def check(self) -> None:
        for key in ("depth", "channels", "kernel_size", "stride", "pool_size"):
            require_at_least(self, key, 1)
        require_at_least(self, "growth", 0.1)
        require_dropout(self)
        require_widths(self, self.widths(), ("growth", "channels", "depth"))

    def widths(self) -> list[int]:
        return widths(self.channels, self.growth, self.depth)

    def time_reductions(self) -> list[Reduction]:
        block = [conv(self.kernel_size, self.stride), pool(self.pool_size)]
        return block * self.depth

    def fit_summary(self) -> str:
        stride = f" and stride {self.stride}" if self.stride > 1 else ""
        return f"depth {self.depth} with pool {self.pool_size}{stride}"


@register("cnn1d", Cnn1dParams)
def build_cnn1d(params: Cnn1dParams, n_bins: int, n_classes: int) -> nn.Module:
    """Blocks over time, then a global pool over time so any segment length gives one vector."""
    layers: list[nn.Module] = []
    in_channels = n_bins
    for channels in params.widths():
        layers.append(ConvBlock1d(in_channels, channels, params.kernel_size, params.stride, params.pool_size))
        in_channels = channels
    layers.append(GlobalPool(params.global_pool))
    layers.append(classifier(GlobalPool.features(params.global_pool, in_channels), n_classes, params.dropout))
    return nn.Sequential(*layers)
