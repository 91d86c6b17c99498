"""Speed benchmark that knows the limit: per model family, FLOPs per epoch, seconds per epoch and
achieved GFLOP/s on the plain path and the fast path (`training.fast_path`), side by side.

    python -m tests.bench.bench_speed [--steps N] [--repeats N] [--threads N] [--family NAME ...]
                                      [--device cpu|cuda] [--bf16] [--in-thread]

Each family runs at the shipped spaces' typical settings on synthetic clips shaped like the default
set (152 training clips, 64 validation clips of 30 s). Each repeat times (on the CPU: the process's
CPU time, which other jobs on a shared machine do not inflate) `--steps` training steps
and `--steps` validation batches through `training.fit`'s own functions, plain and fast one after
the other (interleaved, so a shared machine's load hits both alike; each path in a process of its
own, as the fast path sets the process's memory allocator), and scales them to an epoch by
the epoch's step and batch counts; validation's per-epoch cost of folding the model is included.
FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (training forward + backward,
validation forward). The machine's own rates are measured in the same run: a 1024x1024 float32
matrix product and a 3x3 convolution. On CUDA, `--bf16` adds rows with bfloat16 autocast.
`--in-thread` runs each path's steps in a thread of its own, as Ray Tune runs a trial's function
(glibc's malloc serves such a thread from an arena of its own, which gives memory back sooner).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import models
from features.arrays import FitData, SplitArrays
from features.settings import FeatureSetting
from training import TrialConfig
from training.evaluate import _log_probs
from training.fast import evaluation_model, no_gradients, training_layout
from training.optim import make_optimizer, penalised
from training.segments import eval_segments
from training.state import Progress

loop = importlib.import_module("training.fit")  # the module: `training.fit` is the function

TRAIN_CLIPS, VALID_CLIPS, CLIP_SECONDS, CLASSES = 152, 64, 30.0, 10

# family → (features, model, optimizer, training): the values the shipped spaces start from.
FAMILIES: dict[str, tuple[dict, dict, dict, dict]] = {
    "recipe": (  # spaces/cnn2d.yaml's first trial
        {"hop_length": 512, "n_bins": 64, "compression": "log10_1p"},
        {"arch": "cnn2d", "params": {"depth": 4, "channels": 16, "growth": 2.0, "dropout": 0.3, "global_pool": "avg"}},
        {"name": "adam", "lr": 3e-3, "weight_decay": 1e-4},
        {"segment_seconds": 3.0, "segments_per_clip": 4, "batch_size": 32, "eval_overlap": 0.0},
    ),
    "baseline": (  # spaces/baseline.yaml
        {"hop_length": 512, "n_bins": 128, "compression": "log10_1p"},
        {"arch": "baseline", "params": {}},
        {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        {"segment_seconds": 23.78, "segments_per_clip": 1, "batch_size": 4, "eval_overlap": 0.5},
    ),
    "resnet": (  # spaces/resnet.yaml, middle values
        {"hop_length": 512, "n_bins": 64, "compression": "log10_1p"},
        {"arch": "resnet", "params": {"depth": 3, "channels": 16, "growth": 2.0, "stride": 2}},
        {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
        {"segment_seconds": 3.0, "segments_per_clip": 8, "batch_size": 32, "eval_overlap": 0.5},
    ),
    "shortchunk": (  # no shipped space: 128 x 128 inputs, a quarter of the paper's widths
        {"hop_length": 512, "n_bins": 128, "compression": "log10_1p"},
        {"arch": "shortchunk", "params": {"channels": 32, "final_channels": 128, "dense_units": 128}},
        {"name": "adam", "lr": 1e-3},
        {"segment_seconds": 3.0, "segments_per_clip": 8, "batch_size": 32, "eval_overlap": 0.5},
    ),
    "crnn": (  # spaces/all.yaml's crnn
        {"hop_length": 512, "n_bins": 128, "compression": "log10_1p"},
        {"arch": "crnn", "params": {"depth": 3, "channels": 32, "rnn_units": 32}},
        {"name": "adam", "lr": 1e-3},
        {"segment_seconds": 3.0, "segments_per_clip": 8, "batch_size": 32, "eval_overlap": 0.5},
    ),
    "cnn1d": (  # spaces/cnn1d.yaml, middle values
        {"hop_length": 512, "n_bins": 128, "compression": "log10_1p"},
        {"arch": "cnn1d", "params": {"depth": 3, "channels": 64, "growth": 1.5, "kernel_size": 5, "pool_size": 2}},
        {"name": "adam", "lr": 1e-3},
        {"segment_seconds": 3.0, "segments_per_clip": 8, "batch_size": 32, "eval_overlap": 0.5},
    ),
}


def family_config(name: str, fast: bool, precision: str = "fp32") -> TrialConfig:
    features, model, optimizer, training = FAMILIES[name]
    training = {**training, "fast_path": fast, "precision": precision}
    return TrialConfig.from_dict(
        {"features": {"kind": "mel", **features}, "model": model, "optimizer": optimizer, "training": training}
    )


def synthetic_data(setting: FeatureSetting, seed: int = 0) -> FitData:
    """Random float16 frames shaped like the default set's store (what `fit()` reads)."""
    rng = np.random.default_rng(seed)
    frames = round(CLIP_SECONDS * setting.frames_per_second)

    def split(clips: int) -> SplitArrays:
        arrays = [rng.standard_normal((setting.n_bins, frames)).astype(np.float16) for _ in range(clips)]
        return SplitArrays.of_clips(arrays, rng.integers(0, CLASSES, clips), [f"c{i}" for i in range(clips)])

    mean, std = np.zeros(setting.n_bins, np.float32), np.ones(setting.n_bins, np.float32)
    return FitData(split(TRAIN_CLIPS), split(VALID_CLIPS), mean, std, tuple(map(str, range(CLASSES))), setting)


def seconds(function: Callable[[], object], device: torch.device) -> float:
    """On the CPU, the process's CPU time: what the run costs a core of its own, which a shared
    machine's other jobs do not add to (they still share caches and memory bandwidth); on CUDA,
    the wall clock between synchronisations."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        function()
        torch.cuda.synchronize(device)
        return time.perf_counter() - started
    started = time.process_time()
    function()
    return time.process_time() - started


def machine_rates(device: torch.device) -> tuple[float, float]:
    """GFLOP/s of a 1024x1024 float32 matmul and of a 3x3 convolution (32 → 32 channels, 64 x 128
    inputs, batch 32), best of five, measured now."""
    a, b = torch.randn(1024, 1024, device=device), torch.randn(1024, 1024, device=device)
    x, w = torch.randn(32, 32, 64, 128, device=device), torch.randn(32, 32, 3, 3, device=device)
    gemm = 2 * 1024**3 / min(seconds(lambda: a @ b, device) for _ in range(5))
    conv_flops = 2 * 32 * 32 * 9 * 64 * 128 * 32
    conv = conv_flops / min(seconds(lambda: F.conv2d(x, w, padding=1), device) for _ in range(5))
    return gemm / 1e9, conv / 1e9


@dataclass
class Path:
    """One family on one path, ready to time: the run, its model and optimizer, its counts."""

    run: loop.Run
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    progress: Progress
    crops: tuple[torch.Tensor, torch.Tensor]
    segments: tuple[torch.Tensor, torch.Tensor]
    valid_batch: int

    @classmethod
    def of(cls, config: TrialConfig, data: FitData, device: torch.device) -> Path:
        frames = config.segment_frames
        run = loop._prepare_run(config, data, device, frames, True)
        torch.manual_seed(config.training.seed)
        model = models.build_model(config.model.arch, config.model.params, run.train.n_bins, run.n_classes)
        model = training_layout(model.to(device), config.training.fast_path)
        progress = Progress.start(config.training.seed)
        clips, starts = eval_segments(run.valid.lengths, frames, config.training.eval_overlap)
        segments = (torch.as_tensor(clips), torch.as_tensor(starts))
        optimizer = make_optimizer(model, config.optimizer)
        return cls(
            run, model, optimizer, progress, loop.epoch_crops(run, progress), segments, 2 * config.training.batch_size
        )

    def train_steps(self, steps: int) -> None:
        self.model.train()
        weights = penalised(self.model)
        for batch in range(steps):
            x, targets = loop.training_batch(self.run, self.progress, *self.crops, batch % self.run.steps_per_epoch)
            loop._step(self.run, self.model, self.optimizer, x, targets, 1e-4, weights)

    def fold(self) -> torch.nn.Module:
        return evaluation_model(self.model, self.run.config.training.fast_path).eval()

    def valid_batches(self, evaluated: torch.nn.Module, batches: int) -> None:
        clips, starts = (part[: batches * self.valid_batch] for part in self.segments)
        with no_gradients(self.run.config.training.fast_path), loop.autocast(self.run):
            _log_probs(evaluated, self.run.valid, clips, starts, self.run.segment_frames, self.valid_batch)

    def epoch_flops(self) -> tuple[float, float]:
        """FLOPs of one training epoch (forward + backward) and one validation pass (forward)."""
        with FlopCounterMode(display=False) as counter:
            self.train_steps(1)
        train = counter.get_total_flops() * self.run.steps_per_epoch
        evaluated = self.fold()
        with FlopCounterMode(display=False) as counter:
            self.valid_batches(evaluated, 1)
        valid = counter.get_total_flops() * len(self.segments[0]) / min(self.valid_batch, len(self.segments[0]))
        return train, valid

    def epoch_seconds(self, steps: int) -> tuple[float, float]:
        """Seconds of one training epoch and one validation pass, scaled from `steps` of each; the
        fold of the model for validation counts once per epoch, as in `fit()`."""
        device = self.run.device
        train = seconds(lambda: self.train_steps(steps), device) * self.run.steps_per_epoch / steps
        evaluated: list[torch.nn.Module] = []
        fold = seconds(lambda: evaluated.append(self.fold()), device)
        batches = min(steps, -(-len(self.segments[0]) // self.valid_batch))
        timed = min(len(self.segments[0]), batches * self.valid_batch)
        valid = seconds(lambda: self.valid_batches(evaluated[0], batches), device)
        return train, fold + valid * len(self.segments[0]) / timed


# The path this process times (a worker of `measure`): each path runs in a process of its own, so
# that the fast path's process-wide settings (its memory allocator's, `keep_freed_memory`) do not
# reach the plain path, which stays today's code as it ran.
_timed: Path | None = None
_thread: ThreadPoolExecutor | None = None  # --in-thread: the one thread the path's work runs in


def _start_path(name: str, fast: bool, precision: str, device: str, threads: int, in_thread: bool) -> None:
    global _timed, _thread
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    _thread = ThreadPoolExecutor(1) if in_thread else None
    _timed = _run(_build_path, name, fast, precision, device)


def _build_path(name: str, fast: bool, precision: str, device: str) -> Path:
    config = family_config(name, fast, precision)
    path = Path.of(config, synthetic_data(family_config(name, True).features), torch.device(device))
    path.train_steps(1)  # warm-up: first-call allocations and oneDNN's kernel choice
    path.valid_batches(path.fold(), 1)
    return path


def _run(function: Callable, *args: object) -> Any:
    """`function(*args)` in this process's path thread (--in-thread), else here."""
    return _thread.submit(function, *args).result() if _thread else function(*args)


def _path_flops() -> tuple[tuple[float, float], int, int]:
    assert _timed is not None
    return _run(_timed.epoch_flops), _timed.run.steps_per_epoch, len(_timed.segments[0])


def _path_seconds(steps: int) -> tuple[float, float]:
    assert _timed is not None
    return _run(_timed.epoch_seconds, steps)


def measure(name: str, args: argparse.Namespace, precision: str) -> dict[str, dict]:
    """Both paths of family `name`, each in a process of its own: FLOPs, and per repeat the seconds,
    interleaved in turns (one process works while the other waits)."""
    spawn = multiprocessing.get_context("spawn")
    setup = (args.device, args.threads, args.in_thread)
    results: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        pools = {
            fast: stack.enter_context(
                ProcessPoolExecutor(1, spawn, initializer=_start_path, initargs=(name, fast, precision, *setup))
            )
            for fast in (False, True)
        }
        for fast, pool in pools.items():
            flops, results["steps_per_epoch"], results["segments"] = pool.submit(_path_flops).result()
            results["fast" if fast else "plain"] = {"flops": flops, "train": [], "valid": []}
        for repeat in range(args.repeats):
            order = (False, True) if repeat % 2 == 0 else (True, False)  # ABBA: drift hits both alike
            for fast in order:
                train, valid = pools[fast].submit(_path_seconds, args.steps).result()
                results["fast" if fast else "plain"]["train"].append(train)
                results["fast" if fast else "plain"]["valid"].append(valid)
    return results


def rows(name: str, results: dict, rates: tuple[float, float], label: str) -> list[str]:
    gemm, conv = rates
    lines = []
    for path in ("plain", "fast"):
        result = results[path]
        cells = [f"{name}{label}", path]
        for part, flops in zip(("train", "valid"), result["flops"], strict=True):
            times = result[part]
            rate = flops / min(times) / 1e9
            cells += [f"{flops / 1e9:.1f}", f"{min(times):.2f} / {statistics.median(times):.2f}", f"{rate:.1f}"]
            cells += [f"{rate / gemm:.0%} / {rate / conv:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    plain, fast = results["plain"], results["fast"]
    speedups = [statistics.median(plain[part]) / statistics.median(fast[part]) for part in ("train", "valid")]
    lines.append(f"| {name}{label} | speed-up (medians) | | {speedups[0]:.2f}x | | | | {speedups[1]:.2f}x | | |")
    return lines


HEADER = (
    "| family | path | train GFLOP/epoch | train s/epoch (min / median) | train GFLOP/s | of GEMM / conv "
    "| valid GFLOP/epoch | valid s/epoch (min / median) | valid GFLOP/s | of GEMM / conv |\n"
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="training steps and validation batches timed per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (a trial's CPUs)")
    parser.add_argument("--family", nargs="+", choices=sorted(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--bf16", action="store_true", help="CUDA: rows with bfloat16 autocast too")
    parser.add_argument(
        "--in-thread",
        action="store_true",
        help="run each path's work in a thread of its own, as a Ray trial runs fit()",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    device = torch.device(args.device)
    precisions = ["fp32", "bf16"] if args.bf16 and device.type == "cuda" else ["fp32"]
    rates = machine_rates(device)
    print(f"device {args.device}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"machine now: 1024x1024 float32 matmul {rates[0]:.1f} GFLOP/s, 3x3 conv {rates[1]:.1f} GFLOP/s")
    clock = "process CPU time" if device.type == "cpu" else "wall clock"
    print(
        f"{args.steps} steps and {args.steps} validation batches timed ({clock}) per repeat, scaled to an epoch by its"
    )
    print(f"step and batch counts; {args.repeats} repeats, plain and fast interleaved (plain first, then fast first)")
    where = "a thread of their own (as in a Ray trial)" if args.in_thread else "the main thread"
    print(f"each path in a process of its own, its work in {where}")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print(HEADER)
    for name in args.family:
        for precision in precisions:
            results = measure(name, args, precision)
            label = "" if precision == "fp32" else " bf16"
            print("\n".join(rows(name, results, rates, label)), flush=True)
    after = machine_rates(device)
    print(f"\nmachine after: matmul {after[0]:.1f} GFLOP/s, 3x3 conv {after[1]:.1f} GFLOP/s", end="")
    print(f"; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
