"""Building feature stores: every clip decoded once, every requested setting computed from that
decode (and, for training clips, from each augmented copy), clips spread over worker processes,
one writer owning the HDF5 files.

    python -m features.extract --data DIR --space SPACE.yaml [--stores DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from common.errors import UserError, exit_on_user_error
from features.compute import ClipFeatures, DecodeError, ExtractionPlan, compute_clip, decode, plan_extraction
from features.dataset import Clip, Dataset, load_dataset
from features.parallel import SharedSlots, map_in_order
from features.settings import FeatureSetting
from features.writer import StoreWriter, is_current, remove_stale_partials, store_path

log = logging.getLogger(__name__)


def build_stores(
    dataset: Dataset,
    settings: list[FeatureSetting],
    stores_dir: Path,
    workers: int | None = None,
) -> dict[FeatureSetting, Path]:
    """Make sure a current store exists for every setting; build the missing or outdated ones."""
    stores_dir = Path(stores_dir)
    stores_dir.mkdir(parents=True, exist_ok=True)
    described = dataset.describe()
    paths = {setting: store_path(stores_dir, setting) for setting in settings}
    todo = [s for s in settings if not is_current(paths[s], described["fingerprint"], s)]
    for setting in settings:
        if setting not in todo:
            tqdm.write(f"store {paths[setting].name}: up to date, reused")
    if todo:
        remove_stale_partials(stores_dir)
        _build(dataset, described, todo, [paths[s] for s in todo], workers)
    return paths


def _build(dataset: Dataset, described: dict, settings: list, paths: list[Path], workers: int | None) -> None:
    writers = [StoreWriter(path, setting, dataset, described) for setting, path in zip(settings, paths)]
    clips = dataset.all_clips()
    train_ids = {clip.clip_id for clip in dataset.splits["train"]}  # only training clips get copies
    try:
        results = _extract_all(clips, train_ids, plan_extraction(settings), workers)
        for clip, result in tqdm(
            zip(clips, results, strict=True), total=len(clips), desc=f"extracting {_describe(settings)}", unit="clip"
        ):
            for writer in writers:
                if isinstance(result, str):
                    writer.skip(clip, result)
                else:
                    _write_clip(writer, clip, result)
        for writer in writers:
            writer.finish()
    finally:
        for writer in writers:
            writer.abort()  # no-op for finished writers; removes the partial file of the others
    _report_skipped(writers[0].skipped)


def _describe(settings: list[FeatureSetting]) -> str:
    copies = sum(augment.copies for augment in {setting.audio_augment for setting in settings})  # shared by settings
    return f"{len(settings)} setting(s)" + (f", {copies} augmented copies per train clip" if copies else "")


def _write_clip(writer: StoreWriter, clip: Clip, result: ClipFeatures) -> None:
    name = writer.setting.original.name
    writer.add(clip, result.features[name], result.sums[name])
    for number, copy in enumerate(result.copies.get(writer.setting.audio_augment, []), start=1):
        writer.add_copy(clip, number, copy.features[name], copy.params)


def _extract_all(
    clips: list[Clip], train_ids: set[str], plan: ExtractionPlan, workers: int | None
) -> Iterator[ClipFeatures | str]:
    """`_extract_one`'s result per clip, in clip order. With several workers a result's arrays
    are views into shared memory, valid until the next result is asked for."""
    jobs = [(clip.path, clip.clip_id, clip.clip_id in train_ids) for clip in clips]
    workers = workers or os.cpu_count() or 1
    _init_worker(plan)
    warm_up = _extract_one(None)  # librosa imports its parts on first use; forked workers inherit them
    if workers == 1:
        yield from map(_extract_one, jobs)
        return
    # One slot per job in flight, sized from the warm-up's second of audio; the rows of a longer
    # clip that do not fit travel pickled. The workers are forked: stores are built before Ray starts.
    in_flight = JOBS_IN_FLIGHT_PER_WORKER * workers
    slots = SharedSlots(in_flight, int(SLOT_SECONDS * warm_up.nbytes))
    results = map_in_order(_extract_into_slot, jobs, workers, in_flight, _init_extraction_worker, (plan, slots))
    for number, result in enumerate(results):
        yield result if isinstance(result, str) else result.map_features(slots.unpacker(number))


JOBS_IN_FLIGHT_PER_WORKER = 3  # enough queued that no worker waits while the writer writes
SLOT_SECONDS = 40  # of audio per slot: GTZAN's 30 s clips, and copies time-stretched by up to 1.25


_PLAN = ExtractionPlan((), ())
_SLOTS = SharedSlots(0, 0)
_BLAS_LIMIT: threadpool_limits | None = None


def _init_worker(plan: ExtractionPlan) -> None:
    global _PLAN
    _PLAN = plan


def _init_extraction_worker(plan: ExtractionPlan, slots: SharedSlots) -> None:
    """One BLAS and torch thread per worker: the workers already fill the cores, and thread pools
    inherited through fork oversubscribe them (two workers ran slower than one without this).
    With one thread torch never enters the OpenMP pool, which does not survive a fork."""
    global _BLAS_LIMIT, _SLOTS
    _init_worker(plan)
    _SLOTS = slots
    _BLAS_LIMIT = threadpool_limits(limits=1)
    torch.set_num_threads(1)
    keep_freed_memory()


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS: every clip
    allocates the same few large arrays (audio, STFT, power), and mapping them afresh each time
    costs page faults worth about 20% of a clip's time (measured: 19 -> 15 ms per clip)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    libc.mallopt(M_MMAP_THRESHOLD, 512 * 2**20)
    libc.mallopt(M_TRIM_THRESHOLD, 2**30)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def _extract_into_slot(job: tuple[Path, str, bool], number: int) -> ClipFeatures | str:
    result = _extract_one(job)
    return result if isinstance(result, str) else result.map_features(_SLOTS.packer(number))


def _extract_one(job: tuple[Path, str, bool] | None) -> ClipFeatures | str:
    """The clip's features (and copies, for a training clip), or the reason it is skipped."""
    rates = _PLAN.sample_rates
    if job is None:  # warm-up (librosa imports its parts on first use): one second of noise
        noise = {rate: np.random.default_rng(0).standard_normal(rate).astype(np.float32) for rate in rates}
        return compute_clip(noise, "", True, _PLAN)
    path, clip_id, augment = job
    try:
        audio = decode(path, rates)
    except DecodeError as err:
        return str(err)
    return compute_clip(audio, clip_id, augment, _PLAN)


def _report_skipped(skipped: list[dict[str, str]]) -> None:
    if skipped:
        listed = "; ".join(f"{s['clip']}: {s['reason']}" for s in skipped[:5])
        more = f"; … ({len(skipped) - 5} more, listed in the store)" if len(skipped) > 5 else ""
        log.warning("skipped %d unreadable clip(s): %s%s", len(skipped), listed, more)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m features.extract", description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="dataset root (default: $GTZAN_DIR, ~/gtzan, or the synthetic set)")
    parser.add_argument("--space", required=True, help="space file (path, or a name in spaces/)")
    parser.add_argument("--stores", help="folder for the stores (default: a per-dataset cache folder)")
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    from features.locate import default_stores_dir, resolve_data_root
    from search.space_file import feature_settings_of_space

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    args = parse_args(argv)
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    settings = feature_settings_of_space(args.space)
    dataset = load_dataset(resolve_data_root(args.data))
    stores_dir = Path(args.stores) if args.stores else default_stores_dir(dataset.root)
    for path in build_stores(dataset, settings, stores_dir, args.workers).values():
        print(path)


if __name__ == "__main__":
    main()
