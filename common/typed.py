"""Typed configs from plain nested dicts (what YAML and Ray Tune hand us), unknown keys rejected."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

from common.errors import UserError

T = TypeVar("T")

# A config class's hints, resolved once: the pre-flight checks build configs thousands of times.
_type_hints = functools.cache(typing.get_type_hints)


def from_dict(cls: type[T], values: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from `values`; nested dataclass fields are built recursively.

    An unknown key, or a value of the wrong type, raises `UserError` naming the key as a dotted
    path prefixed by `where` (for example ``optimizer.momentum``).
    """
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise UserError(f"{where or cls.__name__}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        names = ", ".join(_join(where, key) for key in unknown)
        raise UserError(f"unknown key {names} (known: {', '.join(sorted(fields))})")
    hints = _type_hints(cls)
    kwargs = {key: _coerce(hints[key], value, _join(where, key)) for key, value in values.items()}
    return cls(**kwargs)


def require(ok: bool, key: str, value: Any, why: str) -> None:
    """The project's one value check: `UserError("key: value why")` unless `ok`, where `key` is
    the dotted key at fault (``optimizer.lr``) and `why` says what the value must be."""
    if not ok:
        raise UserError(f"{key}: {value!r} {why}")


def to_dict(config: Any) -> dict[str, Any]:
    """The plain nested dict that `from_dict` turns back into the same config."""
    return dataclasses.asdict(config)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(option for option in options if option is not type(None))
        return _coerce(hint, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_coerce(item, v, where) for v in value)
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise UserError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) and hint is not bool:
        raise UserError(f"{where}: expected {hint.__name__}, got {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise UserError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value
