"""Training-loop benchmark: epoch time of `fit()` and the share of it spent preparing batches,
against a DataLoader reading one `.npy` file per clip (the homework's way), same model and batch.

    python -m tests.bench.bench_fit [--data DIR] [--epochs N] [--threads N]

Runs on the default synthetic set unless --data says otherwise, on the CPU. Target (issue 3):
batch preparation under 10% of the epoch. The loop keeps no timers: the time spent preparing
batches (the epoch's crops, then each batch's gather and augmentation) is measured here, by
wrapping the two functions of `training.fit` that do it.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

import models
from features.arrays import FitData
from features.dataset import load_dataset
from features.extract import build_stores
from features.locate import default_stores_dir, resolve_data_root
from features.settings import FeatureSetting
from features.store import FeatureStore
from training import TrialConfig, evaluate_clips, fit

LOOP = importlib.import_module("training.fit")  # the module: `training.fit` is the function

CONFIGS = {  # model → (its params, training section); the rest: defaults, SGD as the homework
    "baseline": ({}, {"segment_seconds": 23.78, "segments_per_clip": 1, "batch_size": 4}),
    "cnn2d": ({"depth": 4, "channels": 8}, {"segment_seconds": 3.0, "segments_per_clip": 8, "batch_size": 32}),
}


@contextmanager
def batch_preparation_timer() -> Iterator[list[float]]:
    """Seconds spent in `training.fit`'s batch preparation, per epoch, while the context is open
    (CPU wall clock: the work is synchronous there)."""
    seconds: list[float] = []

    def timed(function: Callable, starts_epoch: bool) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if starts_epoch:
                seconds.append(0.0)
            started = time.perf_counter()
            result = function(*args, **kwargs)
            seconds[-1] += time.perf_counter() - started
            return result

        return wrapper

    originals = LOOP.epoch_crops, LOOP.training_batch
    LOOP.epoch_crops = timed(originals[0], starts_epoch=True)
    LOOP.training_batch = timed(originals[1], starts_epoch=False)
    try:
        yield seconds
    finally:
        LOOP.epoch_crops, LOOP.training_batch = originals


class NpyClips(Dataset):
    """The homework's loader: one np.load per item, a random crop, normalised per item."""

    def __init__(self, files: list[Path], labels: np.ndarray, frames: int, per_clip: int, mean, std):
        self.files, self.labels, self.frames, self.per_clip = files, labels, frames, per_clip
        self.mean, self.std = mean[:, None], std[:, None]
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.files) * self.per_clip

    def __getitem__(self, index: int):
        clip = index % len(self.files)
        features = np.load(self.files[clip])
        start = self.rng.integers(0, max(features.shape[1] - self.frames, 0) + 1)
        crop = features[:, start : start + self.frames]
        crop = np.pad(crop, ((0, 0), (0, self.frames - crop.shape[1])))
        return torch.from_numpy(((crop - self.mean) / self.std).astype(np.float32)), int(self.labels[clip])


def homework_epoch(config: TrialConfig, data: FitData, files: list[Path]) -> tuple[float, float]:
    """One epoch the homework's way; returns (epoch seconds, seconds waiting for batches)."""
    model = models.build_model(config.model.arch, config.model.params, data.setting.n_bins, len(data.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=config.optimizer.lr, momentum=0.9)
    per_clip = config.training.segments_per_clip
    loader = DataLoader(
        NpyClips(files, data.train.labels, config.segment_frames, per_clip, data.mean, data.std),
        batch_size=config.training.batch_size,
        shuffle=True,
        drop_last=True,
    )
    started, waiting = time.perf_counter(), 0.0
    model.train()
    batches = iter(loader)
    while True:
        before = time.perf_counter()
        try:
            x, y = next(batches)
        except StopIteration:
            break
        waiting += time.perf_counter() - before
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    frames, overlap = config.segment_frames, config.training.eval_overlap
    evaluate_clips(model, data.valid, data.mean, data.std, frames, overlap, min_frames=config.min_frames)
    return time.perf_counter() - started, waiting


def write_npy_files(data: FitData, folder: Path) -> list[Path]:
    files = []
    for index in range(len(data.train)):
        files.append(folder / f"{index}.npy")
        np.save(files[-1], data.train.clip(index).astype(np.float32))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="dataset root (default: the built-in synthetic set)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of fit() (the last is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a search trial gets 1 per CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(resolve_data_root(args.data))
    setting = FeatureSetting()
    store = build_stores(dataset, [setting], default_stores_dir(dataset.root))[setting]
    data = FeatureStore(store).load_fit_data()
    clips = f"{len(data.train)} train / {len(data.valid)} valid clips"
    print(f"dataset: {dataset.root} ({clips}), {args.threads} torch thread(s)")
    print(f"{'model':9} {'fit() epoch':>12} {'batch prep':>11} {'npy loader epoch':>17} {'waiting':>8} {'speed-up':>9}")
    with tempfile.TemporaryDirectory() as folder:
        files = write_npy_files(data, Path(folder))
        for arch, (params, training) in CONFIGS.items():
            raw = {"model": {"arch": arch, "params": params}, "optimizer": {"name": "sgd", "lr": 0.01}}
            raw["schedule"] = {"name": "none"}
            config = TrialConfig.from_dict({**raw, "training": {**training, "max_epochs": args.epochs}})
            with batch_preparation_timer() as prep_seconds:
                last = fit(config, data, device="cpu").history[-1]
            homework, waiting = homework_epoch(config, data, files)
            print(
                f"{arch:9} {last.epoch_seconds:11.2f}s {prep_seconds[-1] / last.epoch_seconds:10.1%} "
                f"{homework:16.2f}s {waiting / homework:7.1%} {homework / last.epoch_seconds:8.2f}x"
            )
    print("target: batch preparation under 10% of the fit() epoch on CPU")


if __name__ == "__main__":
    main()
