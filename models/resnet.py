"""A 2D residual CNN over bins x frames: skips let it go deeper than the plain CNN without the
gradient trouble, at the same cost per layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from common.typed import require
from models.blocks import AddChannel, ConvBlock2d, GlobalPool, ResidualBlock2d, classifier
from models.params import (
    WHERE,
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
class ResnetParams(ModelParams):
    """A conv stem, then `depth` residual blocks; block i has ``channels * growth**i`` filters,
    its first conv strides by `stride` on both axes, and a max-pool of `pool_size` (1: none) follows."""

    depth: int = 4
    channels: int = 16
    growth: float = 2.0
    kernel_size: int = 3
    stride: int = 2
    pool_size: int = 1
    dropout: float = 0.3
    global_pool: Literal["avg", "max", "avgmax"] = "avg"

    TIME_KNOBS = ("depth", "pool_size")
    FREQ_KNOBS = ("depth", "pool_size")

    def check(self) -> None:
        for key in ("depth", "channels", "kernel_size", "stride", "pool_size"):
            require_at_least(self, key, 1)
        odd = "must be odd so the residual and the skip keep the same size"
        require(self.kernel_size % 2 == 1, f"{WHERE}.kernel_size", self.kernel_size, odd)
        require_at_least(self, "growth", 0.1)
        require_dropout(self)
        require_widths(self, self.widths(), ("growth", "channels", "depth"))

    def widths(self) -> list[int]:
        return widths(self.channels, self.growth, self.depth)

    def time_reductions(self) -> list[Reduction]:
        # "Same"-padded odd convs never empty an axis (a stride s gives ceil(n / s)); pools can.
        block = [conv(self.kernel_size, self.stride), conv(self.kernel_size), pool(self.pool_size)]
        return [conv(self.kernel_size)] + block * self.depth

    def freq_reductions(self) -> list[Reduction]:
        return self.time_reductions()

    def fit_summary(self) -> str:
        return f"depth {self.depth} with pool {self.pool_size} and stride {self.stride}"


@register("resnet", ResnetParams)
def build_resnet(params: ResnetParams, n_bins: int, n_classes: int) -> nn.Module:
    """Stem conv-BN-ReLU at full resolution, residual blocks, global pool, dropout, linear."""
    layers: list[nn.Module] = [AddChannel(), ConvBlock2d(1, params.channels, params.kernel_size)]
    in_channels = params.channels
    for channels in params.widths():
        block = ResidualBlock2d(in_channels, channels, params.kernel_size, params.stride, params.pool_size)
        layers.append(block)
        in_channels = channels
    layers.append(GlobalPool(params.global_pool))
    layers.append(classifier(GlobalPool.features(params.global_pool, in_channels), n_classes, params.dropout))
    return nn.Sequential(*layers)
