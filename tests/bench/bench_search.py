"""Search benchmark: Ray Tune's overhead per trial, and the epochs ASHA spends against running every
trial to the end, side by side in one run.

    python -m tests.bench.bench_search [--data DIR] [--trials N] [--max-epochs N] [--skip-overhead | --overhead-only]

Targets (issues 4 and 30): under 1.5 s of overhead per trial by default (wall time of a search of
many short trials, times the trial slots, minus the time inside their epochs, per trial; the wall
time of Ray Tune's run, which the experiment records: Ray's start before it and the driver's wait
for the final metrics export after it are fixed costs of a search, printed apart), measured
with `search.reuse_workers: true` (the default: a trial runs in a finished trial's worker) and with
a new worker per trial (`false`, each worker named after its trial); ASHA at most 35% of the
epochs of running every trial to max epochs, with the best validation accuracy each reached.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import ray
import yaml

from common.experiment import read_metadata, run_seconds
from search.runner import SearchRequest, run_search
from search.space_file import SPACES_DIR

SHORT_TRIALS = """
features: {kind: mel, mel: {n_bins: 64}}
model: {arch: cnn2d, cnn2d: {depth: 2, channels: {choice: [4, 8]}}}
optimizer: {name: adam, lr: {loguniform: [1.0e-3, 1.0e-2]}}
training: {segment_seconds: 1.0, segments_per_clip: 1, batch_size: 16}
search: {num_samples: 16, max_epochs: 2, scheduler: fifo, cpus_per_trial: 1}
"""


def search(space: Path, data: str | None, storage: Path, name: str) -> tuple[pd.DataFrame, dict, float]:
    """The search's leaderboard (with each trial's time inside epochs), metadata and wall time (Ray
    Tune's run, as the experiment records it)."""
    started = time.perf_counter()
    try:
        folder = run_search(SearchRequest(space=str(space), data=data, storage=str(storage), name=name)).local_dir
    finally:
        ray.shutdown()
    print(f"  the whole call: {time.perf_counter() - started:.1f} s (with Ray's start and the final metrics export)")
    metadata = read_metadata(folder)
    board = pd.read_csv(folder / "leaderboard.csv")
    board["epoch_seconds"] = [pd.read_csv(Path(p) / "progress.csv")["epoch_seconds"].sum() for p in board["path"]]
    return board, metadata, run_seconds(folder)[-1]


def overhead(data: str | None, storage: Path) -> None:
    """The same short search with reused workers (the default) and with a new worker per trial."""
    for reuse in (True, False):
        space = storage / f"short-reuse-{reuse}.yaml"
        raw = yaml.safe_load(SHORT_TRIALS)
        raw["search"]["reuse_workers"] = reuse
        space.write_text(yaml.safe_dump(raw))
        board, metadata, wall = search(space, data, storage, f"overhead-reuse-{reuse}")
        slots = min(len(board), int((os.cpu_count() or 1) // metadata["search"]["cpus_per_trial"]))
        per_trial = (wall * slots - board["epoch_seconds"].sum()) / len(board)
        print(
            f"overhead (search.reuse_workers: {str(reuse).lower()}): {len(board)} trials of 2 short epochs in "
            f"{wall:.1f} s on {slots} slot(s); time inside epochs {board['epoch_seconds'].sum():.1f} s"
        )
        print(f"  overhead per trial: {per_trial:.2f} s (target < 1.5 s with reused workers, the default)")


def asha_against_fifo(data: str | None, storage: Path, trials: int | None, max_epochs: int | None) -> None:
    """The default search (`cnn2d.yaml`, its own trials and epochs unless given) with ASHA, then
    with every trial run to the end, same TPE seed."""
    raw = yaml.safe_load((SPACES_DIR / "cnn2d.yaml").read_text())
    trials = trials or raw["search"]["num_samples"]
    max_epochs = max_epochs or raw["search"]["max_epochs"]
    results = {}
    for scheduler in ("asha", "fifo"):
        # the same trials for both, each as long as its scheduler lets it: no budget over all trials
        raw["search"].update(num_samples=trials, max_epochs=max_epochs, scheduler=scheduler, epoch_budget=None)
        space = storage / f"cnn2d-{scheduler}.yaml"
        space.write_text(yaml.safe_dump(raw))
        results[scheduler] = search(space, data, storage, scheduler)
    full = trials * max_epochs
    print(f"\ncnn2d.yaml, {trials} trials, max {max_epochs} epochs, same TPE seed:")
    print(f"{'scheduler':10} {'epochs':>7} {'share':>7} {'best valid acc':>15} {'wall s':>8}")
    for scheduler, (board, _, wall) in results.items():
        epochs = int(board["epochs"].sum())
        print(f"{scheduler:10} {epochs:7d} {epochs / full:6.0%} {board['valid_clip_acc'].max():15.3f} {wall:8.0f}")
    print("target: ASHA at most 35% of the epochs of running every trial to max epochs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="dataset root (default: the built-in synthetic set)")
    parser.add_argument("--trials", type=int, help="trials in the ASHA/FIFO comparison (default: cnn2d.yaml's)")
    parser.add_argument("--max-epochs", type=int, help="max epochs in the ASHA/FIFO comparison (default: cnn2d.yaml's)")
    parser.add_argument("--skip-overhead", action="store_true", help="only the ASHA/FIFO comparison")
    parser.add_argument("--overhead-only", action="store_true", help="only the overhead per trial")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as storage:
        if not args.skip_overhead:
            overhead(args.data, Path(storage))
        if not args.overhead_only:
            asha_against_fifo(args.data, Path(storage), args.trials, args.max_epochs)


if __name__ == "__main__":
    main()
