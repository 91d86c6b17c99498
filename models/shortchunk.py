"""The short-chunk CNN of Won, Ferraro, Bogdanov and Serra, "Evaluation of CNN-based Automatic
Music Tagging Models", SMC 2020: a VGG-like stack of small 3x3 convolutions and 2x2 max-pools,
which that comparison found to be the strongest simple model on short (about 3.7 s) chunks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.blocks import AddChannel, ConvBlock2d, GlobalPool
from models.params import (
    ModelParams,
    Reduction,
    conv,
    pool,
    require_at_least,
    require_dropout,
    require_widths,
)
from models.registry import register


@dataclass(frozen=True)
class ShortChunkParams(ModelParams):
    """Defaults are the paper's (its reference code, minzwon/sota-music-tagging-models):
    7 conv blocks of 128, 128, 256, 256, 256, 256, 512 channels, dense 512, dropout 0.5.

    Block widths: the first two have `channels`, the middle ones ``2 * channels``, the last
    `final_channels`. With 2x2 pools the input needs ``pool_size ** depth`` frames and bins (128
    at the defaults); nothing is clamped, `check_input_fits` rejects a smaller input.
    """

    depth: int = 7
    channels: int = 128
    final_channels: int = 512
    kernel_size: int = 3
    pool_size: int = 2
    dense_units: int = 512
    dropout: float = 0.5

    TIME_KNOBS = ("depth", "pool_size")
    FREQ_KNOBS = ("depth", "pool_size")

    def check(self) -> None:
        for key in ("depth", "channels", "final_channels", "kernel_size", "pool_size", "dense_units"):
            require_at_least(self, key, 1)
        require_dropout(self)
        require_widths(self, self.widths(), ("channels", "final_channels"))
        require_widths(self, [self.dense_units], ("dense_units",))

    def widths(self) -> list[int]:
        middle = [self.channels if index < 2 else 2 * self.channels for index in range(self.depth - 1)]
        return [*middle, self.final_channels]

    def time_reductions(self) -> list[Reduction]:
        return [conv(self.kernel_size), pool(self.pool_size)] * self.depth

    def freq_reductions(self) -> list[Reduction]:
        return self.time_reductions()

    def fit_summary(self) -> str:
        return f"depth {self.depth} with pool {self.pool_size}"


class ShortChunkCnn(nn.Module):
    """Input batch norm, conv blocks, global max-pool over what is left of bins and frames, then
    dense-BN-ReLU-dropout-dense. The paper squeezes a frequency axis of exactly 1 (128 mel bins);
    a global max over both axes is the same there and lets other bin counts through.

    The dense batch norm needs more than one example per batch in training mode.
    """

    def __init__(self, params: ShortChunkParams, n_classes: int) -> None:
        super().__init__()
        self.input_norm = nn.Sequential(AddChannel(), nn.BatchNorm2d(1))
        blocks: list[nn.Module] = []
        in_channels = 1
        for channels in params.widths():
            blocks.append(ConvBlock2d(in_channels, channels, params.kernel_size, 1, params.pool_size))
            in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = GlobalPool("max")
        self.head = nn.Sequential(
            nn.Linear(in_channels, params.dense_units),
            nn.BatchNorm1d(params.dense_units),
            nn.ReLU(inplace=True),
            nn.Dropout(params.dropout),
            nn.Linear(params.dense_units, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.blocks(self.input_norm(x))))


@register("shortchunk", ShortChunkParams)
def build_shortchunk(params: ShortChunkParams, n_bins: int, n_classes: int) -> nn.Module:
    """The short-chunk CNN; `n_bins` does not change its weights."""
    return ShortChunkCnn(params, n_classes)
