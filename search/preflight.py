"""Checks before any trial runs: each section's config is built at every combination of the space
file's values that bounds what a trial can get, and each architecture the space can choose is
checked against every input it can get there, so that a bad value or a bad mix of values fails
now, naming its key and the values that produced it, not in a trial."""

from __future__ import annotations

import itertools
import re
from typing import Any

from common.errors import UserError
from common.typed import from_dict
from features.settings import FeatureSetting
from models.plugins import plugin_of
from models.registry import check_forward, check_input_fits, parse_params
from search.distributions import Distribution
from search.sections import SectionRule, SectionSpace, field_default
from training.config import TrainingConfig


def check_combinations(section: SectionSpace) -> None:
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


def check_models(sections: dict[str, SectionSpace], settings: list[FeatureSetting]) -> None:
    """Check every architecture the space can choose at every combination of its bounding values
    (`_combinations_to_check`) on every input shape the space gives (its feature `settings` at the
    shortest and longest segment), so that no trial draws a network its input cannot feed: a
    shipped one by its layer arithmetic (`check_input_fits`: depth 4 with pool 4 on 129 frames
    fails now, naming the knobs), a plugin one by running a batch of zeros (naming its file)."""
    model = sections["model"]
    shapes = _input_shapes(sections["training"], settings)
    for arch in model.options():
        check = check_forward if plugin_of(arch) is not None else check_input_fits
        keys = model.keys_of(arch)
        for combination in _combinations_to_check({key: value for key, (_, value) in keys.items()}):
            params = model.shape({**combination, "arch": arch})["params"]
            for n_bins, n_frames in shapes:
                try:
                    check(arch, params, n_bins, n_frames)
                except UserError as err:
                    raise UserError(f"{err}{_drawn_values(model, err, keys, combination)}") from err


def _input_shapes(training: SectionSpace, settings: list[FeatureSetting]) -> list[tuple[int, int]]:
    """(bins, frames) of every feature setting at the shortest and longest segment the space can draw."""
    seconds = training.values.get("segment_seconds", field_default(TrainingConfig, "segment_seconds"))
    ends, _ = _bounds(seconds)
    shapes = [
        (setting.n_bins, TrainingConfig(segment_seconds=float(end)).segment_frames(setting))
        for setting in settings
        for end in ends
    ]
    return list(dict.fromkeys(shapes))


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
