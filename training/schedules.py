"""Learning-rate schedules as pure functions of the optimizer step (nanoGPT's `get_lr` style): the
loop sets the rate itself before every step, so a checkpoint needs only the step count and the
plateau state below, and every schedule can be tested by evaluating a function."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from training.config import ScheduleConfig

# As torch's ReduceLROnPlateau (mode "min", threshold_mode "rel"): a validation loss counts as
# better only when it is below best * (1 - PLATEAU_THRESHOLD), so noise-level gains do not reset it.
PLATEAU_THRESHOLD = 1e-4
# One-cycle, as torch's OneCycleLR defaults: start at lr / 25, peak at lr after 30 % of the run.
ONECYCLE_DIV = 25.0
ONECYCLE_PEAK_AT = 0.3
# The schedules that lower the rate without a planned end: training stops once they fall below
# training.min_lr. Cosine and one-cycle anneal to min_lr at max_epochs instead.
STOPS_AT_FLOOR = ("plateau", "step")


@dataclass(frozen=True)
class Plateau:
    """Reduce-on-plateau bookkeeping: best validation loss, epochs since it, the rate multiplier."""

    best: float = math.inf
    bad_epochs: int = 0
    scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Plateau:
        return cls(**values)


def plateau_update(state: Plateau, valid_loss: float, factor: float, patience: int) -> Plateau:
    """The state after one more epoch: the multiplier drops by `factor` once the loss has failed to
    improve for more than `patience` epochs in a row, and the count starts again."""
    if valid_loss < state.best * (1.0 - PLATEAU_THRESHOLD):
        return Plateau(best=valid_loss, bad_epochs=0, scale=state.scale)
    if state.bad_epochs + 1 > patience:
        return Plateau(best=state.best, bad_epochs=0, scale=state.scale * factor)
    return Plateau(best=state.best, bad_epochs=state.bad_epochs + 1, scale=state.scale)


def learning_rate(
    schedule: ScheduleConfig,
    base_lr: float,
    min_lr: float,
    step: int,
    steps_per_epoch: int,
    max_epochs: int,
    plateau_scale: float = 1.0,
) -> float:
    """The rate for optimizer step `step` (0-based, counted over the whole run)."""
    decayed = decayed_lr(schedule, base_lr, min_lr, step, steps_per_epoch, max_epochs, plateau_scale)
    return decayed * warmup_factor(step, schedule.warmup_epochs * steps_per_epoch)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear ramp (step + 1) / warmup_steps, then 1; the first step is not wasted at rate 0."""
    return 1.0 if step >= warmup_steps else (step + 1) / warmup_steps


def decayed_lr(
    schedule: ScheduleConfig,
    base_lr: float,
    min_lr: float,
    step: int,
    steps_per_epoch: int,
    max_epochs: int,
    plateau_scale: float = 1.0,
) -> float:
    """The schedule's rate before warm-up."""
    epoch = step // steps_per_epoch
    progress = min(1.0, step / (max_epochs * steps_per_epoch))
    if schedule.name == "plateau":
        return base_lr * plateau_scale
    if schedule.name == "step":
        return base_lr * schedule.factor ** (epoch // schedule.step_size)
    if schedule.name == "cosine":
        return cosine(base_lr, min_lr, progress)
    if schedule.name == "onecycle":
        return one_cycle(base_lr, min_lr, progress)
    return base_lr


def cosine(start: float, end: float, progress: float) -> float:
    """Half a cosine from `start` (progress 0) to `end` (progress 1)."""
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def one_cycle(base_lr: float, min_lr: float, progress: float) -> float:
    """Cosine up from base_lr / 25 to base_lr, then cosine down to min_lr."""
    if progress < ONECYCLE_PEAK_AT:
        return cosine(base_lr / ONECYCLE_DIV, base_lr, progress / ONECYCLE_PEAK_AT)
    return cosine(base_lr, min_lr, (progress - ONECYCLE_PEAK_AT) / (1.0 - ONECYCLE_PEAK_AT))


def below_floor(schedule: ScheduleConfig, lr: float, min_lr: float) -> bool:
    """Whether a decayed rate `lr` ends training (only schedules in STOPS_AT_FLOOR do)."""
    return schedule.name in STOPS_AT_FLOOR and lr < min_lr
