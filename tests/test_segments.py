"""Batches cropped from the frames as stored (float16, shared, normalised batch by batch) are exactly
the batches of the whole split normalised into float32 first, as every trial did before, with
short clips padded and augmented copies; and the stored frames are used in place, never copied."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import ray
import torch

from features.arrays import STD_FLOOR, FitData, SplitArrays, TrainCopies
from features.settings import FeatureSetting
from training import TrialConfig, fit
from training.segments import (
    eval_segments,
    gather,
    normalised_split,
    prepare_split,
    prepare_train,
    random_crops,
    with_copies,
)

BINS, SEGMENT = 12, 30
CPU = torch.device("cpu")


def random_split(rng: np.random.Generator, lengths: list[int], labels: list[int]) -> SplitArrays:
    """Clips on a raw (un-normalised) scale, float16 as a store holds them, read-only as Ray's object
    store hands them to a trial."""
    clips = [(5.0 + 3.0 * rng.normal(size=(BINS, n))).astype(np.float16) for n in lengths]
    split = SplitArrays.of_clips(clips, labels, [f"c{i}" for i in range(len(lengths))])
    split.features.setflags(write=False)
    return split


@pytest.fixture(scope="module")
def data() -> tuple[SplitArrays, TrainCopies, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    # Short clips (< SEGMENT frames) first, in the middle and last: the last one's padding runs
    # past the end of all the frames.
    train = random_split(rng, [12, 80, 45, 29, 31, 100, 7], [0, 1, 2, 3, 0, 1, 2])
    source = np.repeat(np.arange(7), 2)
    copy_lengths = [int(n) for n in rng.integers(5, 90, size=14)]
    copies = TrainCopies(random_split(rng, copy_lengths, train.labels[source].tolist()), source)
    mean = rng.normal(5.0, 1.0, size=BINS).astype(np.float32)
    std = rng.uniform(0.5, 4.0, size=BINS).astype(np.float32)
    std[3] = 0.0  # a constant bin: floored, as the store's statistics can be
    return train, copies, mean, std


def reference_segment(split: SplitArrays, row: int, start: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """One segment the plain way: the whole clip normalised in float32, padded with 0s after it."""
    clip = (split.clip(row).astype(np.float32) - mean[:, None]) / np.maximum(std, STD_FLOOR)[:, None]
    padded = np.concatenate([clip, np.zeros((BINS, SEGMENT), dtype=np.float32)], axis=1)
    return padded[:, start : start + SEGMENT]


def test_batches_from_stored_frames_equal_those_of_the_split_normalised_first(data):
    train, copies, mean, std = data
    new = prepare_train(train, copies, mean, std, CPU, SEGMENT)
    assert new.stats is not None and new.frames.dtype == torch.float16  # the per-batch path
    # The whole split normalised into float32 first (the data-on-GPU path, and every trial's way
    # before), here on the CPU, the copies joined after the originals.
    originals = normalised_split(train, mean, std, CPU, SEGMENT, CPU)
    old = with_copies(originals, normalised_split(copies.arrays, mean, std, CPU, SEGMENT, CPU), copies.source)
    assert old.frames.dtype == torch.float32 and old.copies is None
    rows, starts = random_crops(new.lengths, SEGMENT, 40, torch.Generator().manual_seed(0), new.variants)
    assert {int(r) for r in rows} == set(range(7 + 14))  # every original and copy, short ones included
    for first in range(0, len(rows), 16):
        chosen = slice(first, first + 16)
        batch = gather(new, rows[chosen], starts[chosen], SEGMENT)
        assert batch.dtype == torch.float32 and torch.equal(batch, gather(old, rows[chosen], starts[chosen], SEGMENT))
    for row, start in zip(rows[:50].tolist(), starts[:50].tolist()):
        stored, index = (train, row) if row < 7 else (copies.arrays, row - 7)
        expected = reference_segment(stored, index, start, mean, std)
        np.testing.assert_array_equal(gather(new, torch.tensor([row]), torch.tensor([start]), SEGMENT)[0], expected)


def test_evaluation_segments_equal_those_of_the_split_normalised_first(data):
    train, _, mean, std = data
    new, old = prepare_split(train, mean, std, CPU, SEGMENT), normalised_split(train, mean, std, CPU, SEGMENT, CPU)
    clips, starts = (torch.as_tensor(a) for a in eval_segments(new.lengths, SEGMENT, 0.5))
    assert torch.equal(gather(new, clips, starts, SEGMENT), gather(old, clips, starts, SEGMENT))


def test_stored_frames_are_used_in_place_read_only_and_never_written(data):
    train, copies, mean, std = data
    before = (train.features.copy(), copies.arrays.features.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's warning about non-writable arrays included
        split = prepare_train(train, copies, mean, std, CPU, SEGMENT)
        rows, starts = random_crops(split.lengths, SEGMENT, 8, torch.Generator().manual_seed(1), split.variants)
        batch = gather(split, rows, starts, SEGMENT)
    assert split.frames.data_ptr() == train.features.ctypes.data  # the originals' frames, not a copy
    assert split.copies.data_ptr() == copies.arrays.features.ctypes.data  # the copies', not joined to them
    batch += 1.0  # a batch is the caller's own memory
    np.testing.assert_array_equal(train.features, before[0])
    np.testing.assert_array_equal(copies.arrays.features, before[1])


@ray.remote(num_cpus=1, max_calls=1)
def _trial_on_shared_frames(boxed: list[ray.ObjectRef]) -> dict[str, bool | float]:
    """What a search trial does with its data (search/trainable.py): `ray.get`, then `fit()`."""
    data: FitData = ray.get(boxed[0])
    split = prepare_train(data.train, data.train_copies, data.mean, data.std, CPU, SEGMENT)
    config = {"features": data.setting.to_dict(), "model": {"arch": "cnn1d", "params": {"depth": 2, "channels": 8}}}
    config["training"] = {"segment_seconds": SEGMENT / data.setting.frames_per_second, "batch_size": 4, "max_epochs": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's warning about non-writable arrays included
        history = fit(TrialConfig.from_dict(config), data, device="cpu").history
    return {
        "read_only": not data.train.features.flags.writeable and not data.train_copies.arrays.features.flags.writeable,
        "in_place": split.frames.data_ptr() == data.train.features.ctypes.data
        and split.copies.data_ptr() == data.train_copies.arrays.features.ctypes.data,
        "loss": history[-1].train_loss,
    }


@pytest.mark.slow
def test_a_ray_trial_trains_on_the_object_stores_frames_in_place(data):
    """In a Ray worker the arrays are read-only views of the node's object store; a trial crops its
    batches from them where they are, with no copy and no warning."""
    train, copies, mean, std = data
    fit_data = FitData(train, train, mean, std, tuple("abcd"), FeatureSetting(n_bins=BINS), copies)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        result = ray.get(_trial_on_shared_frames.remote([ray.put(fit_data)]))
    finally:
        ray.shutdown()
    assert result["read_only"] and result["in_place"] and np.isfinite(result["loss"])
