"""What every architecture's hyperparameter dataclass shares: value checks that name the key at
fault, and the arithmetic of how its layers shrink the time and frequency axes, so a network that
cannot fit an input is rejected before any training starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from common.typed import require

WHERE = "model.params"
# A layer wider than this is a typo or a runaway growth factor, not a model for GTZAN.
MAX_CHANNELS = 4096


@dataclass(frozen=True)
class Reduction:
    """One layer that shrinks an axis: a convolution or a max-pool, which share PyTorch's size rule
    ``out = floor((n + 2 * padding - kernel) / stride) + 1``, and fail when ``n + 2 * padding < kernel``."""

    kernel: int
    stride: int = 1
    padding: int = 0

    def apply(self, n: int) -> int:
        span = n + 2 * self.padding - self.kernel
        return span // self.stride + 1 if span >= 0 else 0


def conv(kernel: int, stride: int = 1, padding: int | None = None) -> Reduction:
    """A convolution; `padding` None means the blocks' "same" padding of ``kernel // 2``."""
    return Reduction(kernel, stride, kernel // 2 if padding is None else padding)


def pool(size: int) -> Reduction:
    """A max-pool whose stride is its size (PyTorch's default), without padding."""
    return Reduction(size, size, 0)


def output_size(n: int, reductions: Sequence[Reduction]) -> int:
    """Length of an axis after all `reductions`, or 0 when some layer gets less than it needs."""
    for reduction in reductions:
        n = reduction.apply(n) if n > 0 else 0
    return n


def min_input(reductions: Sequence[Reduction]) -> int:
    """Smallest axis length that leaves at least one step after all `reductions`.

    Output length never decreases as the input grows, so doubling then bisecting finds it.
    """
    high = 1
    while output_size(high, reductions) < 1:
        high *= 2
    low = high // 2  # too small, or 0 when high is 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if output_size(middle, reductions) >= 1 else (middle, high)
    return high


class ModelParams:
    """Base of the params dataclasses: subclasses check their values in `check` and describe their
    downsampling, which `check_input_fits` turns into a message naming the knobs to turn."""

    TIME_KNOBS: ClassVar[tuple[str, ...]] = ()
    FREQ_KNOBS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise `UserError` naming the first field whose value makes no network."""

    def time_reductions(self) -> list[Reduction]:
        """The layers that shrink the frame axis, in order."""
        return []

    def freq_reductions(self) -> list[Reduction]:
        """The layers that shrink the bin axis, in order (none when bins are channels)."""
        return []

    def fit_summary(self) -> str:
        """The settings that decide the smallest input, e.g. ``depth 6 with pool 2``."""
        raise NotImplementedError


def require_at_least(params: Any, key: str, minimum: int | float) -> None:
    require(getattr(params, key) >= minimum, f"{WHERE}.{key}", getattr(params, key), f"must be at least {minimum}")


def require_dropout(params: Any) -> None:
    why = "must be in [0, 1): it is the probability of zeroing a unit"
    require(0.0 <= params.dropout < 1.0, f"{WHERE}.dropout", params.dropout, why)


def widths(channels: int, growth: float, depth: int) -> list[int]:
    """Channels of each block: `channels` times `growth` per block, rounded, at least 1."""
    return [max(1, round(channels * growth**index)) for index in range(depth)]


def require_widths(params: Any, layer_widths: Sequence[int], keys: Sequence[str]) -> None:
    """Reject a channel schedule wider than `MAX_CHANNELS` instead of silently capping it; the
    message names `keys[0]` and suggests all of `keys`."""
    widest = max(layer_widths)
    knobs = " or ".join(f"{WHERE}.{key}" for key in keys)
    why = f"makes a layer {widest} channels wide (at most {MAX_CHANNELS}; lower {knobs})"
    require(widest <= MAX_CHANNELS, f"{WHERE}.{keys[0]}", getattr(params, keys[0]), why)
