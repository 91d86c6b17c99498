"""The one table of architectures: each family registers its builder and params dataclass with
`@register`, and the public functions look names up here, so adding a family touches one file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from common.errors import UserError
from common.typed import from_dict, require
from models.params import WHERE, ModelParams, min_input

P = TypeVar("P", bound=ModelParams)
Builder = Callable[[Any, int, int], nn.Module]  # (params, n_bins, n_classes) -> module


@dataclass(frozen=True)
class Architecture:
    name: str
    params_class: type[ModelParams]
    build: Builder


_REGISTRY: dict[str, Architecture] = {}


def register(name: str, params_class: type[P]) -> Callable[[Callable[[P, int, int], nn.Module]], Builder]:
    """Decorator: record `build(params, n_bins, n_classes)` as architecture `name`."""

    def decorator(build: Callable[[P, int, int], nn.Module]) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} registered twice")
        _REGISTRY[name] = Architecture(name, params_class, build)
        return build

    return decorator


def architecture_names() -> tuple[str, ...]:
    """The registered architectures, sorted, for messages and search spaces."""
    return tuple(sorted(_REGISTRY))


def _lookup(arch: str) -> Architecture:
    if arch not in _REGISTRY:
        raise UserError(f"model.arch: unknown architecture {arch!r} (known: {', '.join(architecture_names())})")
    return _REGISTRY[arch]


def params_class(arch: str) -> type:
    """The hyperparameter dataclass of `arch`, whose fields are the keys `model.params` accepts."""
    return _lookup(arch).params_class


def parse_params(arch: str, params: dict[str, Any] | None) -> ModelParams:
    """Typed, checked params of `arch`; missing keys take the dataclass defaults."""
    return from_dict(_lookup(arch).params_class, params, WHERE)


def _require_positive(name: str, value: int) -> None:
    positive = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    require(positive, name, value, "must be a positive integer")


def build_model(arch: str, params: dict[str, Any] | None, n_bins: int, n_classes: int) -> nn.Module:
    """A fresh, randomly initialised `arch` mapping (batch, n_bins, frames) to (batch, n_classes) logits.

    It stays on the CPU: the caller moves it to its device.
    """
    architecture = _lookup(arch)
    typed = parse_params(arch, params)
    _require_positive("n_bins", n_bins)
    _require_positive("n_classes", n_classes)
    return architecture.build(typed, n_bins, n_classes)


def check_input_fits(arch: str, params: dict[str, Any] | None, n_bins: int, n_frames: int) -> None:
    """Raise `UserError` when `arch` with `params` would shrink an input of `n_bins` x `n_frames`
    to nothing, naming what it needs and which `model.params` knobs to lower, so a bad search
    trial fails in its first second rather than deep inside its first forward pass."""
    typed = parse_params(arch, params)
    _require_positive("n_bins", n_bins)
    _require_positive("n_frames", n_frames)
    time_ops, freq_ops = typed.time_reductions(), typed.freq_reductions()
    need_frames, need_bins = min_input(time_ops), min_input(freq_ops)
    short_frames, short_bins = n_frames < need_frames, bool(freq_ops) and n_bins < need_bins
    if not (short_frames or short_bins):
        return
    needs = f"{need_frames} frames" + (f" and {need_bins} bins" if freq_ops else "")
    knobs = list(typed.TIME_KNOBS if short_frames else ())
    knobs += [k for k in (typed.FREQ_KNOBS if short_bins else ()) if k not in knobs]
    fixes = " or ".join(f"{WHERE}.{knob}" for knob in knobs)
    longer = " or ".join(["use longer segments"] * short_frames + ["use more bins"] * short_bins)
    raise UserError(
        f"model {arch}: {typed.fit_summary()} needs at least {needs}, input has {n_frames} frames"
        f" x {n_bins} bins (lower {fixes}, or {longer})"
    )
