"""A configurable 2D CNN over the spectrogram as a one-channel image (bins x frames), the family
that can learn local time-frequency patterns such as onsets and harmonics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from models.blocks import AddChannel, ConvBlock2d, GlobalPool, classifier
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
class Cnn2dParams(ModelParams):
    """`depth` blocks of conv-BN-ReLU-maxpool; block i has ``channels * growth**i`` filters.

    `pool_size` pools time (and frequency too unless `freq_pool_size` is set, e.g. to 1 for
    12-bin chroma, which cannot halve many times).
    """

    depth: int = 4
    channels: int = 32
    growth: float = 2.0
    kernel_size: int = 3
    stride: int = 1
    pool_size: int = 2
    freq_pool_size: int | None = None
    dropout: float = 0.3
    global_pool: Literal["avg", "max", "avgmax"] = "avgmax"
    batch_norm: bool = True

    TIME_KNOBS = ("depth", "pool_size", "stride")
    FREQ_KNOBS = ("depth", "freq_pool_size", "stride")

    def check(self) -> None:
        for key in ("depth", "channels", "kernel_size", "stride", "pool_size"):
            require_at_least(self, key, 1)
        if self.freq_pool_size is not None:
            require_at_least(self, "freq_pool_size", 1)
        require_at_least(self, "growth", 0.1)
        require_dropout(self)
        require_widths(self, self.widths(), ("growth", "channels", "depth"))

    @property
    def freq_pool(self) -> int:
        return self.pool_size if self.freq_pool_size is None else self.freq_pool_size

    def widths(self) -> list[int]:
        return widths(self.channels, self.growth, self.depth)

    def time_reductions(self) -> list[Reduction]:
        return [conv(self.kernel_size, self.stride), pool(self.pool_size)] * self.depth

    def freq_reductions(self) -> list[Reduction]:
        return [conv(self.kernel_size, self.stride), pool(self.freq_pool)] * self.depth

    def fit_summary(self) -> str:
        pools = f"{self.pool_size}" if self.freq_pool == self.pool_size else f"{self.freq_pool}x{self.pool_size}"
        stride = f" and stride {self.stride}" if self.stride > 1 else ""
        return f"depth {self.depth} with pool {pools}{stride}"


@register("cnn2d", Cnn2dParams)
def build_cnn2d(params: Cnn2dParams, n_bins: int, n_classes: int) -> nn.Module:
    """Blocks over (bins, frames), then a global pool over both, so any input size the pools fit
    gives one vector; `n_bins` does not change the weights."""
    layers: list[nn.Module] = [AddChannel()]
    in_channels = 1
    window = (params.freq_pool, params.pool_size)
    for channels in params.widths():
        block = ConvBlock2d(in_channels, channels, params.kernel_size, params.stride, window, params.batch_norm)
        layers.append(block)
        in_channels = channels
    layers.append(GlobalPool(params.global_pool))
    layers.append(classifier(GlobalPool.features(params.global_pool, in_channels), n_classes, params.dropout))
    return nn.Sequential(*layers)
