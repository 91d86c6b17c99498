"""Writing the synthetic set to disk in GTZAN's layout: the train/valid/test split lists, one clip
per job in a process pool, disk-space checks, and `generate_dataset`, which puts it all together.

Every clip is `features.synthetic.render.synthesize_clip` of (seed, genre index, clip index), so the
set is byte-identical for a given seed whatever the number of workers.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from common.errors import UserError
from common.partials import no_space_left, partial_path, process_alive, remove_stale_partials
from features.synthetic.instruments import SR
from features.synthetic.recipes import GENRES
from features.synthetic.render import synthesize_clip

DEFAULT_CLIPS_PER_GENRE = 40
DEFAULT_SECONDS = 30.0

# The real fault-filtered split holds 353 / 150 / 227 of 730 clips: we keep its proportions.
SPLIT_FRACTIONS = {"train": 353 / 730, "valid": 150 / 730, "test": 227 / 730}
MARKER = "SYNTHETIC.json"
PCM_BYTES = 2  # 16-bit samples
WAV_HEADER_BYTES = 44
FS_BLOCK_BYTES = 4096  # a file takes whole blocks of the filesystem
SMALL_FILES_BYTES = 64 * 1024  # split lists, marker and folders
LIBSNDFILE_SYSTEM_ERROR = 2  # SFE_SYSTEM: a failed read or write call, its errno not passed on
GENERATOR = {"generator": "genre-search synthetic", "version": 1}
ORPHAN_CHECK_SECONDS = 0.5  # how often a worker checks that the generating process still runs
# Mixed into the split shuffle's seed so it never coincides with a clip's [seed, genre, index].
_SPLIT_STREAM = 0x5111


# --- the split lists -----------------------------------------------------------------------------


def split_sizes(n: int) -> tuple[int, int, int]:
    """Train/valid/test clip counts for one genre of `n` clips, in the real split's proportions.

    Rounded, and never an empty split when n >= 3 (a genre missing from valid would break training);
    below that, train is filled first.
    """
    train = max(1, round(n * SPLIT_FRACTIONS["train"])) if n else 0
    valid = round(n * SPLIT_FRACTIONS["valid"])
    if n >= 3:
        train = min(train, n - 2)
        valid = min(max(1, valid), n - train - 1)
    valid = min(valid, n - train)
    return train, valid, n - train - valid


def _clip_name(genre: str, index: int) -> str:
    return f"{genre}/{genre}.{index:05d}.wav"


def assign_splits(clips_per_genre: int, seed: int) -> dict[str, list[str]]:
    """Each split's clip names (`genre/genre.NNNNN.wav`): per genre, shuffled with the seed, then cut."""
    names: dict[str, list[str]] = {split: [] for split in SPLIT_FRACTIONS}
    sizes = split_sizes(clips_per_genre)
    for g, genre in enumerate(GENRES):
        order = np.random.default_rng([seed, g, 0, _SPLIT_STREAM]).permutation(clips_per_genre)
        cuts = np.split(order, np.cumsum(sizes)[:2])
        for split, indices in zip(names, cuts):
            names[split] += [_clip_name(genre, int(i)) for i in sorted(indices)]
    return names


# --- writing the clips ---------------------------------------------------------------------------


def _write_clip(job: tuple[str, int, int, int, float]) -> str:
    """Worker: synthesise one clip and write it as 16-bit PCM (top level, so processes can pickle it)."""
    folder, seed, g, i, seconds = job
    name = _clip_name(GENRES[g], i)
    sf.write(Path(folder) / name, synthesize_clip(GENRES[g], seconds, (seed, g, i)), SR, subtype="PCM_16")
    return name


def _end_with(parent: int) -> None:
    """Worker initializer: end this worker when `parent` (the generating process) ends, however it
    ends (SIGKILL included), rather than live on orphaned. A daemon thread sees the worker's parent
    change: a killed parent's children are taken over by init (or a subreaper). Polling, not
    Linux's PR_SET_PDEATHSIG, so it holds on every POSIX system and for every start method (a
    forkserver worker's parent is the server, which ends with the generating process)."""
    first = os.getppid()
    if first != parent and not process_alive(parent):  # killed before this worker got here
        os._exit(1)

    def watch() -> None:
        while os.getppid() == first:
            time.sleep(ORPHAN_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _run_jobs(jobs: list[tuple[str, int, int, int, float]], workers: int) -> None:
    """Write every clip, in `workers` processes (inline for one), with a progress bar."""
    progress = tqdm(total=len(jobs), desc="synthesising clips", unit="clip")
    with progress:
        if workers == 1:
            for job in jobs:
                _write_clip(job)
                progress.update()
            return
        with ProcessPoolExecutor(max_workers=workers, initializer=_end_with, initargs=(os.getpid(),)) as pool:
            try:
                for future in as_completed([pool.submit(_write_clip, job) for job in jobs]):
                    future.result()  # a worker's error is raised here
                    progress.update()
            except BaseException:  # an error or Ctrl-C: drop the queued clips rather than finish them
                pool.shutdown(wait=True, cancel_futures=True)
                raise


# --- checks: arguments, the out folder, disk space -----------------------------------------------


def _check_arguments(clips_per_genre: int, seconds: float, seed: int, workers: int | None) -> None:
    def whole(value: object) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if not whole(clips_per_genre) or clips_per_genre < 1:
        raise UserError(f"clips per genre must be a whole number >= 1, got {clips_per_genre!r}")
    if not isinstance(seconds, numbers.Real) or not 0.1 <= seconds <= 600:
        raise UserError(f"seconds must be between 0.1 and 600, got {seconds!r}")
    if not whole(seed) or seed < 0:
        raise UserError(f"seed must be a whole number >= 0, got {seed!r}")
    if workers is not None and (not whole(workers) or workers < 1):
        raise UserError(f"workers must be a whole number >= 1, got {workers!r}")


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder: choose a new --out or remove it")


def _clip_bytes(seconds: float) -> int:
    """One clip on disk: its 16-bit samples and header, rounded up to whole filesystem blocks."""
    size = round(seconds * SR) * PCM_BYTES + WAV_HEADER_BYTES
    return -(-size // FS_BLOCK_BYTES) * FS_BLOCK_BYTES


def bytes_needed(clips_per_genre: int, seconds: float) -> int:
    """Disk space the set takes: every clip, plus the split lists and marker."""
    return len(GENRES) * clips_per_genre * _clip_bytes(seconds) + SMALL_FILES_BYTES


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def _check_space(out: Path, needed: int) -> int:
    """The free bytes beside `out`; too few for the set is a `UserError` before any clip is made."""
    free = shutil.disk_usage(out.parent).free
    if free < needed:
        raise UserError(
            f"not enough disk space for the synthetic set {out}: it needs {_megabytes(needed)}, {_megabytes(free)} free"
        )
    return free


def _is_disk_full(error: BaseException, folder: Path, clip_bytes: int) -> bool:
    """Whether writing failed because the disk filled up. libsndfile reports a failed write as a
    bare "System error" (its errno is not passed on), so that one counts when the disk has no room
    left for another clip."""
    if isinstance(error, OSError) and no_space_left(error):
        return True
    if isinstance(error, sf.LibsndfileError) and error.code == LIBSNDFILE_SYSTEM_ERROR:
        return shutil.disk_usage(folder).free < clip_bytes
    return False


# --- the set -------------------------------------------------------------------------------------


def _write_set(folder: Path, clips_per_genre: int, seconds: float, seed: int, workers: int | None) -> None:
    """Every clip, the split lists and the marker, into `folder`."""
    for genre in GENRES:
        (folder / genre).mkdir()
    jobs = [(str(folder), seed, g, i, seconds) for g in range(len(GENRES)) for i in range(clips_per_genre)]
    _run_jobs(jobs, min(workers or os.cpu_count() or 1, len(jobs)))
    for split, names in assign_splits(clips_per_genre, seed).items():
        (folder / f"{split}_filtered.txt").write_text("".join(name + "\n" for name in names))
    marker = GENERATOR | {"seed": seed, "clips_per_genre": clips_per_genre, "seconds": seconds}
    marker |= {"sample_rate": SR, "genres": list(GENRES)}
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def generate_dataset(
    out: Path,
    clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Write the synthetic set into `out` in GTZAN's layout, with split lists and `SYNTHETIC.json`.

    Everything is written into a hidden sibling folder that is renamed to `out` only when complete,
    so an interrupted run never leaves a folder that looks finished (and the next run removes what
    it left). Too little disk space is a `UserError`, up front or when the disk fills up meanwhile.
    The output is byte-identical for a given seed, whatever the number of workers.
    """
    out = Path(out).expanduser()
    _check_arguments(clips_per_genre, seconds, seed, workers)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out.parent)
    needed = bytes_needed(clips_per_genre, seconds)
    free = _check_space(out, needed)
    partial = partial_path(out)
    try:
        partial.mkdir()
        _write_set(partial, clips_per_genre, seconds, seed, workers)
        _check_out(out)  # someone may have written there meanwhile
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException as error:
        disk_full = _is_disk_full(error, partial, _clip_bytes(seconds))
        shutil.rmtree(partial, ignore_errors=True)
        if disk_full:
            raise UserError(
                f"the disk filled up while writing the synthetic set {out}: it needs {_megabytes(needed)} "
                f"({_megabytes(free)} were free at the start); the partial set was removed"
            ) from error
        raise
    return out
