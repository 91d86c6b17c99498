"""Learning-rate schedules as pure functions of the optimizer step (nanoGPT's `get_lr(it)` shape):
one `Schedule` is built per run from the config and the steps per epoch, and the loop asks it for
the rate before every step, so a checkpoint needs only the step count and the plateau state below,
and every schedule can be tested by evaluating it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from training.config import ScheduleConfig, TrialConfig

# As torch's ReduceLROnPlateau (mode "min", threshold_mode "rel"): a loss counts as better only
# when it is below best * (1 - PLATEAU_THRESHOLD), so noise-level gains do not reset it.
PLATEAU_THRESHOLD = 1e-4
# One-cycle, as torch's OneCycleLR defaults: start at lr / 25, peak at lr after 30 % of the run.
ONECYCLE_DIV = 25.0
ONECYCLE_PEAK_AT = 0.3
# The schedules that lower the rate without a planned end: training stops once they fall below
# training.min_lr. Cosine and one-cycle anneal to min_lr at max_epochs instead.
STOPS_AT_FLOOR = ("plateau", "step")


@dataclass(frozen=True)
class Plateau:
    """Reduce-on-plateau bookkeeping: best watched loss, epochs since it, the rate multiplier."""

    best: float = math.inf
    bad_epochs: int = 0
    scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Plateau:
        return cls(**values)


def plateau_update(state: Plateau, loss: float, factor: float, patience: int) -> Plateau:
    """The state after one more epoch: the multiplier drops by `factor` once the loss has failed to
    improve for more than `patience` epochs in a row, and the count starts again."""
    if loss < state.best * (1.0 - PLATEAU_THRESHOLD):
        return Plateau(best=loss, bad_epochs=0, scale=state.scale)
    if state.bad_epochs + 1 > patience:
        return Plateau(best=state.best, bad_epochs=0, scale=state.scale * factor)
    return Plateau(best=state.best, bad_epochs=state.bad_epochs + 1, scale=state.scale)


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every optimizer step of one run (steps are 0-based, over the run)."""

    config: ScheduleConfig
    base_lr: float  # optimizer.lr
    min_lr: float  # training.min_lr: where cosine and one-cycle end, where plateau and step stop
    steps_per_epoch: int
    max_epochs: int

    @classmethod
    def of(cls, config: TrialConfig, steps_per_epoch: int) -> Schedule:
        training = config.training
        return cls(config.schedule, config.optimizer.lr, training.min_lr, steps_per_epoch, training.max_epochs)

    def lr(self, step: int, plateau_scale: float = 1.0) -> float:
        """The rate for optimizer step `step`: the decayed rate, ramped up during warm-up."""
        warmup_steps = self.config.warmup_epochs * self.steps_per_epoch
        # Linear ramp (step + 1) / warmup_steps: the first step is not wasted at rate 0.
        warmup = 1.0 if step >= warmup_steps else (step + 1) / warmup_steps
        return self.decayed(step, plateau_scale) * warmup

    def decayed(self, step: int, plateau_scale: float = 1.0) -> float:
        """The schedule's rate before warm-up."""
        name, base = self.config.name, self.base_lr
        progress = min(1.0, step / (self.max_epochs * self.steps_per_epoch))
        if name == "plateau":
            return base * plateau_scale
        if name == "step":
            return base * self.config.factor ** (step // self.steps_per_epoch // self.config.step_size)
        if name == "cosine":
            return cosine(base, self.min_lr, progress)
        if name == "onecycle":
            return one_cycle(base, self.min_lr, progress)
        return base

    def ends_training(self, step: int, plateau_scale: float = 1.0) -> bool:
        """Whether the run stops before `step`: plateau and step schedules fall below min_lr."""
        return self.config.name in STOPS_AT_FLOOR and self.decayed(step, plateau_scale) < self.min_lr


def cosine(start: float, end: float, progress: float) -> float:
    """Half a cosine from `start` (progress 0) to `end` (progress 1)."""
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def one_cycle(base_lr: float, min_lr: float, progress: float) -> float:
    """Cosine up from base_lr / 25 to base_lr, then cosine down to min_lr."""
    if progress < ONECYCLE_PEAK_AT:
        return cosine(base_lr / ONECYCLE_DIV, base_lr, progress / ONECYCLE_PEAK_AT)
    return cosine(base_lr, min_lr, (progress - ONECYCLE_PEAK_AT) / (1.0 - ONECYCLE_PEAK_AT))
