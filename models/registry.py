"""The one table of architectures, and the public API for adding one, shipped or your own.

Contract of an architecture (the shipped families in models/ follow it, and so must a plugin file
that a space names with `plugins: [my_models.py]`):

    from dataclasses import dataclass
    from torch import nn
    from models.registry import ModelParams, register

    @dataclass(frozen=True)
    class MyParams(ModelParams):      # its fields are the keys of `model.my_net` in a space file
        width: int = 64

    @register("my_net", MyParams)     # the name `model.arch` takes; a taken name is refused
    def build(params: MyParams, n_bins: int, n_classes: int) -> nn.Module: ...

- The params class is a frozen dataclass subclassing `ModelParams`. A space's values for it are
  checked by `common.typed.from_dict` (unknown keys and wrong types refused, naming the key);
  override `check()` to refuse bad values with `common.typed.require("model.params.KEY", ...)`,
  and optionally `time_reductions()`/`freq_reductions()` and `fit_summary()` so that an input too
  short for the network is refused before training, naming the knobs (see models/params.py).
- The builder gets the typed params, the number of feature bins (`features` kind: mel's n_bins,
  mfcc's n_mfcc, 12 for chroma) and of classes, and returns a freshly initialised module on the
  CPU (the caller seeds torch before building and moves it to its device).
- The module maps a float32 batch (batch, n_bins, frames) to (batch, n_classes) logits (no
  softmax: training applies cross-entropy). Each bin is normalised with the training split's mean
  and standard deviation (about zero mean, unit variance). `frames` is one segment
  (`training.segment_seconds` x the features' frames per second), or for a clip shorter than a
  segment the whole clip (as short as the smallest input `time_reductions()` allows; a clip
  shorter than that is padded with silence), so it varies from batch to batch: do not hard-wire
  a frame count, and pool over time.
- A batch may hold a single example (a clip of one segment, at prediction).

Before any trial, every plugin architecture a space can choose is built at each combination of
its bounding values and run on a batch of zeros of each input shape the space gives
(`check_forward`); a module that rejects the input or returns another shape fails there.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
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
    origin: str  # the file that registered it, for messages


_REGISTRY: dict[str, Architecture] = {}


def register(name: str, params_class: type[P]) -> Callable[[Callable[[P, int, int], nn.Module]], Builder]:
    """Decorator: record `build(params, n_bins, n_classes)` as architecture `name` (see the contract
    above); a name already registered, or a params class that is not a `ModelParams` dataclass, is
    refused with a `UserError`."""
    if not (isinstance(params_class, type) and issubclass(params_class, ModelParams)):
        raise UserError(f"architecture {name!r}: its params class must subclass models.registry.ModelParams")
    if not dataclasses.is_dataclass(params_class):
        raise UserError(f"architecture {name!r}: its params class {params_class.__name__} must be a @dataclass")

    def decorator(build: Callable[[P, int, int], nn.Module]) -> Builder:
        origin = getattr(sys.modules.get(build.__module__), "__file__", None) or build.__module__
        if name in _REGISTRY:
            raise UserError(f"architecture {name!r} is taken (registered by {_REGISTRY[name].origin})")
        _REGISTRY[name] = Architecture(name, params_class, build, origin)
        return build

    return decorator


def forget(names: Iterable[str]) -> None:
    """Remove architectures: those a plugin file registered before it failed to import."""
    for name in names:
        _REGISTRY.pop(name, None)


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


def min_frames(arch: str, params: dict[str, Any] | None) -> int:
    """The fewest frames `arch` with `params` takes, from the reductions it declares (1 when it
    declares none): a clip shorter than that is padded up to it."""
    return min_input(parse_params(arch, params).time_reductions())


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


def check_forward(arch: str, params: dict[str, Any] | None, n_bins: int, n_frames: int) -> None:
    """Build `arch` and run a batch of zeros (2, n_bins, n_frames) through it in eval mode: raise
    `UserError`, naming the file that registered it, when the module rejects that input or does
    not return (2, n_classes) logits. `check_input_fits` first, for its message naming the knobs."""
    check_input_fits(arch, params, n_bins, n_frames)
    n_classes = 3  # any count: the output must follow it
    origin = _lookup(arch).origin
    where = f"{origin}: model {arch} on input (2, {n_bins}, {n_frames})"
    try:
        model = build_model(arch, params, n_bins, n_classes).eval()
        with torch.no_grad():
            logits = model(torch.zeros(2, n_bins, n_frames))
    except UserError:
        raise
    except Exception as err:  # whatever the user's module raises: one line naming it
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(f"{where}: fails ({type(err).__name__}: {first})") from err
    shape = tuple(getattr(logits, "shape", ()))
    if shape != (2, n_classes):
        raise UserError(f"{where}: returns shape {shape}, not (batch, n_classes) = (2, {n_classes}) logits")
