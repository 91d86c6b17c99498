"""Memory benchmark: a node holds one copy of each store's train and valid arrays (Ray's object
store, read zero-copy by every trial), and each trial's own memory does not grow with the dataset.

    python -m tests.bench.bench_memory [--scales 1 4 10] [--epochs 2] [--rounds 2] [--seconds 5]
    python -m tests.bench.bench_memory --scales 1 --epochs 1        # a quick dry run

Synthetic sets of 1x, 4x and 10x GTZAN's 730 clips (`features.synth`, 91, 365 and 912 clips per
genre), built once into the cache with their 128-band log-mel store (hop 512, the homework's
features). Their clips last 5 s, not GTZAN's 30 s: generating 10x at 30 s takes about an hour on
2 shared cores (the data's bytes scale with frames: 30 s clips hold 6x as many). Then, side by
side in one run:

(a) on the 1x set, today's preparation (the whole train and valid splits normalised into float32
    in every trial, augmented copies concatenated: `today_prepare_*` below, kept here only for the
    comparison) against the new one (frames shared as stored, each batch cropped and normalised):
    median epoch seconds of the same config, seed and data, and peak memory of the trial process;
(b) the new preparation at every scale: peak memory of the driver (the process that loads the store
    and `ray.put`s it) and of each of 2 concurrent trials (Ray tasks, one CPU each, each a fresh
    worker process running `fit()` for one epoch), and the object store's use.

Memory is RSS, USS and PSS (psutil, sampled every 50 ms in the measured process; RSS also from
the kernel's peak). Pages of Ray's object store that a trial reads count in its RSS although every
process on the node shares them; USS (pages only that process maps) is what a trial adds, and PSS
shares each page among the processes mapping it.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import re
import resource
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import ray
import torch

from common.upstream import ray_memory_summary
from features.arrays import FitData, SplitArrays, TrainCopies
from features.dataset import load_dataset
from features.extract import build_stores
from features.locate import cache_dir
from features.settings import FeatureSetting
from features.store import FeatureStore
from features.synthetic import GENRES, generate_dataset
from training import TrialConfig, fit
from training.segments import DeviceSplit, gather, normalised_split, prepare_train, random_crops, with_copies

LOOP = importlib.import_module("training.fit")  # the module: `training.fit` is the function

GTZAN_CLIPS = 730
SETTING = FeatureSetting(kind="mel", hop_length=512, n_bins=128)
MIB = 2**20
CONFIG = {  # a small 2D CNN, one torch thread per trial as a search gives it
    "features": SETTING.to_dict(),
    "model": {"arch": "cnn2d", "params": {"depth": 2, "channels": 8}},
    "optimizer": {"name": "adam", "lr": 0.001},
    "training": {"segment_seconds": 1.0, "segments_per_clip": 2, "batch_size": 32, "eval_overlap": 0.0, "seed": 0},
}


def clips_per_genre(scale: float) -> int:
    return round(GTZAN_CLIPS * scale / len(GENRES))


def scale_store(scale: float, seconds: float) -> Path:
    """The store of the synthetic set at `scale` x GTZAN's clip count, generated and built once."""
    per_genre = clips_per_genre(scale)
    root = cache_dir() / "bench-memory" / f"synth-{per_genre}-per-genre-{seconds:g}s"
    if not root.is_dir():
        generate_dataset(root, per_genre, seconds)
    return build_stores(load_dataset(root), [SETTING], root.parent / f"{root.name}-stores")[SETTING]


# --- measuring a process's memory ------------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    """Peak memory of one process, MiB."""

    rss: float  # the kernel's high-water mark
    uss: float  # sampled: pages only this process maps
    pss: float  # sampled: each shared page divided among the processes mapping it


@contextmanager
def sampled_peak(interval: float = 0.05) -> Iterator[list[Peak]]:
    """This process's peak memory while the context is open, in the list it yields (one `Peak`)."""
    process, highest, done = psutil.Process(), {"uss": 0, "pss": 0}, threading.Event()

    def sample() -> None:
        while not done.is_set():
            info = process.memory_full_info()
            highest["uss"], highest["pss"] = max(highest["uss"], info.uss), max(highest["pss"], info.pss)
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result: list[Peak] = []
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        info = process.memory_full_info()  # the state at the end counts too
        uss, pss = max(highest["uss"], info.uss), max(highest["pss"], info.pss)
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        result.append(Peak(rss_kib / 1024, uss / MIB, pss / MIB))


# --- today's preparation, for the comparison only ---------------------------------------------------


def today_prepare_split(
    split: SplitArrays,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int,
    home: torch.device | None = None,
) -> DeviceSplit:
    """Before this change, on the CPU: the whole split normalised into new float32 frames in the
    trial (the data-on-GPU path's `normalised_split`, there on the CPU)."""
    return normalised_split(split, mean, std, device, min_frames, device if home is None else home)


def today_prepare_train(
    split: SplitArrays,
    copies: TrainCopies | None,
    mean: np.ndarray,
    std: np.ndarray,
    device: torch.device,
    min_frames: int,
) -> DeviceSplit:
    """Before this change: the train split normalised, its augmented copies too, joined into one."""
    originals = today_prepare_split(split, mean, std, device, min_frames)
    if copies is None or len(copies) == 0:
        return originals
    return with_copies(originals, today_prepare_split(copies.arrays, mean, std, device, min_frames), copies.source)


@contextmanager
def preparation(approach: str) -> Iterator[None]:
    """`fit()` with the new preparation ("new") or today's ("today")."""
    if approach == "new":
        yield
        return
    saved = LOOP.prepare_split, LOOP.prepare_train
    LOOP.prepare_split, LOOP.prepare_train = today_prepare_split, today_prepare_train
    try:
        yield
    finally:
        LOOP.prepare_split, LOOP.prepare_train = saved


# --- the processes measured -------------------------------------------------------------------------


@ray.remote(num_cpus=1, max_calls=1)  # a fresh worker process per trial: its peak is its own
def trial(boxed: list[ray.ObjectRef], epochs: int, approach: str) -> dict[str, Any]:
    """A search trial's work: its data from the object store, `fit()` for `epochs` on one thread.
    The reference comes boxed so that Ray does not fetch it before the measurement starts."""
    torch.set_num_threads(1)
    with sampled_peak() as peak:
        data: FitData = ray.get(boxed[0])
        config = TrialConfig.from_dict({**CONFIG, "training": {**CONFIG["training"], "max_epochs": epochs}})
        with preparation(approach):
            history = fit(config, data, device="cpu").history
    return {"epoch_seconds": [m.epoch_seconds for m in history], "peak": asdict(peak[0])}


def object_store_mib() -> float:
    """Bytes in this node's object store (Ray's memory summary), MiB."""
    summary = ray_memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
    found = re.search(r"Plasma memory usage (\d+) MiB", summary)
    return float(found.group(1)) if found else float("nan")


def start_own_ray(attempts: int = 3) -> None:
    """A Ray of its own ("local"), never one found running on the machine (another user's). On a
    loaded machine its node can miss Ray's fixed 30 s to register: then it is started again."""
    for attempt in range(attempts):
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            return
        except Exception as err:
            ray.shutdown()
            if "timed out during startup" not in str(err) or attempt == attempts - 1:
                raise


def driver(store: Path, runs: list[tuple[str, int]], concurrent: bool) -> dict[str, Any]:
    """The search's driver: load the store's train and valid splits, `ray.put` them, run the trials
    (`runs`: approach and epochs of each) all at once or one after another; its own peak memory
    and the object store's use come back with the trials' results."""
    with sampled_peak() as peak:
        start_own_ray()
        try:
            data = FeatureStore(store).load_fit_data()
            clips = len(data.train) + len(data.valid)
            data_mib = (data.train.features.nbytes + data.valid.features.nbytes) / MIB
            boxed = [ray.put(data)]
            del data  # as the search does: only the object store keeps it
            stored = object_store_mib()
            if concurrent:
                results = ray.get([trial.remote(boxed, epochs, approach) for approach, epochs in runs])
            else:
                results = [ray.get(trial.remote(boxed, epochs, approach)) for approach, epochs in runs]
        except ray.exceptions.RayError as err:  # Ray's task errors do not pickle back to the caller
            raise RuntimeError(str(err)) from None
        finally:
            ray.shutdown()
    return {
        "clips": clips,
        "data_mib": data_mib,
        "object_store_mib": stored,
        "driver": asdict(peak[0]),
        "trials": results,
    }


def in_fresh_process(function, *args) -> Any:
    """`function(*args)` in a new process, so its peak memory is its own."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        return pool.submit(function, *args).result()


def gather_seconds(store: Path, repeats: int = 5) -> dict[str, float]:
    """The batch gathering alone (no model): seconds to gather every batch of one epoch's crops
    from the train split prepared today's way and the new way, the fastest of `repeats`
    alternating runs of each, in this process, one thread."""
    torch.set_num_threads(1)
    data, config = FeatureStore(store).load_fit_data(), TrialConfig.from_dict(CONFIG)
    frames, size, cpu = config.segment_frames, config.training.batch_size, torch.device("cpu")
    splits = {
        "today": today_prepare_train(data.train, data.train_copies, data.mean, data.std, cpu, frames),
        "new": prepare_train(data.train, data.train_copies, data.mean, data.std, cpu, frames),
    }
    per_clip = config.training.segments_per_clip
    clips, starts = random_crops(splits["new"].lengths, frames, per_clip, torch.Generator().manual_seed(0))
    best = {approach: float("inf") for approach in splits}
    for _ in range(repeats):
        for approach, split in splits.items():
            started = time.perf_counter()
            for first in range(0, len(clips) - size + 1, size):
                gather(split, clips[first : first + size], starts[first : first + size], frames)
            best[approach] = min(best[approach], time.perf_counter() - started)
    return best


# --- the report -------------------------------------------------------------------------------------


def compare_today(store: Path, epochs: int, rounds: int) -> dict[str, dict[str, Any]]:
    """(a): today's preparation and the new one, one trial at a time, alternating (ABBA...) so the
    machine's load falls on both alike."""
    order = [("today", "new") if r % 2 == 0 else ("new", "today") for r in range(rounds)]
    runs = [(approach, epochs) for pair in order for approach in pair]
    results = in_fresh_process(driver, store, runs, False)["trials"]
    summary = {}
    for approach in ("today", "new"):
        mine = [r for (a, _), r in zip(runs, results) if a == approach]
        seconds = [s for r in mine for s in r["epoch_seconds"]]
        peaks = {key: max(r["peak"][key] for r in mine) for key in ("rss", "uss", "pss")}
        summary[approach] = {"epoch_seconds": statistics.median(seconds), "epochs": len(seconds), **peaks}
    return summary


def print_comparison(summary: dict[str, dict[str, Any]], gathering: dict[str, float]) -> None:
    today, new = summary["today"], summary["new"]
    print("\n(a) 1x set, one trial at a time: today's preparation against the new one")
    print(f"{'':24} {'today':>10} {'new':>10} {'new/today':>10}")
    print(
        f"{'epoch seconds (median)':24} {today['epoch_seconds']:10.2f} {new['epoch_seconds']:10.2f} "
        f"{new['epoch_seconds'] / today['epoch_seconds']:9.2f}x   (target <= 1.10x)"
    )
    for key in ("rss", "uss", "pss"):
        label = f"trial peak {key.upper()} MiB"
        print(f"{label:24} {today[key]:10.0f} {new[key]:10.0f} {new[key] / today[key]:9.2f}x")
    label = "gathering s/epoch"
    ratio = gathering["new"] / gathering["today"]
    print(f"{label:24} {gathering['today']:10.3f} {gathering['new']:10.3f} {ratio:9.2f}x   (batches only, no model)")
    print(f"(epoch seconds: median of {today['epochs']} and {new['epochs']} epochs, including validation)")


def scale_row(scale: float, store: Path) -> dict[str, Any]:
    """(b): the new preparation at one scale, two trials at once, one epoch each."""
    result = in_fresh_process(driver, store, [("new", 1), ("new", 1)], True)
    trials = result.pop("trials")
    row = {"scale": scale, **result}
    for key in ("rss", "uss", "pss"):
        row[f"trial_{key}"] = max(t["peak"][key] for t in trials)
    return row


COLUMNS = {  # column → header
    "clips": "clips",
    "data_mib": "data MiB",
    "object_store_mib": "obj. store MiB",
    "driver_rss": "driver RSS",
    "driver_uss": "driver USS",
    "driver_pss": "driver PSS",
    "trial_rss": "trial RSS",
    "trial_uss": "trial USS",
    "trial_pss": "trial PSS",
}


def print_scales(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        row.update({f"driver_{key}": value for key, value in row.pop("driver").items()})
    print("\n(b) the new preparation, 2 concurrent trials of 1 epoch; peaks in MiB (trial: the larger of the two)")
    print(f"{'scale':>6} " + " ".join(f"{header:>14}" for header in COLUMNS.values()))
    for row in rows:
        print(f"{row['scale']:5g}x " + " ".join(f"{row[key]:14.0f}" for key in COLUMNS))
    base = rows[0]
    for row in rows[1:]:
        ratios = " ".join(f"{row[key] / base[key]:13.2f}x" for key in COLUMNS)
        print(f"{row['scale'] / base['scale']:4g}x/{base['scale']:g}x".rjust(6) + " " + ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 4, 10], help="x GTZAN's 730 clips")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run in the comparison (a)")
    parser.add_argument("--rounds", type=int, default=2, help="today/new pairs in the comparison (a)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of every synthetic clip")
    parser.add_argument("--prepare", action="store_true", help="only generate the sets and build their stores")
    args = parser.parse_args()
    stores = {}
    for scale in args.scales:
        started = time.perf_counter()
        stores[scale] = scale_store(scale, args.seconds)
        print(f"{scale:g}x: {stores[scale]} ({time.perf_counter() - started:.0f} s)", flush=True)
    if args.prepare:
        return
    first = args.scales[0]
    print(f"clips of {args.seconds:g} s; config: {CONFIG}")
    print_comparison(compare_today(stores[first], args.epochs, args.rounds), gather_seconds(stores[first]))
    print_scales([scale_row(scale, stores[scale]) for scale in args.scales])


if __name__ == "__main__":
    # Run as the importable module, not as `__main__`: the spawned driver process and Ray's
    # workers find the functions they run by their module's name.
    importlib.import_module("tests.bench.bench_memory").main()
