"""A space file's values: a fixed value is a plain scalar; a distribution is a one-key mapping,
`{choice: [...]}`, `{uniform: [low, high]}`, `{loguniform: [low, high]}`, `{int: [low, high]}` or
`{int: [low, high, step]}`, drawn through Optuna's trial (define-by-run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.errors import UserError
from common.typed import require

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
