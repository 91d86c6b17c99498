"""GPU benchmark, the one prepared script for a lent accelerator (issue 18): trials packed onto one
GPU, the GPU space's largest configuration on the GPU against this machine's CPU, bf16 against fp32.

Here (2 CPU cores; needs librosa and Optuna, which the GPU machine lacks):

    python -m tests.bench.bench_gpu --prepare      # builds the store, writes gpu_configs.json
    python -m tests.bench.bench_gpu --store STORE --cpu-epoch     # the CPU reference, gpu_cpu_reference.json
    python -m tests.bench.bench_gpu --store STORE --dry-run       # everything on the CPU, tiny sizes

On the GPU machine (PyTorch, h5py, numpy, scipy; no Ray, Optuna or librosa):

    python -m tests.bench.bench_gpu --store STORE --out DIR [--budget-s 420]

Ray cannot be assumed there, so plain processes, each running `fit()` on the same GPU, stand in
for Ray's fractional trials (Ray only chooses which GPU a trial sees): 8 configs of
spaces/cnn2d-gpu.yaml x 3 epochs, 1, 2, 4 and 8 processes at once, with `nvidia-smi` sampled for
GPU utilisation and memory. Every config uses the store's features (the default synthetic set at
hop 1024). It prints the `gpus_per_trial` that gave the most epochs per minute.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from features.arrays import FitData, SplitArrays
from features.settings import FeatureSetting
from features.store import FeatureStore
from training import fit

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "gpu_configs.json"  # the 8 trial configs and the largest config (--prepare writes it)
CPU_REFERENCE = HERE / "gpu_cpu_reference.json"  # one epoch of the largest config here (--cpu-epoch)
SPACE = "cnn2d-gpu.yaml"
STORE_SETTING = FeatureSetting(hop_length=1024)  # 128-band log-mel, n_fft 1024: the carried store's
TRIALS, TRIAL_EPOCHS, PACKINGS = 8, 3, (1, 2, 4, 8)
DRY_RUN_CLIPS = 16  # train clips kept by --dry-run (valid: half as many)
DRY_RUN_MODEL = {"arch": "cnn2d", "params": {"depth": 2, "channels": 4}}


# --- preparation, here ---------------------------------------------------------------------------


def prepare() -> Path:
    """Build (or reuse) the default synthetic set's store at hop 1024 and write `CONFIGS`."""
    from features.dataset import load_dataset  # librosa's side: never imported on the GPU machine
    from features.extract import build_stores
    from features.locate import default_stores_dir, resolve_data_root

    dataset = load_dataset(resolve_data_root(None))
    store = build_stores(dataset, [STORE_SETTING], default_stores_dir(dataset.root))[STORE_SETTING]
    CONFIGS.write_text(json.dumps(sampled_configs(), indent=1) + "\n")
    print(f"wrote {CONFIGS.relative_to(HERE.parent.parent)}; store ({store.stat().st_size / 2**20:.0f} MiB): {store}")
    return store


def sampled_configs() -> dict[str, Any]:
    """8 configs drawn from the GPU space by Optuna's random sampler, and the space's largest
    config (the most floating-point operations per example of each family at its upper ends)."""
    import optuna

    from search.space import load_space

    space = load_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials = [bench_config(space.suggest(study.ask()), TRIAL_EPOCHS) for _ in range(TRIALS)]
    largest = max((upper_ends(space, arch) for arch in ("cnn2d", "resnet", "shortchunk")), key=gflops)
    return {
        "space": f"spaces/{SPACE}",
        "sampler": "optuna RandomSampler(seed=0); features fixed to the carried store's",
        "trials": trials,
        "largest": {**bench_config(largest, 2), "gflops_per_example": round(gflops(largest), 2)},
    }


def bench_config(config: dict[str, Any], epochs: int) -> dict[str, Any]:
    """`config` on the store's features, for `epochs` epochs."""
    return {**config, "features": STORE_SETTING.to_dict(), "training": {**config["training"], "max_epochs": epochs}}


def upper_ends(space: Any, arch: str) -> dict[str, Any]:
    """A config of the space with `arch` and every model and training number at its largest."""

    class Largest:  # answers Optuna's suggest calls with the top of each range or the largest choice
        def suggest_categorical(self, name, choices):
            if name == "model.arch":
                return arch
            numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
            return max(numbers) if len(numbers) == len(choices) else choices[-1]

        def suggest_int(self, name, low, high, step=1, log=False):
            return high

        def suggest_float(self, name, low, high, step=None, log=False):
            return high

    return bench_config(space.suggest(Largest()), 1)


def gflops(config: dict[str, Any]) -> float:
    """Forward-pass GFLOP of one example of `config`'s segment length."""
    from torch.utils.flop_counter import FlopCounterMode

    import models
    from training import TrialConfig

    trial = TrialConfig.from_dict({k: v for k, v in config.items() if k != "gflops_per_example"})
    model = models.build_model(trial.model.arch, trial.model.params, trial.features.n_bins, 8).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, trial.features.n_bins, trial.segment_frames))
    return counter.get_total_flops() / 1e9


def cpu_epoch(store: Path) -> dict[str, Any]:
    """One epoch of the largest config on this machine's CPU in fp32 (what a CPU run uses: bf16
    is emulated on CPUs without bfloat16 units), 2 torch threads for its 2 cores."""
    largest = load_configs()["largest"]
    config = {**largest, "training": {**largest["training"], "max_epochs": 1, "precision": "fp32"}}
    reference = {"precision": "fp32", "threads": 2, "load_average_before": os.getloadavg()}
    result = time_trial(str(store), config, "cpu", 2)
    reference |= {"epoch_seconds": result["epoch_seconds"][0], "machine": machine("cpu")}
    reference["load_average_after"] = os.getloadavg()
    CPU_REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {CPU_REFERENCE.name}: {reference}")
    return reference


# --- one trial, in a worker process ----------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def load_data(store: str, limit: int | None) -> FitData:
    """The store's train and valid data (every `limit`-th share of the clips with --dry-run)."""
    data = FeatureStore(store).load_fit_data()
    if limit is None:
        return data
    return replace(data, train=spread(data.train, limit), valid=spread(data.valid, limit // 2), train_copies=None)


def spread(split: SplitArrays, count: int) -> SplitArrays:
    """`count` clips spread over `split` (the store orders clips by genre)."""
    rows = np.linspace(0, len(split) - 1, min(count, len(split))).round().astype(int)
    return SplitArrays.of_clips([split.clip(i) for i in rows], split.labels[rows], [split.clip_ids[i] for i in rows])


def time_trial(store: str, config: dict[str, Any], device: str, threads: int, limit: int | None = None) -> dict:
    """Run `fit()` on `device`; its epochs' seconds, wall-clock span and peak device memory."""
    torch.set_num_threads(threads)
    data = load_data(store, limit)
    if device == "cuda":  # a worker runs trials one after another: the last one's cache is not this one's
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    history = fit(config, data, device=device, validate=True).history
    ended = time.time()
    peak = torch.cuda.max_memory_reserved() if device == "cuda" else 0
    seconds = [m.epoch_seconds for m in history]
    return {"pid": os.getpid(), "started": started, "ended": ended, "epoch_seconds": seconds, "peak_bytes": peak}


# --- measurements, on the GPU ----------------------------------------------------------------------


class GpuSampler:
    """`nvidia-smi` read every half second in a thread: GPU utilisation, memory, per-process memory."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (time, utilisation %, used MiB)
        self.process_mib: dict[int, float] = {}  # pid -> largest used memory seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            gpu = nvidia_smi("--query-gpu=utilization.gpu,memory.used")
            if gpu:
                self.samples.append((time.time(), *map(float, gpu[0])))
            for pid, used in nvidia_smi("--query-compute-apps=pid,used_memory"):
                self.process_mib[int(pid)] = max(self.process_mib.get(int(pid), 0.0), float(used))

    def between(self, start: float, end: float) -> dict[str, float | None]:
        window = [s for s in self.samples if start <= s[0] <= end]
        if not window:
            return {"util_mean": None, "util_max": None, "used_mib_max": None}
        util = [s[1] for s in window]
        return {"util_mean": float(np.mean(util)), "util_max": max(util), "used_mib_max": max(s[2] for s in window)}


def nvidia_smi(query: str) -> list[list[str]]:
    """Rows of an `nvidia-smi` CSV query; none where it is missing or answers nothing usable."""
    try:
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = [[cell.strip() for cell in line.split(",")] for line in out.strip().splitlines()]
    return [row for row in rows if all(cell.replace(".", "").isdigit() for cell in row)]


def packing(store: str, configs: list[dict], at_once: int, device: str, sampler: GpuSampler, limit: int | None):
    """All `configs` as trials, `at_once` processes at a time (fresh ones: peak memory is per trial)."""
    context = get_context("spawn")  # CUDA cannot be used in a forked child
    with ProcessPoolExecutor(max_workers=at_once, mp_context=context) as pool:
        trials = list(pool.map(time_trial, *zip(*[(store, c, device, 1, limit) for c in configs])))
    start, end = min(t["started"] for t in trials), max(t["ended"] for t in trials)
    epochs = sum(len(t["epoch_seconds"]) for t in trials)
    process_mib = [sampler.process_mib.get(t["pid"]) for t in trials]
    return {
        "at_once": at_once,
        "gpus_per_trial": 1 / at_once,
        "wall_s": end - start,
        "epochs_per_minute": 60 * epochs / (end - start),
        "peak_reserved_mib_max": max(t["peak_bytes"] for t in trials) / 2**20,
        "process_mib_max": max((m for m in process_mib if m is not None), default=None),
        **sampler.between(start, end),
    }


def largest_epochs(store: str, largest: dict, device: str, limit: int | None) -> dict[str, float]:
    """The largest config's second epoch (the first pays for cuDNN's choices and warm-up) in
    fp32 and bf16, each in a fresh process."""
    seconds = {}
    context = get_context("spawn")
    for precision in ("fp32", "bf16"):
        config = {**largest, "training": {**largest["training"], "precision": precision}}
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            trial = pool.submit(time_trial, store, config, device, 1, limit).result()
        seconds[precision] = trial["epoch_seconds"][-1]
    return seconds


def recommended(levels: list[dict]) -> dict:
    """The packing with the most epochs per minute; a denser one only when it gains over 5%."""
    best = levels[0]
    for level in levels[1:]:
        if level["epochs_per_minute"] > 1.05 * best["epochs_per_minute"]:
            best = level
    return best


# --- the run --------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, saved to `args.out` after each; packings stop past `args.budget_s`."""
    device = "cpu" if args.dry_run else "cuda"
    limit, store = (DRY_RUN_CLIPS if args.dry_run else None), str(args.store)
    configs = load_configs()
    trials, largest = configs["trials"], configs["largest"]
    if args.dry_run:
        trials, largest = [shrunk(c) for c in trials[:2]], shrunk(largest)
    results: dict[str, Any] = {"machine": machine(device), "store": store, "dry_run": args.dry_run}
    started = time.monotonic()
    results["largest"] = largest_epochs(store, largest, device, limit)
    print(f"largest config, one epoch: {results['largest']}", flush=True)
    results["cpu_reference"] = json.loads(CPU_REFERENCE.read_text()) if CPU_REFERENCE.exists() else None
    results["packings"] = []
    with GpuSampler() as sampler:
        for at_once in PACKINGS[:2] if args.dry_run else PACKINGS:
            if time.monotonic() - started > args.budget_s:
                results["skipped"] = f"packings from {at_once} at once: past --budget-s {args.budget_s}"
                break
            results["packings"].append(packing(store, trials, at_once, device, sampler, limit))
            print(f"{at_once} at once: {results['packings'][-1]}", flush=True)
            save(results, args.out)
    results["recommended_gpus_per_trial"] = recommended(results["packings"])["gpus_per_trial"]
    save(results, args.out)
    return results


def shrunk(config: dict[str, Any]) -> dict[str, Any]:
    """--dry-run: a tiny model, one epoch of one crop per clip (--prepare built every real model)."""
    training = {**config["training"], "max_epochs": 1, "segments_per_clip": 1}
    return {**config, "model": DRY_RUN_MODEL, "training": training}


def load_configs() -> dict[str, Any]:
    configs = json.loads(CONFIGS.read_text())
    configs["largest"] = {k: v for k, v in configs["largest"].items() if k != "gflops_per_example"}
    return configs


def machine(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {os.cpu_count()} CPUs"
    return f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {os.cpu_count()} CPUs"


def save(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu.json").write_text(json.dumps(results, indent=1) + "\n")


def report(results: dict[str, Any]) -> None:
    print(f"machine: {results['machine']}{' (dry run: CPU, tiny sizes)' if results['dry_run'] else ''}")
    print(f"{'trials at once':>14} {'gpus_per_trial':>14} {'epochs/min':>10} {'GPU util mean/max':>17} "
          f"{'peak MiB/trial':>14} {'GPU MiB max':>11}")  # fmt: skip
    for p in results["packings"]:
        util = "n/a" if p["util_mean"] is None else f"{p['util_mean']:.0f}% / {p['util_max']:.0f}%"
        trial_mib = p["process_mib_max"] or p["peak_reserved_mib_max"]
        print(f"{p['at_once']:>14} {p['gpus_per_trial']:>14.3g} {p['epochs_per_minute']:>10.1f} {util:>17} "
              f"{trial_mib:>14.0f} {p['used_mib_max'] or 0:>11.0f}")  # fmt: skip
    if "skipped" in results:
        print(f"skipped: {results['skipped']}")
    largest, cpu = results["largest"], results["cpu_reference"]
    print(f"largest config, one epoch: fp32 {largest['fp32']:.2f} s, bf16 {largest['bf16']:.2f} s "
          f"(bf16 speed-up {largest['fp32'] / largest['bf16']:.2f}x)")  # fmt: skip
    if cpu is not None:
        device_s = largest[cpu["precision"]]
        print(f"  on {cpu['threads']} CPU cores ({cpu['precision']}): {cpu['epoch_seconds']:.1f} s, "
              f"{cpu['epoch_seconds'] / device_s:.0f}x the {cpu['precision']} epoch here")  # fmt: skip
    print(f"recommended search.gpus_per_trial: {results['recommended_gpus_per_trial']:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, help="the feature store (the default synthetic set at hop 1024)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench-gpu-out")), help="results")
    parser.add_argument("--budget-s", type=float, default=420.0, help="no packing starts after this many seconds")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, 2 configs, tiny data")
    parser.add_argument("--prepare", action="store_true", help="here: build the store, write gpu_configs.json")
    parser.add_argument("--cpu-epoch", action="store_true", help="here: one epoch of the largest config on 2 cores")
    args = parser.parse_args()
    if args.prepare:
        prepare()
    elif args.store is None:
        parser.error("--store is required (--prepare prints its path)")
    elif args.cpu_epoch:
        cpu_epoch(args.store)
    else:
        report(measure(args))


if __name__ == "__main__":
    main()
