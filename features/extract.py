"""Building feature stores: every clip decoded once, every requested setting computed from that
decode (and, for training clips, from each augmented copy), clips spread over worker processes,
one writer owning the HDF5 files."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from common.errors import UserError
from common.partials import no_space_left, remove_stale_partials
from features.compute import ClipFeatures, DecodeError, ExtractionPlan, compute_clip, decode, plan_extraction
from features.dataset import SPLIT_NAMES, Clip, Dataset
from features.settings import FeatureSetting
from features.store import DamagedStoreError, FeatureStore
from features.writer import StoreWriter, store_path

log = logging.getLogger(__name__)


def build_stores(
    dataset: Dataset,
    settings: list[FeatureSetting],
    stores_dir: Path,
    workers: int | None = None,
) -> dict[FeatureSetting, Path]:
    """Make sure a current, intact store exists for every setting; build the missing, outdated or
    damaged ones."""
    stores_dir = Path(stores_dir)
    stores_dir.mkdir(parents=True, exist_ok=True)
    described = dataset.describe()
    paths = {setting: store_path(stores_dir, setting) for setting in settings}
    todo = [s for s in settings if not _reusable(paths[s], described["fingerprint"], s)]
    for setting in settings:
        if setting not in todo:
            tqdm.write(f"store {paths[setting].name}: up to date, reused")
    if todo:
        remove_stale_partials(stores_dir)
        _build(dataset, described, todo, [paths[s] for s in todo], workers)
    return paths


def _reusable(path: Path, fingerprint: str, setting: FeatureSetting) -> bool:
    """A finished, intact store of this format, for this setting, built from this exact dataset.
    A damaged or older one is rebuilt, with a warning."""
    if not path.is_file():
        return False
    try:
        store = FeatureStore(path)
        if store.dataset["fingerprint"] != fingerprint or store.setting != setting:
            return False
        store.verify(include_test=False)  # the search must not read test data; the report checks it
    except DamagedStoreError as err:
        log.warning("%s: damaged feature store (%s): rebuilding it", path, err.reason)
        return False
    except UserError as err:  # a store of an older format
        log.warning("%s: rebuilding it", err)
        return False
    return True


def _build(dataset: Dataset, described: dict, settings: list, paths: list[Path], workers: int | None) -> None:
    clips = dataset.all_clips()
    train_ids = {clip.clip_id for clip in dataset.splits["train"]}  # only training clips get copies
    writers: list[StoreWriter] = []
    try:
        for setting, path in zip(settings, paths):
            writers.append(StoreWriter(path, setting, dataset, described))
        with _results_in_order(clips, train_ids, plan_extraction(settings), workers) as results:
            progress = tqdm(zip(clips, results, strict=True), total=len(clips), desc=_describe(settings), unit="clip")
            for clip, result in progress:
                for writer in writers:
                    if isinstance(result, str):
                        writer.skip(clip, result)
                    else:
                        _write_clip(writer, clip, result)
        for writer in writers:
            writer.finish()
    except (OSError, RuntimeError) as err:  # h5py raises either for HDF5's failed writes
        if not no_space_left(err):
            raise
        needed = sum(writer.bytes_needed() for writer in writers) / 2**20  # from every clip's duration
        size = f"they need about {needed:.1f} MiB: clips x frames x bins x 2 bytes" if needed else "size not known yet"
        raise UserError(
            f"{paths[0].parent}: no space left on the device for the feature stores ({size}); "
            "free some space or use another folder"
        ) from err
    finally:
        for writer in writers:
            writer.abort()  # no-op for finished writers; removes the partial file of the others
    _report_skipped(writers[0].skipped)
    _report_long_clips(writers[0])


def _describe(settings: list[FeatureSetting]) -> str:
    copies = sum(augment.copies for augment in {setting.audio_augment for setting in settings})  # shared by settings
    return f"extracting {len(settings)} setting(s)" + (f", {copies} augmented copies per train clip" if copies else "")


def _write_clip(writer: StoreWriter, clip: Clip, result: ClipFeatures) -> None:
    name = writer.setting.original.name
    writer.add(clip, result.features[name], result.sums[name])
    for number, copy in enumerate(result.copies.get(writer.setting.audio_augment, []), start=1):
        writer.add_copy(clip, number, copy.features[name], copy.params)


@contextlib.contextmanager
def _results_in_order(
    clips: list[Clip], train_ids: set[str], plan: ExtractionPlan, workers: int | None
) -> Iterator[Iterator[ClipFeatures | str]]:
    """`_extract_one`'s result per clip, in clip order, computed in `workers` processes (all
    cores by default). Leaving the block early cancels the clips not yet started."""
    jobs = [(clip.path, clip.clip_id, clip.clip_id in train_ids) for clip in clips]
    workers = workers or os.cpu_count() or 1
    _use_plan(plan)
    if workers == 1:
        with threadpool_limits(limits=1):  # as in the workers (see `_init_worker`)
            yield map(_extract_one, jobs)
        return
    _extract_one(None)  # librosa imports its parts on first use: once here, and the forks inherit them
    # Forked, not spawned: a spawned worker would import librosa again (seconds). Stores are built
    # before Ray or any other thread starts.
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(plan,))
    try:
        yield pool.map(_extract_one, jobs, chunksize=CLIPS_PER_TASK)
    finally:
        pool.shutdown(cancel_futures=True)


CLIPS_PER_TASK = 2  # clips sent to a worker at once: fewer round trips, little memory held in flight

_PLAN = ExtractionPlan((), ())


def _use_plan(plan: ExtractionPlan) -> None:
    global _PLAN
    _PLAN = plan


def _init_worker(plan: ExtractionPlan) -> None:
    """A worker computes with one BLAS thread: the workers already fill the cores, and the mel
    product's rounding depends on the thread count, which must not change a store's values.

    SIGTERM back to its default: a forked worker inherits its parent's handlers (`ray.init` sets
    one), and a Python handler never runs in a worker blocked writing a result nobody reads, so
    the pool, ending its workers with SIGTERM when one of them dies, would wait for it forever."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _use_plan(plan)
    threadpool_limits(limits=1)


def _extract_one(job: tuple[Path, str, bool] | None) -> ClipFeatures | str:
    """The clip's features (and copies, for a training clip), or the reason it is skipped."""
    rates = _PLAN.sample_rates
    if job is None:  # warm-up: one second of noise
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


def _report_long_clips(writer: StoreWriter) -> None:
    """Warn about clips far longer than the median: each is stored with its own frames only, but
    may be a mistake (a whole album among 30 s clips) that every trial then holds in memory."""
    lengths = {clip_id: frames for split in SPLIT_NAMES for clip_id, _, frames in writer.rows[split]}
    median = float(np.median(list(lengths.values())))
    long = {clip_id: frames for clip_id, frames in lengths.items() if frames > LONG_CLIP_FACTOR * median}
    if long:
        per_second = writer.setting.frames_per_second
        listed = "; ".join(
            f"{clip} {frames / per_second:.1f} s ({frames / median:.1f}x)" for clip, frames in long.items()
        )
        log.warning(
            "%d clip(s) far longer than the median clip (%.1f s), stored whole: %s",
            len(long),
            median / per_second,
            listed,
        )


LONG_CLIP_FACTOR = 4  # a clip this many times the median length is worth a warning
