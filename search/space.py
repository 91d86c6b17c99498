"""Space files: the sections of a trial config (features, model, optimizer, schedule, training,
augment) where any value may be a distribution, plus the `search` settings.

A fixed value is a plain scalar; a distribution is a one-key mapping: `{choice: [...]}`,
`{uniform: [low, high]}`, `{loguniform: [low, high]}`, `{int: [low, high]}` or
`{int: [low, high, step]}`. Conditions: a section's selector (`features.kind`, `model.arch`,
`optimizer.name`, `schedule.name`) picks an option, and a sub-section named after an option applies
only when that option is chosen (Optuna's define-by-run space), so inapplicable parameters never
appear in a trial's config.

A top-level `plugins: [my_models.py, ...]` (paths relative to the space file) names Python files
whose architectures (see models/registry.py) `model.arch` may then choose.

Its parts: search.distributions (values), search.sections (sections and their conditions),
search.settings (the `search` section), search.preflight (the checks made before any trial runs).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.typed import from_dict, require
from features.settings import FeatureSetting
from models.plugins import PluginFile, load_plugin
from search.distributions import Distribution
from search.preflight import check_combinations, check_models
from search.sections import SectionRule, SectionSpace, parse_section, section_rules  # noqa: F401 (SectionRule: below)
from search.settings import SearchSettings
from search.space_file import read_space_file, resolve_space_path

LABEL = "label"  # a first trial's name for people (search.first_trials), not a parameter

log = logging.getLogger(__name__)

# Ray's searcher snapshots (searcher-state-*.pkl) pickle the space by module and name: a search
# started before this module was split names Distribution, SearchSettings, SectionRule and
# SectionSpace here, so they stay importable from here for it to resume.


@dataclass(frozen=True)
class Space:
    path: Path
    sections: dict[str, SectionSpace]
    search: SearchSettings
    plugins: tuple[PluginFile, ...] = ()  # the files named by `plugins:`, loaded

    def suggest(self, trial: Any) -> dict[str, Any]:
        """One trial's full config (a plain nested dict), drawn through Optuna's `trial`."""
        config = {name: section.suggest(trial) for name, section in self.sections.items()}
        config["training"]["max_epochs"] = self.search.max_epochs
        return config

    def parameters(self) -> dict[str, Distribution]:
        """Every distribution of the space by the name Optuna gives it."""
        return {name: value for section in self.sections.values() for name, value in section.parameters().items()}

    def first_trial_params(self) -> list[dict[str, Any]]:
        """search.first_trials that fit the space, as Optuna's enqueued params (`first_trials`)."""
        return [params for _, params in self.first_trials()]

    def first_trial_labels(self) -> list[str]:
        """Each first trial's name for people (its `label`, else `first-<n>`), of those that fit."""
        return [label for label, _ in self.first_trials()]

    def first_trials(self) -> list[tuple[str, dict[str, Any]]]:
        """search.first_trials as (label, Optuna's params), leaving out any whose values the space
        does not offer (an edited choice list): `dropped_first_trials` says which and why."""
        return [point for point in self._first_trials() if isinstance(point, tuple)]

    def dropped_first_trials(self) -> list[str]:
        """One line per first trial left out because the space no longer offers its values."""
        return [point for point in self._first_trials() if isinstance(point, str)]

    def _first_trials(self) -> list[tuple[str, dict[str, Any]] | str]:
        parameters = self.parameters()
        points: list[tuple[str, dict[str, Any]] | str] = []
        for index, point in enumerate(self.search.first_trials):
            where = f"search.first_trials[{index}]"
            require(isinstance(point, dict) and point, where, point, "must be a mapping of searched parameters")
            label = str(point.get(LABEL, f"first-{index + 1}"))
            require(
                re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", label) is not None,
                f"{where}.{LABEL}",
                label,
                "must be letters, digits, dots and dashes (it names the trial's folder)",
            )
            try:
                points.append((label, _fixed_point(point, parameters, where)))
            except UserError as err:
                points.append(f"first trial {label} left out: {err}")
        return points

    def feature_settings(self) -> list[FeatureSetting]:
        """Every feature setting a trial can get: one store each."""
        settings: list[FeatureSetting] = []
        for values in self.sections["features"].combinations():
            setting = FeatureSetting.from_dict(values)
            if setting not in settings:
                settings.append(setting)
        return settings

    def with_search(self, **overrides: Any) -> Space:
        """A copy with search settings replaced (command-line flags); None means keep.

        A user who shortens trials means it: the file's grace period follows a shorter
        `max_epochs` (said in one line). Only values given here together can contradict each
        other into an error."""
        given = {key: value for key, value in overrides.items() if value is not None}
        settings = dict(given)
        max_epochs = given.get("max_epochs", self.search.max_epochs)
        if "grace_period" not in given and 1 <= max_epochs < self.search.grace_period:
            log.warning(
                "search.grace_period: %d -> %d to fit --max-epochs %d", self.search.grace_period, max_epochs, max_epochs
            )
            settings["grace_period"] = max_epochs
        try:
            return dataclasses.replace(self, search=dataclasses.replace(self.search, **settings))
        except UserError as err:
            flags = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in given.items())
            raise UserError(f"{self.path} with {flags}: {err}") from err


def _fixed_point(point: dict[str, Any], parameters: dict[str, Distribution], where: str) -> dict[str, Any]:
    """A first trial's values as Optuna stores them; `UserError` for one the space cannot draw."""
    searched = f"is not a searched parameter (searched: {', '.join(parameters)})"
    for name in point:
        require(name in parameters or name == LABEL, where, name, searched)
    return {name: parameters[name].fixed(value, f"{where}.{name}") for name, value in point.items() if name != LABEL}


def parse_space(raw: dict[str, Any], path: Path, plugins_dir: Path | None = None) -> Space:
    """Check everything a search needs from a space file; errors name the file and the key.

    Plugin paths are relative to `plugins_dir`, by default the space file's folder (a resumed
    search reads a copy of the file, elsewhere)."""
    try:
        plugins = _load_plugins(raw.get("plugins"), plugins_dir or path.parent)
        rules = section_rules()
        unknown = sorted(set(raw) - set(rules) - {"search", "plugins"})
        if unknown:
            known = ", ".join([*rules, "search", "plugins"])
            raise UserError(f"{', '.join(unknown)}: unknown section (known: {known})")
        if "max_epochs" in (raw.get("training") or {}):
            raise UserError("training.max_epochs: set search.max_epochs instead (every trial's limit and ASHA's)")
        sections = {name: parse_section(name, raw.get(name), rule) for name, rule in rules.items()}
        for section in sections.values():
            check_combinations(section)
        space = Space(path, sections, from_dict(SearchSettings, raw.get("search"), "search"), plugins)
        space.feature_settings()
        space.first_trial_params()
        check_models(space.sections, space.feature_settings())
    except UserError as err:
        raise UserError(f"{path}: {err}") from err
    return space


def _load_plugins(raw: Any, folder: Path) -> tuple[PluginFile, ...]:
    """Import the files of `plugins:` (registering their architectures) before the sections are read."""
    if raw is None:
        return ()
    listed = isinstance(raw, list) and all(isinstance(entry, str) and entry for entry in raw)
    require(listed, "plugins", raw, "must be a list of Python files (paths relative to the space file)")
    return tuple(dict.fromkeys(load_plugin(folder / Path(entry).expanduser()) for entry in raw))


def load_space(space: str | Path, plugins_dir: Path | None = None) -> Space:
    path = resolve_space_path(space)
    return parse_space(read_space_file(path), path, plugins_dir)
