"""Extraction benchmark: our store builder against the homework's serial per-file loop.

    python -m tests.bench.bench_extract [--data DIR] [--workers N] [--repeats N] [--no-copies]

Every variant runs in a fresh subprocess on the same clips (by default a GTZAN-sized synthetic set:
8 genres x 92 clips of 30 s, like the 730 clips of the homework's split), one after the other, and
the ratios are printed side by side. The variants run in rounds (`--repeats`, all variants once per
round, so drift in the machine's load touches each alike) and each variant's fastest run counts:
on a shared machine the minimum is the run least disturbed by others. Each child imports and
warms librosa up before its clock starts (about 1.5 s of lazy imports that every method pays once, whatever it does).
Targets (issue 13): one setting at least 1.3x faster than the homework loop on 2 cores; a second
setting sharing the STFT (another kind, bins or compression) at most +0.3x the first one's cost.
A hop that is a multiple of the first's shares the STFT too (shown, no target).
Augmentation (issue 6): the extra time per augmented copy of a training clip, against what it must
cost at least: that copy's features (STFT and mel, no decode) plus the effects themselves, both
measured per clip in one process; and the store's growth against the copies' own frames.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from tests.bench.bench_augment import shipped_effect_ranges

REPO = Path(__file__).resolve().parents[2]
HOMEWORK = "homework loop"
MEL = {"kind": "mel"}
VARIANTS = {  # name → the feature section of a space file
    "one setting (log-mel)": MEL,
    "+ mfcc (other kind)": {"kind": {"choice": ["mel", "mfcc"]}},
    "+ 64 mels (other bins)": {"kind": "mel", "mel": {"n_bins": {"choice": [128, 64]}}},
    "+ dB (other compression)": {"kind": "mel", "mel": {"compression": {"choice": ["log10_1p", "db"]}}},
    "+ hop 1024 (every 2nd frame)": {"hop_length": {"choice": [512, 1024]}},
}
KIND_VARIANTS = ["+ mfcc (other kind)", "+ 64 mels (other bins)", "+ dB (other compression)"]
AUGMENT = shipped_effect_ranges()  # those of spaces/cnn2d.yaml
COPIES = {f"+ {n} augmented cop{'y' if n == 1 else 'ies'}": n for n in (1, 2)}
VARIANTS.update({name: {**MEL, "audio_augment": {**AUGMENT, "copies": n}} for name, n in COPIES.items()})
PER_CLIP = "per-clip costs"


def homework_loop(data: Path, out: Path) -> None:
    """The homework's way: librosa.load → melspectrogram → log10(1 + 10·mel) → np.save, per file."""
    import librosa
    import numpy as np

    from features.dataset import load_dataset

    for clip in load_dataset(data).all_clips():
        audio, _ = librosa.load(clip.path, sr=22050)
        mel = librosa.feature.melspectrogram(y=audio, sr=22050, n_fft=1024, hop_length=512, n_mels=128)
        np.save(out / f"{clip.clip_id.replace('/', '_')}.npy", np.log10(1 + 10 * mel))


def our_build(data: Path, out: Path, section: dict, workers: int | None) -> None:
    from features.dataset import load_dataset
    from features.extract import build_stores
    from search.space import parse_space

    settings = parse_space({"features": section}, Path("bench.yaml")).feature_settings()
    build_stores(load_dataset(data), settings, out, workers=workers)


def per_clip_costs(data: Path, clips: int = 24) -> dict:
    """Serial milliseconds per training clip, as a worker computes them (one BLAS thread): decode,
    one setting's features; an augmented copy's effects, then its features."""
    from threadpoolctl import threadpool_limits

    from features.augment import AudioAugment, apply_effects
    from features.compute import compute_features, decode, plan_stfts
    from features.dataset import load_dataset
    from features.settings import FeatureSetting

    threadpool_limits(1)
    plan = plan_stfts([FeatureSetting()])
    augment = AudioAugment(copies=1, **{key: tuple(value) for key, value in AUGMENT.items()})
    chosen = load_dataset(data).splits["train"][:clips]
    seconds: dict[str, float] = {}

    def timed(name: str, step: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        result = step(*args)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
        return result

    for clip in chosen:
        audio = timed("decode", decode, clip.path, {22050})
        timed("features", compute_features, audio, plan)
        copy = timed("effects", apply_effects, audio[22050], 22050, augment.copy_params(clip.clip_id, 0))
        timed("copy_features", compute_features, {22050: copy}, plan)  # right after its effects, as in the build
    return {key: 1000 * value / len(chosen) for key, value in seconds.items()}


def store_sizes(folder: Path) -> dict:
    """Bytes on disk, and the bytes the augmented copies' own frames take as float16."""
    import h5py

    from features.store import COPIES_GROUP

    sizes = {"store_bytes": sum(p.stat().st_size for p in folder.glob("*.h5")), "copy_bytes": 0}
    for path in folder.glob("*.h5"):
        with h5py.File(path, "r") as f:
            if COPIES_GROUP in f:
                bins = f[COPIES_GROUP]["features"].shape[1]
                sizes["copy_bytes"] += int(f[COPIES_GROUP]["lengths"][()].sum()) * bins * 2
    return sizes


def warm_up() -> None:
    import librosa
    import numpy as np

    import features.extract  # noqa: F401  (what our variant imports)

    librosa.feature.melspectrogram(y=np.zeros(22050, dtype=np.float32), sr=22050)


def run_one(name: str, data: Path, workers: int | None) -> None:
    """Child process: run one variant, print its time and peak memory as JSON."""
    warm_up()
    if name == PER_CLIP:
        print(json.dumps(per_clip_costs(data)))
        return
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        if name == HOMEWORK:
            homework_loop(data, Path(out))
        else:
            our_build(data, Path(out), VARIANTS[name], workers)
        seconds = time.perf_counter() - start
        sizes = store_sizes(Path(out))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "writer_mib": own, "worker_mib": children, **sizes}))


def measure(name: str, data: Path, workers: int | None) -> dict:
    command = [sys.executable, "-m", "tests.bench.bench_extract", "--one", name, "--data", str(data)]
    if workers:
        command += ["--workers", str(workers)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="dataset root (default: the built-in synthetic set)")
    parser.add_argument("--workers", type=int, help="our worker processes (default: all cores)")
    parser.add_argument("--clips-per-genre", type=int, default=92, help="size of the synthetic set (without --data)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all variants; the fastest run counts")
    parser.add_argument("--no-copies", action="store_true", help="skip the augmented-copy variants (4x faster)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one, Path(args.data), args.workers)

    from features.dataset import load_dataset

    data = Path(args.data) if args.data else bench_dataset(args.clips_per_genre)
    dataset = load_dataset(data)
    print(f"dataset: {data} ({len(dataset.all_clips())} clips, {len(dataset.splits['train'])} in train)")
    names = [name for name in VARIANTS if not (args.no_copies and name in COPIES)]
    runs: dict[str, list[dict]] = {name: [] for name in [HOMEWORK, *names]}
    for _ in tqdm(range(args.repeats), desc="rounds of all variants", unit="round"):
        for name, done in runs.items():
            done.append(measure(name, data, args.workers))
    results = {name: min(done, key=lambda r: r["seconds"]) for name, done in runs.items()}
    costs = measure(PER_CLIP, data, None)
    report(results, costs)
    if args.no_copies:
        return
    workers = args.workers or os.cpu_count() or 1
    report_copies(results, costs, len(dataset.splits["train"]), workers)


def bench_dataset(clips_per_genre: int) -> Path:
    """A synthetic set of GTZAN's size, generated once into the cache folder."""
    from features import synthetic
    from features.locate import cache_dir

    root = cache_dir() / f"bench-synthetic-seed0-{clips_per_genre}x30s"
    if not root.is_dir():
        synthetic.generate_dataset(root, clips_per_genre=clips_per_genre, seconds=30.0)
    return root


def report(results: dict[str, dict], costs: dict) -> None:
    base = results[HOMEWORK]["seconds"]
    first = results["one setting (log-mel)"]["seconds"]
    print(f"{'variant':30} {'seconds':>8} {'vs homework':>12} {'extra vs 1 setting':>19} {'peak MiB':>17}")
    for name, r in results.items():
        extra = "" if name == HOMEWORK else f"{(r['seconds'] - first) / first:+.2f}x"
        memory = f"{r['writer_mib']:.0f} + {r['worker_mib']:.0f}/worker"
        print(f"{name:30} {r['seconds']:8.2f} {base / r['seconds']:11.2f}x {extra:>19} {memory:>17}")
    verdict = "met" if base / first >= 1.3 else "missed"
    print(f"target: one setting >= 1.30x faster than the homework loop: {base / first:.2f}x: {verdict}")
    extras = {name: (results[name]["seconds"] - first) / first for name in KIND_VARIANTS}
    missed = [name for name, extra in extras.items() if extra > 0.3]
    listed = ", ".join(f"{extra:+.2f}x" for extra in extras.values())
    verdict = f"missed by {missed}" if missed else "met"
    print(f"target: another kind, bins or compression <= +0.30x: {listed}: {verdict}")
    print(f"per clip, serial: decode {costs['decode']:.1f} ms, one setting's features {costs['features']:.1f} ms")


def report_copies(results: dict[str, dict], costs: dict, train_clips: int, workers: int) -> None:
    """Each copy's share of the build, per training clip and worker, against its own work."""
    first = results["one setting (log-mel)"]
    budget = costs["copy_features"] + costs["effects"]
    print(
        f"\nper training clip, serial: a copy's effects {costs['effects']:.1f} ms, then its features "
        f"{costs['copy_features']:.1f} ms"
    )
    for name, copies in COPIES.items():
        extra = results[name]["seconds"] - first["seconds"]
        per_copy = 1000 * extra * workers / (train_clips * copies)
        grown = results[name]["store_bytes"] - first["store_bytes"]
        copied = results[name]["copy_bytes"]
        print(
            f"{name}: +{extra:.2f} s = {per_copy:.0f} ms per copy per worker; its features + effects "
            f"{budget:.0f} ms: {per_copy / budget:.2f}x (target <= 1); store +{grown / 2**20:.1f} MiB for "
            f"{copied / 2**20:.1f} MiB of copied frames ({grown / copied:.2f}x)"
        )


if __name__ == "__main__":
    main()
