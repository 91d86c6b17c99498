"""The project's one training loop. The Ray Tune trainable calls `fit()` with a callback that
reports and checkpoints; the report calls it with one that logs and, for runs on train+valid, stops
it after the epochs it wants. Both get the same epochs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import models
from common.errors import UserError
from common.typed import require
from features.arrays import STD_FLOOR, FitData
from training.augment import augment_batch
from training.config import TrialConfig
from training.evaluate import ClipEvaluation, evaluate_prepared
from training.fast import keep_freed_memory, training_layout
from training.optim import l1_penalty, make_optimizer, penalised
from training.schedules import Schedule, plateau_update
from training.segments import (
    DeviceSplit,
    batch_frames,
    gather,
    prepare_split,
    prepare_train,
    random_crops,
    to_device,
)
from training.state import EpochMetrics, Progress, TrainingState, check_resumable, cpu_copy, restore, snapshot

# Called after every epoch with its metrics and a checkpoint of the run; returning True stops
# training there (None or False: go on).
EpochCallback = Callable[[EpochMetrics, TrainingState], bool | None]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: the run stops at once instead of training on garbage."""


@dataclass
class FitResult:
    history: list[EpochMetrics]
    best_epoch: int  # best valid_clip_acc, ties broken by lower valid_loss; without validation the last
    best_state: dict[str, torch.Tensor]  # model state_dict at best_epoch, on the CPU
    model: nn.Module  # the final model (not the best one), on the device, in eval mode
    stop_reason: str  # "max_epochs", "min_lr" or "callback"

    @property
    def best(self) -> EpochMetrics:
        return self.history[self.best_epoch - 1]


def fit(
    config: TrialConfig | dict,
    data: FitData,
    on_epoch_end: EpochCallback | None = None,
    *,
    device: torch.device | str | None = None,
    resume: TrainingState | None = None,
    validate: bool = True,
) -> FitResult:
    """Train one model on `data.train`, validating on whole clips of `data.valid` every epoch.

    `on_epoch_end(metrics, state)` runs after every epoch; returning True stops the run there, and
    `state` can be saved and passed back as `resume` to continue the run exactly. With the same
    config and seed on the CPU, the per-epoch metrics are identical run to run (on CUDA, close but
    not bitwise: cuDNN picks algorithms).

    `validate=False` never reads `data.valid` (a run whose validation clips are training data):
    its metrics have no validation numbers, the plateau schedule watches the training loss, the
    only loss such a run has, and the best epoch is the last.
    """
    config = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
    device = choose_device(device)
    check_precision(config.training.precision, device)
    segment_frames = check_inputs(config, data, resume, validate)
    # The run seeds torch's global generator (model init, dropout); forking restores the caller's.
    with torch.random.fork_rng(devices=_cuda_indices(device)):
        torch.manual_seed(config.training.seed)
        run = _prepare_run(config, data, device, segment_frames, validate)
        return _fit(run, on_epoch_end, resume)


def choose_device(device: torch.device | str | None) -> torch.device:
    """The given device, else CUDA when this process sees a GPU (a Ray trial without a GPU sees
    none), else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 on a GPU without bfloat16 units (before Ampere) would run emulated, slower than fp32."""
    if precision == "bf16" and device.type == "cuda":
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
        name = torch.cuda.get_device_name(device)
        require(supported, "training.precision", precision, f"is not supported by this GPU ({name}); use fp32")


def autocast(run: Run) -> torch.autocast:
    """The forward passes' precision: bfloat16 autocast for bf16, a no-op for fp32."""
    enabled = run.config.training.precision == "bf16"
    return torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=enabled)


def _cuda_indices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def check_inputs(config: TrialConfig, data: FitData, resume: TrainingState | None, validate: bool) -> int:
    """Fail before any epoch when config and data cannot go together; returns the segment length."""
    if data.setting != config.features:
        raise UserError(f"features: the data is {data.setting.name} but the config asks for {config.features.name}")
    for name, split in (("train", data.train), ("valid", data.valid))[: 2 if validate else 1]:
        if len(split) == 0:
            raise UserError(f"the {name} split has no clips")
    segment_frames = config.segment_frames
    models.check_input_fits(config.model.arch, config.model.params, data.train.features.shape[1], segment_frames)
    if resume is not None:
        check_resumable(resume, config)
    return segment_frames


@dataclass(frozen=True)
class Run:
    """What stays fixed during a run, to keep the functions' argument lists short."""

    config: TrialConfig
    device: torch.device
    segment_frames: int
    steps_per_epoch: int
    schedule: Schedule
    n_classes: int
    train: DeviceSplit
    valid: DeviceSplit | None  # None: the run does not validate
    gain_per_db: torch.Tensor  # (bins,) normalised units per dB of gain


def _prepare_run(config: TrialConfig, data: FitData, device: torch.device, segment_frames: int, validate: bool) -> Run:
    """Both splits ready for batches: normalised once and kept on a GPU when they fit there, else
    shared as stored and normalised batch by batch (`training.segments.prepare_split`)."""
    training = config.training
    if training.fast_path and device.type == "cpu":
        keep_freed_memory()
    shortest, silence = config.min_frames, data.silence
    train = prepare_train(data.train, data.train_copies, data.mean, data.std, device, shortest, silence)
    valid = prepare_split(data.valid, data.mean, data.std, device, shortest, silence=silence) if validate else None
    # The remainder of the shuffled crops (< one batch) is left out, a different one each epoch:
    # a last batch of one would break batch normalisation.
    steps_per_epoch = max(1, len(train) * training.segments_per_clip // training.batch_size)
    std = torch.as_tensor(data.std, dtype=torch.float32, device=device).clamp_min(STD_FLOOR)
    gain_per_db = config.gain_units_per_db / std
    schedule = Schedule.of(config, steps_per_epoch)
    return Run(config, device, segment_frames, steps_per_epoch, schedule, len(data.classes), train, valid, gain_per_db)


def _fit(run: Run, on_epoch_end: EpochCallback | None, resume: TrainingState | None) -> FitResult:
    config = run.config
    model = models.build_model(config.model.arch, config.model.params, run.train.n_bins, run.n_classes)
    model = training_layout(model.to(run.device), config.training.fast_path)
    optimizer = make_optimizer(model, config.optimizer)
    progress = Progress.start(config.training.seed) if resume is None else restore(resume, model, optimizer, run.device)

    stop_reason = _stop_reason(run, progress)
    while stop_reason is None:
        metrics = _run_epoch(run, model, optimizer, progress)
        _record(run, progress, metrics, model)
        stop = False
        if on_epoch_end is not None:
            stop = on_epoch_end(metrics, snapshot(config, progress, model, optimizer, run.device))
        stop_reason = "callback" if stop else _stop_reason(run, progress)

    model.eval()
    if progress.best_model is None:  # no epoch was validated: the last one is kept
        progress.best_epoch, progress.best_model = progress.epoch, cpu_copy(model.state_dict())
    return FitResult(progress.history, progress.best_epoch, progress.best_model, model, stop_reason)


def _stop_reason(run: Run, progress: Progress) -> str | None:
    """Checked before each epoch, so a run resumed after its last epoch stops at once."""
    if progress.epoch >= run.config.training.max_epochs:
        return "max_epochs"
    if run.schedule.ends_training(progress.epoch * run.steps_per_epoch, progress.plateau.scale):
        return "min_lr"
    return None


def _record(run: Run, progress: Progress, metrics: EpochMetrics, model: nn.Module) -> None:
    progress.history.append(metrics)
    progress.epoch = metrics.epoch
    watched = metrics.train_loss if metrics.valid_loss is None else metrics.valid_loss
    schedule = run.config.schedule
    progress.plateau = plateau_update(progress.plateau, watched, schedule.factor, schedule.patience)
    if metrics.valid_clip_acc is None:
        return
    if progress.best_epoch == 0 or _better(metrics, progress.history[progress.best_epoch - 1]):
        progress.best_epoch = metrics.epoch
        progress.best_model = cpu_copy(model.state_dict())


def _better(new: EpochMetrics, old: EpochMetrics) -> bool:
    if new.valid_clip_acc != old.valid_clip_acc:
        return new.valid_clip_acc > old.valid_clip_acc
    return new.valid_loss < old.valid_loss


def _run_epoch(run: Run, model: nn.Module, optimizer: torch.optim.Optimizer, progress: Progress) -> EpochMetrics:
    started = time.perf_counter()
    train_loss, train_acc, lr = _train_epoch(run, model, optimizer, progress)
    valid: ClipEvaluation | None = None
    if run.valid is not None:
        training = run.config.training
        batch_size = 2 * training.batch_size  # no gradients kept: twice the batch fits
        with autocast(run):
            valid = evaluate_prepared(
                model, run.valid, run.segment_frames, training.eval_overlap, batch_size, training.fast_path
            )
    metrics = EpochMetrics(
        epoch=progress.epoch + 1,
        train_loss=train_loss,
        train_acc=train_acc,
        valid_loss=None if valid is None else valid.loss,
        valid_clip_acc=None if valid is None else valid.clip_acc,
        valid_segment_acc=None if valid is None else valid.segment_acc,
        lr=lr,
        epoch_seconds=time.perf_counter() - started,
    )
    _check_finite(metrics)
    return metrics


def _check_finite(metrics: EpochMetrics) -> None:
    for name, value in (("training loss", metrics.train_loss), ("validation loss", metrics.valid_loss)):
        if value is not None and not np.isfinite(value):
            raise TrainingDiverged(
                f"training diverged at epoch {metrics.epoch}: {name} is {value} (lower optimizer.lr?)"
            )


def _train_epoch(
    run: Run, model: nn.Module, optimizer: torch.optim.Optimizer, progress: Progress
) -> tuple[float, float, float]:
    """One pass over fresh random crops; returns mean loss, accuracy and the last step's rate.

    Sums stay on the device until the end of the epoch: reading them every batch would make the
    CPU wait for the GPU at each step.
    """
    model.train()
    clips, starts, frames = epoch_crops(run, progress)
    loss_sum = torch.zeros((), device=run.device)
    correct = torch.zeros((), dtype=torch.int64, device=run.device)
    weights, seen, lr = penalised(model), 0, 0.0
    for batch in range(run.steps_per_epoch):
        x, targets = training_batch(run, progress, clips, starts, frames, batch)
        lr = run.schedule.lr(progress.epoch * run.steps_per_epoch + batch, progress.plateau.scale)
        loss, logits = _step(run, model, optimizer, x, targets, lr, weights)
        loss_sum += loss * len(x)
        correct += (logits.argmax(dim=1) == targets.argmax(dim=1)).sum()
        seen += len(x)
    return loss_sum.item() / seen, correct.item() / seen, lr


def epoch_crops(run: Run, progress: Progress) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The epoch's shuffled random crops of the training clips, (row, start frame) beside them, and
    each batch's segment frames, worked out here on the CPU: not once per batch from its rows,
    which on a GPU would wait for the device every step."""
    training = run.config.training
    train = run.train
    clips, starts = random_crops(
        train.lengths,
        run.segment_frames,
        training.segments_per_clip,
        progress.generator,
        train.variants,
        training.batch_size,
        train.min_frames,
    )
    size, home = training.batch_size, run.train.frames.device
    frames = [
        batch_frames(train.lengths, clips[batch * size : (batch + 1) * size], run.segment_frames, train.min_frames)
        for batch in range(run.steps_per_epoch)
    ]
    return to_device(clips, home), to_device(starts, home), frames


def training_batch(
    run: Run, progress: Progress, clips: torch.Tensor, starts: torch.Tensor, frames: list[int], batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch `batch` of the epoch's shuffled crops (`epoch_crops`), augmented, with one-hot (soft)
    targets."""
    size = run.config.training.batch_size
    chosen = slice(batch * size, (batch + 1) * size)
    x = gather(run.train, clips[chosen], starts[chosen], frames[batch])
    labels = to_device(run.train.labels[clips[chosen]], run.device)
    targets = F.one_hot(labels, num_classes=run.n_classes).float()
    return augment_batch(x, targets, run.config.augment, run.gain_per_db, progress.generator, progress.rng)


def _step(
    run: Run,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    targets: torch.Tensor,
    lr: float,
    weights: list[nn.Parameter],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step at rate `lr`; returns the data loss and the logits, detached."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(run):  # the forward pass only: backward follows the forward's precisions by itself
        logits = model(x)
    loss = F.cross_entropy(logits.float(), targets)  # soft targets: mixup needs them
    l1 = run.config.optimizer.l1
    total = loss + l1 * l1_penalty(weights) if l1 > 0 else loss
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return loss.detach(), logits.detach()
