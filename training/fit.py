"""The project's one training loop. The Ray Tune trainable calls `fit()` with a callback that
reports and checkpoints; the report calls it with one that logs. Both get the same epochs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import models
from common.errors import UserError
from features.settings import FeatureSetting
from features.store import STD_FLOOR, FitData
from training.augment import augment_batch
from training.config import TrialConfig
from training.evaluate import evaluate_prepared
from training.optim import l1_penalty, make_optimizer, penalised
from training.schedules import Plateau, below_floor, decayed_lr, learning_rate, plateau_update
from training.segments import DeviceSplit, gather, prepare_split, prepare_train, random_crops
from training.state import TrainingState


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: the run stops at once instead of training on garbage."""


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based: epochs completed, as Ray Tune's training_iteration
    train_loss: float  # mean cross-entropy of the training crops (soft targets with mixup, no L1 term)
    train_acc: float  # crops whose top class is their (dominant, with mixup) target
    valid_loss: float  # see ClipEvaluation.loss; the plateau schedule watches it
    valid_clip_acc: float  # the number the search optimises
    valid_segment_acc: float
    lr: float  # rate of the epoch's last step
    epoch_seconds: float  # training and validation, wall clock
    prep_seconds: float  # cropping and augmenting batches (GPU time on CUDA, wall clock on CPU)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class FitResult:
    history: list[EpochMetrics]
    best_epoch: int  # best valid_clip_acc, ties broken by lower valid_loss
    best_state: dict[str, torch.Tensor]  # model state_dict at best_epoch, on the CPU
    model: nn.Module  # the final model (not the best one), on the device, in eval mode
    stop_reason: str  # "max_epochs" or "min_lr"

    @property
    def best(self) -> EpochMetrics:
        return self.history[self.best_epoch - 1]


EpochCallback = Callable[[EpochMetrics, TrainingState], None]


def fit(
    config: TrialConfig | dict,
    data: FitData,
    on_epoch_end: EpochCallback | None = None,
    *,
    device: torch.device | str | None = None,
    resume: TrainingState | None = None,
) -> FitResult:
    """Train one model on `data.train`, validating on whole clips of `data.valid` every epoch.

    `on_epoch_end(metrics, state)` runs after every epoch; `state` can be saved and passed back as
    `resume` to continue the run exactly. With the same config and seed on the CPU, the per-epoch
    metrics are identical run to run (on CUDA, close but not bitwise: cuDNN picks algorithms).
    """
    config = config if isinstance(config, TrialConfig) else TrialConfig.from_dict(config)
    device = choose_device(device)
    segment_frames = check_inputs(config, data, resume)
    # The run seeds torch's global generator (model init, dropout); forking restores the caller's.
    with torch.random.fork_rng(devices=_cuda_indices(device)):
        torch.manual_seed(config.training.seed)
        return _fit(config, data, on_epoch_end, device, resume, segment_frames)


def choose_device(device: torch.device | str | None) -> torch.device:
    """The given device, else CUDA when this process sees a GPU (a Ray trial without a GPU sees
    none), else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _cuda_indices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def check_inputs(config: TrialConfig, data: FitData, resume: TrainingState | None) -> int:
    """Fail before any epoch when config and data cannot go together; returns the segment length."""
    if data.setting != config.features:
        raise UserError(f"features: the data is {data.setting.name} but the config asks for {config.features.name}")
    for name, split in (("train", data.train), ("valid", data.valid)):
        if len(split) == 0:
            raise UserError(f"the {name} split has no clips")
    segment_frames = config.segment_frames
    models.check_input_fits(config.model.arch, config.model.params, data.train.features.shape[1], segment_frames)
    if resume is not None:
        check_resumable(resume, config)
    return segment_frames


def check_resumable(state: TrainingState, config: TrialConfig) -> None:
    """A checkpoint continues only with the same features, model and optimizer. Other values may
    differ (population-based training changes them); the run is exact only with an equal config."""
    new = config.to_dict()
    if FeatureSetting.from_dict(state.config["features"]) != config.features:  # lists and tuples compare equal here
        raise UserError(f"resume: the checkpoint's features differ from the config's ({config.features.name})")
    for section, key in (("model", None), ("optimizer", "name")):
        old_value = state.config[section] if key is None else state.config[section][key]
        new_value = new[section] if key is None else new[section][key]
        if old_value != new_value:
            name = section if key is None else f"{section}.{key}"
            raise UserError(
                f"resume: the checkpoint's {name} ({old_value!r}) differs from the config's ({new_value!r})"
            )


@dataclass
class Progress:
    """The mutable part of a run: what a checkpoint saves besides model and optimizer."""

    generator: torch.Generator  # crops, shuffling, masks, gain
    rng: np.random.Generator  # mixup weights
    epoch: int = 0
    plateau: Plateau = field(default_factory=Plateau)
    history: list[EpochMetrics] = field(default_factory=list)
    best_epoch: int = 0
    best_model: dict[str, torch.Tensor] | None = None

    def record(self, metrics: EpochMetrics, model: nn.Module, config: TrialConfig) -> None:
        self.history.append(metrics)
        self.epoch = metrics.epoch
        self.plateau = plateau_update(
            self.plateau, metrics.valid_loss, config.schedule.factor, config.schedule.patience
        )
        if self.best_epoch == 0 or _better(metrics, self.history[self.best_epoch - 1]):
            self.best_epoch = metrics.epoch
            self.best_model = cpu_copy(model.state_dict())


def _better(new: EpochMetrics, old: EpochMetrics) -> bool:
    if new.valid_clip_acc != old.valid_clip_acc:
        return new.valid_clip_acc > old.valid_clip_acc
    return new.valid_loss < old.valid_loss


def cpu_copy(state: dict) -> dict:
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


@dataclass(frozen=True)
class Run:
    """What stays fixed during a run, to keep the functions' argument lists short."""

    config: TrialConfig
    device: torch.device
    segment_frames: int
    steps_per_epoch: int
    n_classes: int
    train: DeviceSplit
    valid: DeviceSplit
    gain_per_db: torch.Tensor  # (bins,) normalised units per dB of gain

    def lr_at(self, step: int, plateau: Plateau) -> float:
        return learning_rate(
            self.config.schedule,
            self.config.optimizer.lr,
            self.config.training.min_lr,
            step,
            self.steps_per_epoch,
            self.config.training.max_epochs,
            plateau.scale,
        )


def _fit(
    config: TrialConfig,
    data: FitData,
    on_epoch_end: EpochCallback | None,
    device: torch.device,
    resume: TrainingState | None,
    segment_frames: int,
) -> FitResult:
    run = _prepare_run(config, data, device, segment_frames)
    model = models.build_model(config.model.arch, config.model.params, run.train.n_bins, run.n_classes)
    model.to(device)
    optimizer = make_optimizer(model, config.optimizer)
    if resume is None:
        seed = config.training.seed
        progress = Progress(torch.Generator().manual_seed(seed), np.random.default_rng(seed))
    else:
        progress = restore(resume, model, optimizer, device)

    while (stop_reason := _stop_reason(run, progress)) is None:
        metrics = _run_epoch(run, model, optimizer, progress)
        progress.record(metrics, model, config)
        if on_epoch_end is not None:
            on_epoch_end(metrics, snapshot(run, progress, model, optimizer))

    model.eval()
    best_model = progress.best_model if progress.best_model is not None else cpu_copy(model.state_dict())
    return FitResult(progress.history, progress.best_epoch, best_model, model, stop_reason)


def _prepare_run(config: TrialConfig, data: FitData, device: torch.device, segment_frames: int) -> Run:
    """Both splits normalised once and kept on the device for the whole run."""
    training = config.training
    train = prepare_train(data.train, data.train_copies, data.mean, data.std, device, segment_frames)
    valid = prepare_split(data.valid, data.mean, data.std, device, segment_frames)
    # The remainder of the shuffled crops (< one batch) is left out, a different one each epoch:
    # a last batch of one would break batch normalisation.
    steps_per_epoch = max(1, len(train) * training.segments_per_clip // training.batch_size)
    std = torch.as_tensor(data.std, dtype=torch.float32, device=device).clamp_min(STD_FLOOR)
    gain_per_db = config.gain_units_per_db / std
    return Run(config, device, segment_frames, steps_per_epoch, len(data.classes), train, valid, gain_per_db)


def _stop_reason(run: Run, progress: Progress) -> str | None:
    """Checked before each epoch, so a run resumed after its last epoch stops at once."""
    training = run.config.training
    if progress.epoch >= training.max_epochs:
        return "max_epochs"
    step = progress.epoch * run.steps_per_epoch
    lr = decayed_lr(
        run.config.schedule,
        run.config.optimizer.lr,
        training.min_lr,
        step,
        run.steps_per_epoch,
        training.max_epochs,
        progress.plateau.scale,
    )
    return "min_lr" if below_floor(run.config.schedule, lr, training.min_lr) else None


def _run_epoch(run: Run, model: nn.Module, optimizer: torch.optim.Optimizer, progress: Progress) -> EpochMetrics:
    started = time.perf_counter()
    train_loss, train_acc, lr, prep_seconds = _train_epoch(run, model, optimizer, progress)
    batch_size = 2 * run.config.training.batch_size  # no gradients kept: twice the batch fits
    valid = evaluate_prepared(model, run.valid, run.segment_frames, run.config.training.eval_overlap, batch_size)
    metrics = EpochMetrics(
        epoch=progress.epoch + 1,
        train_loss=train_loss,
        train_acc=train_acc,
        valid_loss=valid.loss,
        valid_clip_acc=valid.clip_acc,
        valid_segment_acc=valid.segment_acc,
        lr=lr,
        epoch_seconds=time.perf_counter() - started,
        prep_seconds=prep_seconds,
    )
    _check_finite(metrics)
    return metrics


def _check_finite(metrics: EpochMetrics) -> None:
    for name, value in (("training loss", metrics.train_loss), ("validation loss", metrics.valid_loss)):
        if not np.isfinite(value):
            raise TrainingDiverged(
                f"training diverged at epoch {metrics.epoch}: {name} is {value} (lower optimizer.lr?)"
            )


def _train_epoch(
    run: Run, model: nn.Module, optimizer: torch.optim.Optimizer, progress: Progress
) -> tuple[float, float, float, float]:
    """One pass over fresh random crops; returns mean loss, accuracy, last rate, prep seconds.

    Sums stay on the device until the end of the epoch: reading them every batch would make the
    CPU wait for the GPU at each step.
    """
    model.train()
    timer = PrepTimer(run.device)
    with timer.measure():
        clips, starts = random_crops(
            run.train.lengths,
            run.segment_frames,
            run.config.training.segments_per_clip,
            progress.generator,
            run.train.variants,
        )
        clips, starts = clips.to(run.device), starts.to(run.device)
    loss_sum = torch.zeros((), device=run.device)
    correct = torch.zeros((), dtype=torch.int64, device=run.device)
    weights, seen, lr = penalised(model), 0, 0.0
    for batch in range(run.steps_per_epoch):
        with timer.measure():
            x, targets = _training_batch(run, progress, clips, starts, batch)
        lr = run.lr_at(progress.epoch * run.steps_per_epoch + batch, progress.plateau)
        loss, logits = _step(model, optimizer, x, targets, lr, run.config.optimizer.l1, weights)
        loss_sum += loss * len(x)
        correct += (logits.argmax(dim=1) == targets.argmax(dim=1)).sum()
        seen += len(x)
    return loss_sum.item() / seen, correct.item() / seen, lr, timer.seconds()


def _training_batch(
    run: Run, progress: Progress, clips: torch.Tensor, starts: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch `batch` of the epoch's shuffled crops, augmented, with one-hot (soft) targets."""
    size = run.config.training.batch_size
    chosen = slice(batch * size, (batch + 1) * size)
    x = gather(run.train, clips[chosen], starts[chosen], run.segment_frames)
    labels = run.train.labels[clips[chosen]]
    targets = F.one_hot(labels, num_classes=run.n_classes).float()
    return augment_batch(x, targets, run.config.augment, run.gain_per_db, progress.generator, progress.rng)


def _step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    targets: torch.Tensor,
    lr: float,
    l1: float,
    weights: list[nn.Parameter],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step at rate `lr`; returns the data loss and the logits, detached."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    logits = model(x)
    loss = F.cross_entropy(logits.float(), targets)  # soft targets: mixup needs them
    total = loss + l1 * l1_penalty(weights) if l1 > 0 else loss
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


class PrepTimer:
    """Time spent preparing batches. On CUDA the work is asynchronous, so CPU clocks would measure
    kernel launches; CUDA events measure the GPU's own time instead, read once per epoch."""

    def __init__(self, device: torch.device):
        self.device = device
        self.events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.cpu_seconds = 0.0

    @contextmanager
    def measure(self) -> Iterator[None]:
        if self.device.type != "cuda":
            started = time.perf_counter()
            yield
            self.cpu_seconds += time.perf_counter() - started
            return
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(torch.cuda.current_stream(self.device))
        yield
        end.record(torch.cuda.current_stream(self.device))
        self.events.append((start, end))

    def seconds(self) -> float:
        if self.events:
            self.events[-1][1].synchronize()
        return self.cpu_seconds + sum(start.elapsed_time(end) for start, end in self.events) / 1000.0


def snapshot(run: Run, progress: Progress, model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainingState:
    """A CPU copy of everything needed to continue after the current epoch."""
    cuda_rng = torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None
    return TrainingState(
        config=run.config.to_dict(),
        epoch=progress.epoch,
        model=cpu_copy(model.state_dict()),
        optimizer=_cpu_tree(optimizer.state_dict()),
        plateau=progress.plateau.to_dict(),
        rng={
            "torch": torch.get_rng_state(),
            "cuda": cuda_rng,
            "crops": progress.generator.get_state(),
            "numpy": progress.rng.bit_generator.state,
        },
        history=[metrics.to_dict() for metrics in progress.history],
        best_epoch=progress.best_epoch,
        best_model=progress.best_model,
    )


def _cpu_tree(value):
    """A deep copy of a nested state dict with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _cpu_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_tree(item) for item in value)
    return value


def restore(state: TrainingState, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> Progress:
    """Load `state` into a freshly built model and optimizer; returns the run's progress."""
    model.load_state_dict(state.model)
    # The config's hyperparameters win over the checkpoint's (they may differ under PBT).
    configured = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state.optimizer)
    for group, values in zip(optimizer.param_groups, configured):
        group.update(values)
    torch.set_rng_state(state.rng["torch"])
    if device.type == "cuda" and state.rng.get("cuda") is not None:
        torch.cuda.set_rng_state(state.rng["cuda"], device)
    generator = torch.Generator()
    generator.set_state(state.rng["crops"])
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng["numpy"]
    return Progress(
        generator=generator,
        rng=rng,
        epoch=state.epoch,
        plateau=Plateau.from_dict(state.plateau),
        history=[EpochMetrics(**metrics) for metrics in state.history],
        best_epoch=state.best_epoch,
        best_model=state.best_model,
    )
