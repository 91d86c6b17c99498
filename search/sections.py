"""The sections of a space file (features, model, optimizer, schedule, training, augment), each
parsed into its part of a trial config. A section's selector (`features.kind`, `model.arch`,
`optimizer.name`, `schedule.name`) picks an option, and a sub-section named after an option applies
only when that option is chosen (Optuna's define-by-run space), so inapplicable parameters never
appear in a trial's config."""

from __future__ import annotations

import dataclasses
import itertools
import typing
from dataclasses import dataclass
from typing import Any

from common.errors import UserError
from features.settings import KINDS
from models import architecture_names
from search.distributions import Distribution, parse_value
from training.config import CONFIG_SECTIONS, TrialConfig


@dataclass(frozen=True)
class SectionRule:
    """How one section of a space file maps to its part of the trial config."""

    dataclass_: type
    selector: str | None = None  # the key whose value picks a sub-section
    options: tuple[str, ...] = ()  # every value the selector can take
    into_params: bool = False  # model: the sub-section becomes `params`, not merged keys
    choices_only: bool = False  # features: each combination is one store, so no continuous ranges


def section_rules() -> dict[str, SectionRule]:
    """One rule per section of a trial config (`CONFIG_SECTIONS`, each parsed into its field's
    dataclass); the sections with a selector also say which key it is and the values it takes."""
    classes = typing.get_type_hints(TrialConfig)
    selected = {
        "features": SectionRule(classes["features"], "kind", KINDS, choices_only=True),
        "model": SectionRule(classes["model"], "arch", architecture_names(), into_params=True),
        "optimizer": SectionRule(classes["optimizer"], "name", _literal_values(classes["optimizer"], "name")),
        "schedule": SectionRule(classes["schedule"], "name", _literal_values(classes["schedule"], "name")),
    }
    return {name: selected.get(name, SectionRule(classes[name])) for name in CONFIG_SECTIONS}


def _literal_values(cls: type, key: str) -> tuple[str, ...]:
    """The values a `Literal`-typed field accepts (OptimizerConfig.name: sgd, adam, ...)."""
    return typing.get_args(typing.get_type_hints(cls)[key])


@dataclass(frozen=True)
class SectionSpace:
    name: str
    rule: SectionRule
    values: dict[str, Any]  # key → fixed value or Distribution, shared by every option
    branches: dict[str, dict[str, Any]]  # option → its own keys

    def suggest(self, trial: Any) -> dict[str, Any]:
        """This section of one trial's config, asking `trial` (Optuna) for each distribution."""
        return self._resolve(lambda key, value: _draw(trial, key, value))

    def combinations(self) -> list[dict[str, Any]]:
        """Every config of this section (all distributions must be choices)."""
        out: list[dict[str, Any]] = []
        for option in self.options():
            fields = {**self.values, **self.branches.get(option, {})}
            if self.rule.selector:
                fields[self.rule.selector] = option
            keys = list(fields)
            grids = [f.candidates() if isinstance(f, Distribution) else [f] for f in fields.values()]
            out += [self.shape(dict(zip(keys, combo))) for combo in itertools.product(*grids)]
        return out

    def options(self) -> list[Any]:
        """Every value the selector can take here ([None] for a section without one)."""
        if not self.rule.selector:
            return [None]
        chosen = self.values.get(self.rule.selector, field_default(self.rule.dataclass_, self.rule.selector))
        return chosen.candidates() if isinstance(chosen, Distribution) else [chosen]

    def _resolve(self, draw) -> dict[str, Any]:
        selector = self.rule.selector
        resolved = {key: draw(f"{self.name}.{key}", value) for key, value in self.values.items()}
        if not selector:
            return self.shape(resolved)
        option = resolved.setdefault(selector, field_default(self.rule.dataclass_, selector))
        branch = self.branches.get(option, {})
        resolved.update({key: draw(f"{self.name}.{option}.{key}", v) for key, v in branch.items()})
        return self.shape(resolved)

    def parameters(self) -> dict[str, Distribution]:
        """Each distribution of this section by the name Optuna gives it (`optimizer.sgd.momentum`)."""
        named = {f"{self.name}.{key}": value for key, value in self.values.items()}
        for option, keys in self.branches.items():
            named.update({f"{self.name}.{option}.{key}": value for key, value in keys.items()})
        return {name: value for name, value in named.items() if isinstance(value, Distribution)}

    def keys_of(self, option: Any) -> dict[str, tuple[str, Any]]:
        """Each key that applies when the selector is `option`, but the selector: (where the
        file sets it, its fixed value or Distribution)."""
        shared = {key: (f"{self.name}.{key}", v) for key, v in self.values.items() if key != self.rule.selector}
        own = {key: (f"{self.name}.{option}.{key}", v) for key, v in self.branches.get(option, {}).items()}
        return {**shared, **own}

    def shape(self, flat: dict[str, Any]) -> dict[str, Any]:
        """The section's config from its flat keys: nested keys nested, model params in `params`."""
        flat = _nest(flat)
        if not self.rule.into_params:
            return flat
        selector = self.rule.selector
        return {selector: flat[selector], "params": {k: v for k, v in flat.items() if k != selector}}


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` -> `{"a": {"b": 1}}`: keys of a nested section (features.audio_augment) are
    kept dotted while drawing, so Optuna names them in full."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        outer, _, inner = key.partition(".")
        if inner:
            nested.setdefault(outer, {})[inner] = value
        else:
            nested[key] = value
    return nested


def _draw(trial: Any, name: str, value: Any) -> Any:
    return value.suggest(trial, name) if isinstance(value, Distribution) else value


def field_default(cls: type, key: str) -> Any:
    """The default of dataclass `cls`'s field `key`: what a trial gets when the file leaves it out."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == key)


def parse_section(name: str, raw: Any, rule: SectionRule) -> SectionSpace:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{name}: expected a mapping, got {raw!r}")
    fields = {f.name for f in dataclasses.fields(rule.dataclass_)}
    nested = _nested_sections(rule.dataclass_)
    values: dict[str, Any] = {}
    branches: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key in rule.options:
            branches[key] = _parse_branch(name, key, value)
        elif key in nested:
            values.update(_parse_nested(f"{name}.{key}", key, value, nested[key]))
        elif key in fields and not (rule.into_params and key == "params"):
            values[key] = parse_value(value, f"{name}.{key}")
        else:
            known = sorted((fields - {"params"}) | set(rule.options))
            raise UserError(f"{name}.{key}: unknown key (known: {', '.join(known)})")
    section = SectionSpace(name, rule, values, branches)
    _check_branches_reachable(section)
    if rule.choices_only:
        _check_choices_only(section)
    return section


def _nested_sections(cls: type) -> dict[str, type]:
    """Fields that are themselves dataclasses (features.audio_augment): a mapping of keys in a space."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def _parse_nested(where: str, key: str, raw: Any, cls: type) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a mapping of keys, got {raw!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise UserError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(known)})")
    return {f"{key}.{inner}": parse_value(value, f"{where}.{inner}") for inner, value in raw.items()}


def _parse_branch(section: str, option: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UserError(f"{section}.{option}: expected the keys that apply when {option} is chosen, got {raw!r}")
    return {key: parse_value(value, f"{section}.{option}.{key}") for key, value in raw.items()}


def _check_choices_only(section: SectionSpace) -> None:
    for option, keys in [(None, section.values), *section.branches.items()]:
        for key, value in keys.items():
            if isinstance(value, Distribution) and value.kind != "choice":
                where = ".".join(p for p in (section.name, option, key) if p)
                raise UserError(f"{where}: takes a fixed value or {{choice: [...]}}, not {value.kind} (one store each)")


def _check_branches_reachable(section: SectionSpace) -> None:
    offered = section.options()
    for option in section.branches:
        if option not in offered:
            raise UserError(
                f"{section.name}.{option}: applies only when {section.name}.{section.rule.selector} is "
                f"{option!r}, which it never is here (options: {', '.join(map(str, offered))})"
            )
