"""Reading files that others may have written (space files, manifests, experiment records) within
limits: size, YAML aliases and nesting; a YAML key given twice is refused. Past any, one line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from common.errors import UserError

MAX_YAML_BYTES = 1_000_000  # a space file is a few KB
MAX_YAML_VALUES = 100_000  # scalars, lists and mappings, once every alias is expanded
MAX_YAML_DEPTH = 50  # lists and mappings inside each other, aliases expanded
MAX_JSON_BYTES = 64 * 2**20  # experiment.json is a few KB
MAX_MANIFEST_BYTES = 256 * 2**20  # UrbanSound8K's manifest is 0.5 MB
MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.1 reads `1e-3` (no dot) as text; YAML 1.2 and every other reader take it as a number.
EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")


def read_bounded(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of `path`, refused in one line when there are more than `max_bytes`."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)  # not stat(): a pipe or a growing file has no size
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror or err})") from err
    if len(data) > max_bytes:
        raise UserError(f"{path}: refused: larger than {max_bytes:,} bytes, the limit for {what}")
    return data


def load_yaml(path: Path, what: str = "a space file", max_bytes: int | None = None) -> Any:
    """The YAML document in `path` (safe types only; `1e-3` is a number); bad YAML, a duplicate key,
    too many values once aliases are expanded, or too deep a nesting is one line naming the file."""
    path = Path(path)
    try:
        text = read_bounded(path, max_bytes or MAX_YAML_BYTES, what).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    loader = _LimitedLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or err
        raise UserError(
            f"{where}: {problem}" if isinstance(err, _Refused) else f"{where}: not valid YAML ({problem})"
        ) from err
    finally:
        loader.dispose()


def load_json(path: Path, what: str, max_bytes: int | None = None) -> Any:
    """The JSON document in `path`; too large, too deeply nested or unreadable is one line."""
    data = read_bounded(Path(path), max_bytes or MAX_JSON_BYTES, what)
    try:
        return json.loads(data)
    except RecursionError as err:
        raise UserError(f"{path}: refused: nested too deeply for {what}") from err
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an int of too many digits
        raise UserError(f"{path}: not readable JSON ({err})") from err


class _Refused(yaml.YAMLError):
    """A limit or a duplicate key, as a YAML error with the line it concerns."""

    def __init__(self, problem: str, mark: yaml.Mark | None):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with the module's limits and duplicate keys refused while composing."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.depth >= MAX_YAML_DEPTH:
            raise _Refused(f"refused: nested more than {MAX_YAML_DEPTH} deep", self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first_line: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == MERGE_TAG:
                continue
            line = key.start_mark.line + 1
            if (key.tag, key.value) in first_line:
                earlier = first_line[(key.tag, key.value)]
                problem = f"key {key.value!r} appears twice (lines {earlier} and {line}): keep one"
                raise _Refused(problem, key.start_mark)
            first_line[(key.tag, key.value)] = line
        return node

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded(node, {}, set(), 1)
        return node


_LimitedLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+0123456789."))


def _expanded(node: yaml.Node, seen: dict[int, tuple[int, int]], open_: set[int], depth: int) -> tuple[int, int]:
    """(values, depth) below `node` once every alias is expanded, refused past the limits: a few
    hundred bytes of nested aliases ("billion laughs") would otherwise expand to billions of values."""
    if depth > MAX_YAML_DEPTH:
        raise _Refused(
            f"refused: nested more than {MAX_YAML_DEPTH} deep once its aliases are expanded", node.start_mark
        )
    if id(node) in seen:
        size, height = seen[id(node)]
    elif id(node) in open_:
        raise _Refused("refused: an alias refers to a value that contains it", node.start_mark)
    else:
        open_.add(id(node))
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        size, height = 1, 1
        for child in children:
            child_size, child_height = _expanded(child, seen, open_, depth + 1)
            size, height = size + child_size, max(height, child_height + 1)
            if size > MAX_YAML_VALUES:
                raise _Refused(f"refused: more than {MAX_YAML_VALUES:,} values once its aliases are expanded", None)
        open_.discard(id(node))
        seen[id(node)] = size, height
    if depth + height - 1 > MAX_YAML_DEPTH:
        raise _Refused(
            f"refused: nested more than {MAX_YAML_DEPTH} deep once its aliases are expanded", node.start_mark
        )
    return size, height
