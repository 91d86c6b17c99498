"""The course homework's baseline: a small 1D CNN over time with the bins as channels, kept exactly
as specified so every search result can be compared with it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from models.params import ModelParams, Reduction, pool, require_at_least
from models.registry import register

_LAYERS = ("1", "2", "3")


@dataclass(frozen=True)
class BaselineParams(ModelParams):
    """The homework's numbers as defaults; lower the pools (or kernels) to fit short segments."""

    channels1: int = 32
    channels2: int = 32
    channels3: int = 64
    kernel1: int = 8
    kernel2: int = 8
    kernel3: int = 4
    pool1: int = 8
    pool2: int = 8
    pool3: int = 4
    summary_steps: int = 3  # time steps kept before flattening (3 at the homework's 1024 frames)

    TIME_KNOBS = tuple(f"{kind}{layer}" for kind in ("pool", "kernel") for layer in _LAYERS)

    def check(self) -> None:
        for kind in ("channels", "kernel", "pool"):
            for layer in _LAYERS:
                require_at_least(self, f"{kind}{layer}", 1)
        require_at_least(self, "summary_steps", 1)

    def layers(self) -> list[tuple[int, int, int]]:
        """(channels, kernel, pool) of each conv block."""
        return [
            (self.channels1, self.kernel1, self.pool1),
            (self.channels2, self.kernel2, self.pool2),
            (self.channels3, self.kernel3, self.pool3),
        ]

    def time_reductions(self) -> list[Reduction]:
        # Unpadded convs: each needs at least `kernel` steps.
        return [op for _, kernel, size in self.layers() for op in (Reduction(kernel), pool(size))]

    def fit_summary(self) -> str:
        kernels = ", ".join(str(kernel) for _, kernel, _ in self.layers())
        pools = ", ".join(str(size) for _, _, size in self.layers())
        return f"the conv stack (kernels {kernels}; pools {pools})"


@register("baseline", BaselineParams)
def build_baseline(params: BaselineParams, n_bins: int, n_classes: int) -> nn.Module:
    """Conv1d(n_bins→32, k8)-BN-ReLU-MaxPool(8), Conv1d(32→32, k8)-BN-ReLU-MaxPool(8),
    Conv1d(32→64, k4)-BN-ReLU-MaxPool(4), flatten, Linear(64*3 → n_classes); no padding, stride 1.

    At the homework's 1024 frames the time axis goes 1024→1017→127→120→15→12→3, so the flatten
    sees 64*3 = 192 features. The `AdaptiveAvgPool1d(3)` before the flatten is the identity at
    exactly that length (the homework model unchanged) and otherwise averages the time axis into 3
    steps, so the same weights accept any segment length the convs fit.
    """
    layers: list[nn.Module] = []
    in_channels = n_bins
    for channels, kernel, size in params.layers():
        layers += [nn.Conv1d(in_channels, channels, kernel), nn.BatchNorm1d(channels), nn.ReLU()]
        layers.append(nn.MaxPool1d(size))
        in_channels = channels
    layers += [
        nn.AdaptiveAvgPool1d(params.summary_steps),
        nn.Flatten(),
        nn.Linear(in_channels * params.summary_steps, n_classes),
    ]
    return nn.Sequential(*layers)
