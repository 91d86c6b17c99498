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
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from common.errors import UserError
from common.typed import from_dict, require
from features.settings import KINDS, FeatureSetting
from models import architecture_names
from models.plugins import PluginFile, load_plugin, plugin_of
from models.registry import check_forward, parse_params
from search.space_file import read_space_file, resolve_space_path
from training.config import CONFIG_SECTIONS, TrainingConfig, TrialConfig

log = logging.getLogger(__name__)

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")


@dataclass(frozen=True)
class Distribution:
    kind: str  # one of DISTRIBUTIONS
    args: tuple  # choice: the options; uniform/loguniform: (low, high); int: (low, high[, step])

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "choice":
            if self._scalar_choices():
                return trial.suggest_categorical(name, list(self.args))
            by_text = {str(arg): arg for arg in self.args}
            return by_text[trial.suggest_categorical(name, list(by_text))]
        if self.kind == "int":
            step = self.args[2] if len(self.args) == 3 else 1
            return trial.suggest_int(name, self.args[0], self.args[1], step=step)
        return trial.suggest_float(name, self.args[0], self.args[1], log=self.kind == "loguniform")

    def fixed(self, value: Any, where: str) -> Any:
        """`value` as Optuna stores it when a trial is enqueued with it (search.first_trials),
        checked to be one this distribution can draw."""
        if self.kind == "choice":
            require(value in self.args, where, value, f"is not one of the choices {list(self.args)}")
            return value if self._scalar_choices() else str(value)
        number = isinstance(value, int if self.kind == "int" else (int, float)) and not isinstance(value, bool)
        low, high = self.args[:2]
        require(number and low <= value <= high, where, value, f"is not in {self.kind} [{low}, {high}]")
        return value

    def _scalar_choices(self) -> bool:
        """Optuna stores only scalar choices: others (ranges like [-2, 2]) are chosen by their text."""
        return all(arg is None or isinstance(arg, (bool, int, float, str)) for arg in self.args)

    def candidates(self) -> list[Any]:
        """Values to check before any trial runs: every option, or both ends of a range."""
        return list(self.args) if self.kind == "choice" else list(self.args[:2])


def parse_value(value: Any, where: str) -> Any:
    """A fixed value as it is, or a `Distribution` from a one-key mapping (checked)."""
    if not isinstance(value, dict):
        return value
    one_of = f"is not a distribution (one key of {', '.join(DISTRIBUTIONS)})"
    require(len(value) == 1 and next(iter(value)) in DISTRIBUTIONS, where, value, one_of)
    kind, args = next(iter(value.items()))
    require(isinstance(args, list) and len(args) > 0, where, args, f"must be a non-empty list for {kind}")
    if kind == "choice":
        return Distribution(kind, tuple(args))
    return Distribution(kind, _checked_range(kind, args, where))


def _checked_range(kind: str, args: list, where: str) -> tuple:
    sizes = (2, 3) if kind == "int" else (2,)
    number = int if kind == "int" else (int, float)
    shape = "[low, high] or [low, high, step] of integers" if kind == "int" else "[low, high]"
    numbers = all(isinstance(a, number) and not isinstance(a, bool) for a in args)
    require(len(args) in sizes and numbers, where, args, f"is not {shape} for {kind}")
    low, high = args[0], args[1]
    if low > high:
        raise UserError(f"{where}: low {low!r} is above high {high!r}")
    require(kind != "loguniform" or low > 0, where, low, "must be above 0 as loguniform's low end")
    require(len(args) < 3 or args[2] >= 1, where, args[-1], "must be at least 1 as int's step")
    return tuple(args)


# --- sections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionRule:
    """How one section of a space file maps to its part of the trial config."""

    dataclass_: type
    selector: str | None = None  # the key whose value picks a sub-section
    options: tuple[str, ...] = ()  # every value the selector can take
    into_params: bool = False  # model: the sub-section becomes `params`, not merged keys
    choices_only: bool = False  # features: each combination is one store, so no continuous ranges


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
        chosen = self.values.get(self.rule.selector, _default(self.rule.dataclass_, self.rule.selector))
        return chosen.candidates() if isinstance(chosen, Distribution) else [chosen]

    def _resolve(self, draw) -> dict[str, Any]:
        selector = self.rule.selector
        resolved = {key: draw(f"{self.name}.{key}", value) for key, value in self.values.items()}
        if not selector:
            return self.shape(resolved)
        option = resolved.setdefault(selector, _default(self.rule.dataclass_, selector))
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


def _default(cls: type, key: str) -> Any:
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


# --- the whole file -------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSettings:
    """The `search` section: how many trials, what to optimise, ASHA, per-trial resources.
    Command-line flags override these."""

    num_samples: int = 16  # trials to run
    max_epochs: int = 20  # every trial's epoch limit, and ASHA's max_t
    grace_period: int = 2  # ASHA: epochs a trial runs before it can be stopped
    reduction_factor: int = 3  # ASHA: about 1/reduction_factor of trials go on at each rung
    seed: int = 0  # seeds Optuna's TPE sampler
    metric: Literal["valid_clip_acc"] = "valid_clip_acc"  # what ASHA and TPE maximise
    scheduler: Literal["asha", "fifo"] = "asha"  # fifo runs every trial to max_epochs (for comparison)
    searcher: Literal["tpe", "random"] = "tpe"  # random: Optuna's RandomSampler on the same space (for comparison)
    # TPE's options for this kind of space (Optuna's TPESampler): multivariate models the chosen
    # values jointly, one model per set of parameters that occur together (group=True: the space
    # is conditional); constant_liar counts running trials as poor results, so that two workers
    # do not propose the same region at once. Off: Optuna's defaults.
    tpe_multivariate: bool = False
    tpe_constant_liar: bool = False
    # Finished trials TPE needs before it models anything (Optuna's n_startup_trials; before
    # them, random draws). Queued first trials count among them.
    tpe_startup_trials: int = 10
    # Trials run first, before TPE draws: values you trust (the homework's recipe, your notebook's
    # best), each a mapping of searched parameters (`optimizer.lr: 0.003`); the ones a trial
    # leaves out are drawn as usual. Ray Tune's points_to_evaluate, Optuna's enqueue_trial.
    first_trials: tuple[Any, ...] = ()
    epoch_budget: int | None = None  # stop the whole search once its trials have run this many epochs in all
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.25  # only where CUDA is present: 0.25 lets four small CNNs share a GPU
    max_failures: int = 1  # retries of a failed trial, from its last checkpoint
    # A new trial may reuse a finished trial's worker process (about 4.5 s less per trial on 2
    # cores, tests/bench/bench_search.py: no new process importing torch), but Ray's dashboard then
    # names that worker after its first trial only (an actor's repr is read once), so by default
    # every trial gets a worker of its own.
    reuse_workers: bool = False
    keep_checkpoints: int = 4  # per trial, the newest (only resume reads them; the report retrains). Fewer
    # make Ray force an experiment snapshot every few short epochs (and warn about it)

    def __post_init__(self) -> None:
        for key in ("num_samples", "max_epochs", "grace_period", "keep_checkpoints", "tpe_startup_trials"):
            require(getattr(self, key) >= 1, f"search.{key}", getattr(self, key), "must be at least 1")
        above = f"is above search.max_epochs {self.max_epochs}"
        require(self.grace_period <= self.max_epochs, "search.grace_period", self.grace_period, above)
        require(self.reduction_factor >= 2, "search.reduction_factor", self.reduction_factor, "must be at least 2")
        require(self.cpus_per_trial > 0, "search.cpus_per_trial", self.cpus_per_trial, "must be above 0")
        require(0 <= self.gpus_per_trial <= 1, "search.gpus_per_trial", self.gpus_per_trial, "must be in [0, 1]")
        require(self.max_failures >= 0, "search.max_failures", self.max_failures, "must be zero or positive")
        budget = self.epoch_budget
        require(budget is None or budget >= 1, "search.epoch_budget", budget, "must be at least 1 (or left out)")


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
        """search.first_trials as Optuna's enqueued params, each checked against the space."""
        parameters = self.parameters()
        searched = f"is not a searched parameter (searched: {', '.join(parameters)})"
        points = []
        for index, point in enumerate(self.search.first_trials):
            where = f"search.first_trials[{index}]"
            require(isinstance(point, dict) and point, where, point, "must be a mapping of searched parameters")
            for name in point:
                require(name in parameters, where, name, searched)
            points.append({name: parameters[name].fixed(value, f"{where}.{name}") for name, value in point.items()})
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
            _check_combinations(section)
        space = Space(path, sections, from_dict(SearchSettings, raw.get("search"), "search"), plugins)
        space.feature_settings()
        space.first_trial_params()
        _check_plugin_models(space)
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


def _check_plugin_models(space: Space) -> None:
    """Run a batch of zeros through each plugin architecture the space can choose, at every
    combination of its bounding values (`_combinations_to_check`) and every input shape the space
    gives, so a module that rejects its input fails now, naming its file, not in every trial."""
    model = space.sections["model"]
    shapes = _input_shapes(space)
    for arch in model.options():
        if plugin_of(arch) is None:
            continue  # the shipped architectures: their layer arithmetic is checked in each trial
        keys = model.keys_of(arch)
        for combination in _combinations_to_check({key: value for key, (_, value) in keys.items()}):
            params = model.shape({**combination, "arch": arch})["params"]
            for n_bins, n_frames in shapes:
                try:
                    check_forward(arch, params, n_bins, n_frames)
                except UserError as err:
                    raise UserError(f"{err}{_drawn_values(model, err, keys, combination)}") from err


def _input_shapes(space: Space) -> list[tuple[int, int]]:
    """(bins, frames) of every feature setting at the shortest and longest segment the space can draw."""
    seconds = space.sections["training"].values.get("segment_seconds", _default(TrainingConfig, "segment_seconds"))
    ends, _ = _bounds(seconds)
    shapes = [
        (setting.n_bins, TrainingConfig(segment_seconds=float(end)).segment_frames(setting))
        for setting in space.feature_settings()
        for end in ends
    ]
    return list(dict.fromkeys(shapes))


def _check_combinations(section: SectionSpace) -> None:
    """Build the section's config at every combination of the file's values that bounds what a
    trial can get (`_combinations_to_check`), so a bad value or a bad mix of values (channels x
    growth x depth too wide) fails now, naming its key and the file's values that produced it, not
    in a trial. Values the file leaves out take their defaults, as in a trial. Choice-only sections
    (features) are checked whole instead: every combination is built, as each is a store."""
    if section.rule.choices_only:
        return
    selector = section.rule.selector
    for option in section.options():
        keys = section.keys_of(option)
        for combination in _combinations_to_check({key: value for key, (_, value) in keys.items()}):
            flat = combination if not selector else {**combination, selector: option}
            try:
                _validate(section.name, section.rule, section.shape(flat))
            except UserError as err:
                raise UserError(f"{err}{_drawn_values(section, err, keys, combination)}") from err


def _combinations_to_check(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every corner of the box the values span (each range's ends, each numeric choice's smallest
    and largest option, every other choice's options), then each inner option of a numeric choice
    alone at the first corner. The checks grow with each number (wider, deeper, more pooling), so
    a corner fails when anything inside it does; inner options catch checks that do not grow with
    a value (an even kernel). A section has at most a dozen keys, so at most a few thousand corners."""
    bounds = {key: _bounds(value) for key, value in values.items()}
    corners = [dict(zip(bounds, combo)) for combo in itertools.product(*(ends for ends, _ in bounds.values()))]
    inner = [{**corners[0], key: option} for key, (_, options) in bounds.items() for option in options]
    return corners + inner


def _bounds(value: Any) -> tuple[list[Any], list[Any]]:
    """(the values that bound what `value` can produce, the other values it can produce)."""
    if not isinstance(value, Distribution):
        return [value], []
    if value.kind == "choice":
        if not all(isinstance(arg, (int, float)) and not isinstance(arg, bool) for arg in value.args):
            return list(value.args), []
        ends = _distinct([min(value.args), max(value.args)])
        return ends, [arg for arg in value.args if arg not in ends]
    low, high = value.args[:2]
    if value.kind == "int" and len(value.args) == 3:
        high = low + (high - low) // value.args[2] * value.args[2]  # the largest value the steps reach
    return _distinct([low, high]), []


def _distinct(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _drawn_values(
    section: SectionSpace, err: UserError, keys: dict[str, tuple[str, Any]], combination: dict[str, Any]
) -> str:
    """`, when model.cnn2d.channels is 700 and model.cnn2d.growth is 2.0`: the values drawn from
    the file's distributions that the error mentions, so the user sees which mix of them fails."""
    prefix = f"{section.name}.params" if section.rule.into_params else section.name
    drawn = [
        f"{where} is {combination[key]!r}"
        for key, (where, value) in keys.items()
        if isinstance(value, Distribution) and re.search(rf"\b{re.escape(f'{prefix}.{key}')}\b", str(err))
    ]
    return f", when {' and '.join(drawn)}" if drawn else ""


def _validate(name: str, rule: SectionRule, values: dict[str, Any]) -> None:
    built = from_dict(rule.dataclass_, values, name)
    if rule.into_params:
        parse_params(built.arch, built.params)


def load_space(space: str | Path, plugins_dir: Path | None = None) -> Space:
    path = resolve_space_path(space)
    return parse_space(read_space_file(path), path, plugins_dir)
