"""One trial's configuration, typed: built from the plain nested dict Ray Tune hands a trial (or a
YAML file holds) and turned back into one. Every value is checked here, so a bad trial fails with
one line naming its key before any data is read."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import models
from common.typed import from_dict, require, to_dict
from features.settings import FeatureSetting

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop"]
ScheduleName = Literal["plateau", "cosine", "onecycle", "step", "none"]
# fp32: everything in float32. bf16: forward passes under bfloat16 autocast (convolutions and matrix
# products in bfloat16, losses and weights in float32); bfloat16 keeps float32's range, so no loss scaling.
Precision = Literal["fp32", "bf16"]

# Random gain (`augment.gain_db`) in each mel compression's units: 10 dB of power is 10 units of
# `db` features, and about 1 unit of `log10_1p` features (log10(1 + 10 * mel) ~ 1 + log10(mel) for
# bins well above the noise floor; quieter bins move less, so the gain is an approximation there).
GAIN_UNITS_PER_DB = {"db": 1.0, "log10_1p": 0.1}


POSITIVE, NON_NEGATIVE = "must be a positive number", "must be zero or positive"


@dataclass(frozen=True)
class ModelConfig:
    """Which architecture, and its hyperparameters (checked by `models.build_model`)."""

    arch: str = "cnn2d"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(isinstance(self.params, dict), "model.params", self.params, "must be a mapping of hyperparameters")
        object.__setattr__(self, "params", dict(self.params))  # a copy: the config stays frozen


@dataclass(frozen=True)
class OptimizerConfig:
    """`weight_decay` (L2; decoupled for adamw) and `l1` apply to weight matrices and kernels only,
    not to biases or normalisation scales. `momentum` is used by sgd and rmsprop, `nesterov` by sgd;
    a search space may set them for every optimizer, the others ignore them."""

    name: OptimizerName = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    l1: float = 0.0  # coefficient of sum(|w|) added to the training loss
    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        require(math.isfinite(self.lr) and self.lr > 0, "optimizer.lr", self.lr, POSITIVE)
        for key in ("weight_decay", "l1"):
            value = getattr(self, key)
            require(math.isfinite(value) and value >= 0, f"optimizer.{key}", value, NON_NEGATIVE)
        require(0.0 <= self.momentum < 1.0, "optimizer.momentum", self.momentum, "must be in [0, 1)")
        nesterov_ok = not (self.name == "sgd" and self.nesterov and self.momentum == 0)
        require(nesterov_ok, "optimizer.nesterov", self.nesterov, "needs optimizer.momentum > 0")


@dataclass(frozen=True)
class ScheduleConfig:
    """How the learning rate moves (see `training.schedules`).

    plateau: times `factor` after `patience` epochs without a lower validation loss.
    step: times `factor` every `step_size` epochs. cosine / onecycle: over `training.max_epochs`,
    annealing to `training.min_lr`. none: constant. `warmup_epochs` > 0 ramps any of them up
    linearly from zero over that many epochs.
    """

    name: ScheduleName = "plateau"
    factor: float = 0.2
    patience: int = 3
    step_size: int = 10
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        why_factor = "must be in (0, 1): it multiplies the learning rate"
        require(0.0 < self.factor < 1.0, "schedule.factor", self.factor, why_factor)
        require(self.patience >= 0, "schedule.patience", self.patience, NON_NEGATIVE)
        require(self.step_size >= 1, "schedule.step_size", self.step_size, "must be at least 1 epoch")
        require(self.warmup_epochs >= 0, "schedule.warmup_epochs", self.warmup_epochs, "must be zero (off) or positive")


@dataclass(frozen=True)
class TrainingConfig:
    segment_seconds: float = 3.0  # length of one training / evaluation segment
    segments_per_clip: int = 8  # random crops of each training clip per epoch
    batch_size: int = 32
    max_epochs: int = 100
    min_lr: float = 1e-5  # plateau and step schedules: stop once the learning rate falls below
    eval_overlap: float = 0.5  # fraction shared by consecutive validation segments of a clip
    seed: int = 0
    precision: Precision = "fp32"  # bf16: mixed precision, for GPUs with bfloat16 units (and CPUs)
    # True: 2D kernels in channels_last and conv blocks pooling before their ReLU; validation by a
    # copy with batch norms folded into the convolutions, under inference mode; on the CPU the
    # process keeps the memory it frees (training.fast). The same numbers within float rounding,
    # faster (tests/bench/bench_speed.py). False: the plain path, kept to measure against.
    fast_path: bool = True

    def __post_init__(self) -> None:
        seconds = self.segment_seconds
        require(math.isfinite(seconds) and seconds > 0, "training.segment_seconds", seconds, POSITIVE)
        for key in ("segments_per_clip", "batch_size", "max_epochs"):
            require(getattr(self, key) >= 1, f"training.{key}", getattr(self, key), "must be at least 1")
        require(math.isfinite(self.min_lr) and self.min_lr >= 0, "training.min_lr", self.min_lr, NON_NEGATIVE)
        require(0.0 <= self.eval_overlap < 1.0, "training.eval_overlap", self.eval_overlap, "must be in [0, 1)")

    def segment_frames(self, setting: FeatureSetting) -> int:
        """Frames in one segment of `setting`'s features (at least 1)."""
        return max(1, round(self.segment_seconds * setting.frames_per_second))


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of training batches, on normalised features; everything off by default.

    SpecAugment: `time_masks` masks of 0..`time_mask_frames` frames and `freq_masks` masks of
    0..`freq_mask_bins` bins per example, set to 0 (the training mean after normalisation).
    mixup: with `mixup_alpha` > 0 each example is blended with another of the batch, weight
    ~ Beta(alpha, alpha), targets blended alike. gain: with `gain_db` > 0 each example is shifted
    by a uniform random gain in [-gain_db, +gain_db] dB, i.e. every bin b of the normalised features
    gets ``gain * units_per_db / std[b]`` added (mel features only; see GAIN_UNITS_PER_DB).
    """

    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0
    mixup_alpha: float = 0.0
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        for key in ("time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins"):
            require(getattr(self, key) >= 0, f"augment.{key}", getattr(self, key), "must be zero (off) or positive")
        for key in ("mixup_alpha", "gain_db"):
            value = getattr(self, key)
            require(math.isfinite(value) and value >= 0, f"augment.{key}", value, NON_NEGATIVE)


@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run depends on, besides the data."""

    features: FeatureSetting = field(default_factory=FeatureSetting)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        lr, min_lr = self.optimizer.lr, self.training.min_lr
        why_lr = f"must be above training.min_lr ({min_lr!r}), or training would stop before it starts"
        require(lr > min_lr, "optimizer.lr", lr, why_lr)
        gain = self.augment.gain_db
        kind = self.features.kind
        why_gain = f"needs mel features (a gain in dB has no simple effect on {kind} features); set it to 0"
        require(gain == 0 or self.features.compression in GAIN_UNITS_PER_DB, "augment.gain_db", gain, why_gain)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrialConfig:
        """From a plain nested dict; missing keys take the defaults, unknown keys are errors."""
        return from_dict(cls, values)

    def to_dict(self) -> dict[str, Any]:
        """The plain nested dict that `from_dict` turns back into an equal config."""
        return to_dict(self)

    @property
    def segment_frames(self) -> int:
        return self.training.segment_frames(self.features)

    @property
    def min_frames(self) -> int:
        """The shortest segment: the network's smallest input (a shorter clip is padded with
        silence up to it), at most a segment. Its architecture must be registered."""
        return min(self.segment_frames, models.min_frames(self.model.arch, self.model.params))

    @property
    def gain_units_per_db(self) -> float:
        """Feature units per dB of gain for this config's features (0 when gain is undefined)."""
        return GAIN_UNITS_PER_DB.get(self.features.compression, 0.0)


# The sections of a trial config, in order: the one list (space files, Ray configs, reports use it).
CONFIG_SECTIONS = tuple(f.name for f in dataclasses.fields(TrialConfig))


def trial_config(config: dict[str, Any]) -> dict[str, Any]:
    """The nested trial config inside a Ray config, which also holds Optuna's flat `section.key` values."""
    return {section: config[section] for section in CONFIG_SECTIONS if section in config}
