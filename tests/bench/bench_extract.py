"""Extraction benchmark: our store builder against the homework's serial per-file loop.

    python -m tests.bench.bench_extract [--data DIR] [--workers N]

Every variant runs in a fresh subprocess on the same clips (by default a GTZAN-sized synthetic set:
8 genres x 92 clips of 30 s, like the 730 clips of the homework's split), one after the other, and
the ratios are printed side by side. Each child imports and warms librosa up before its clock
starts (about 1.5 s of lazy imports that every method pays once, whatever it does).
Targets (issue 2): one setting at least 1.7x faster than the homework loop on 2 cores; a second
setting differing in kind, bins or compression at most +0.3x the first one's cost; a second setting
with another hop or window at most +1x.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOMEWORK = "homework loop"
MEL = {"kind": "mel"}
VARIANTS = {  # name → the feature section of a space file
    "one setting (log-mel)": MEL,
    "+ mfcc (other kind)": {"kind": {"choice": ["mel", "mfcc"]}},
    "+ 64 mels (other bins)": {"kind": "mel", "mel": {"n_bins": {"choice": [128, 64]}}},
    "+ dB (other compression)": {"kind": "mel", "mel": {"compression": {"choice": ["log10_1p", "db"]}}},
    "+ hop 1024 (other hop)": {"hop_length": {"choice": [512, 1024]}},
    "+ hop 256 (other hop)": {"hop_length": {"choice": [512, 256]}},
    "+ n_fft 2048 (other window)": {"n_fft": {"choice": [1024, 2048]}},
}


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


def warm_up() -> None:
    import librosa
    import numpy as np

    import features.extract  # noqa: F401  (what our variant imports)

    librosa.feature.melspectrogram(y=np.zeros(22050, dtype=np.float32), sr=22050)


def run_one(name: str, data: Path, workers: int | None) -> None:
    """Child process: run one variant, print its time and peak memory as JSON."""
    warm_up()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        if name == HOMEWORK:
            homework_loop(data, Path(out))
        else:
            our_build(data, Path(out), VARIANTS[name], workers)
        seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "writer_mib": own, "worker_mib": children}))


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
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one, Path(args.data), args.workers)

    from features.dataset import load_dataset

    data = Path(args.data) if args.data else bench_dataset(args.clips_per_genre)
    clips = len(load_dataset(data).all_clips())
    print(f"dataset: {data} ({clips} clips)")
    results = {name: measure(name, data, args.workers) for name in [HOMEWORK, *VARIANTS]}
    report(results)


def bench_dataset(clips_per_genre: int) -> Path:
    """A synthetic set of GTZAN's size, generated once into the cache folder."""
    from features import synth
    from features.locate import cache_dir

    root = cache_dir() / f"bench-synthetic-seed0-{clips_per_genre}x30s"
    if not root.is_dir():
        synth.generate_dataset(root, clips_per_genre=clips_per_genre, seconds=30.0)
    return root


def report(results: dict[str, dict]) -> None:
    base = results[HOMEWORK]["seconds"]
    first = results["one setting (log-mel)"]["seconds"]
    print(f"{'variant':30} {'seconds':>8} {'vs homework':>12} {'extra vs 1 setting':>19} {'peak MiB':>17}")
    for name, r in results.items():
        extra = "" if name == HOMEWORK else f"{(r['seconds'] - first) / first:+.2f}x"
        memory = f"{r['writer_mib']:.0f} + {r['worker_mib']:.0f}/worker"
        print(f"{name:30} {r['seconds']:8.2f} {base / r['seconds']:11.2f}x {extra:>19} {memory:>17}")
    print(f"target: one setting >= 1.70x faster than the homework loop: {base / first:.2f}x")


if __name__ == "__main__":
    main()
