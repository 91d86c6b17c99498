"""The convolutional recurrent network of Choi, Fazekas, Sandler and Cho, "Convolutional Recurrent
Neural Networks for Music Classification", ICASSP 2017: a small 2D CNN extracts local features and
a GRU summarises them over time, so the order of events in a segment can matter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.blocks import AddChannel, ConvBlock2d
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
class CrnnParams(ModelParams):
    """Defaults follow the paper as reimplemented by Won et al. 2020 (minzwon/sota-music-tagging-
    models): 4 conv blocks of 64, 128, 128, 128 channels (the first `channels`, the rest twice
    that), a 2-layer GRU of 32 units, dropout 0.5.

    One change: the paper pools (2, 3, 4, 4) to bring 96 mel bins down to exactly one; here every
    block pools by `pool_size` (frequency by `freq_pool_size` when set) and what is left of the
    frequency axis is max-pooled, so any bin count the pools fit works.
    """

    depth: int = 4
    channels: int = 64
    kernel_size: int = 3
    pool_size: int = 2
    freq_pool_size: int | None = None
    rnn_units: int = 32
    rnn_layers: int = 2
    dropout: float = 0.5

    TIME_KNOBS = ("depth", "pool_size")
    FREQ_KNOBS = ("depth", "freq_pool_size")

    def check(self) -> None:
        for key in ("depth", "channels", "kernel_size", "pool_size", "rnn_units", "rnn_layers"):
            require_at_least(self, key, 1)
        if self.freq_pool_size is not None:
            require_at_least(self, "freq_pool_size", 1)
        require_dropout(self)
        require_widths(self, self.widths(), ("channels",))
        require_widths(self, [self.rnn_units], ("rnn_units",))

    @property
    def freq_pool(self) -> int:
        return self.pool_size if self.freq_pool_size is None else self.freq_pool_size

    def widths(self) -> list[int]:
        return [self.channels] + [2 * self.channels] * (self.depth - 1)

    def time_reductions(self) -> list[Reduction]:
        return [conv(self.kernel_size), pool(self.pool_size)] * self.depth

    def freq_reductions(self) -> list[Reduction]:
        return [conv(self.kernel_size), pool(self.freq_pool)] * self.depth

    def fit_summary(self) -> str:
        pools = f"{self.pool_size}" if self.freq_pool == self.pool_size else f"{self.freq_pool}x{self.pool_size}"
        return f"depth {self.depth} with pool {pools}"


class Crnn(nn.Module):
    """Input batch norm, conv blocks, max over frequency, GRU over time, its last output through
    dropout and a linear layer."""

    def __init__(self, params: CrnnParams, n_classes: int) -> None:
        super().__init__()
        self.input_norm = nn.Sequential(AddChannel(), nn.BatchNorm2d(1))
        blocks: list[nn.Module] = []
        in_channels = 1
        window = (params.freq_pool, params.pool_size)
        for channels in params.widths():
            blocks.append(ConvBlock2d(in_channels, channels, params.kernel_size, 1, window))
            in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.rnn = nn.GRU(in_channels, params.rnn_units, params.rnn_layers, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(params.dropout), nn.Linear(params.rnn_units, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.input_norm(x)).amax(dim=2)  # (batch, channels, frames)
        outputs, _ = self.rnn(features.transpose(1, 2))
        return self.head(outputs[:, -1])


@register("crnn", CrnnParams)
def build_crnn(params: CrnnParams, n_bins: int, n_classes: int) -> nn.Module:
    """The CRNN; `n_bins` does not change its weights."""
    return Crnn(params, n_classes)
