"""Worker processes for the extraction: results in job order, shared slots reused only when
free, failures raised in the parent, workers stopped when the caller stops early."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch

from features.compute import ExtractionPlan
from features.extract import _init_extraction_worker
from features.parallel import SharedSlots, WorkerError, map_in_order

SLOTS = SharedSlots(4, 4096)  # module level: forked workers inherit it


def _nothing() -> None:
    pass


def _fill_slot(job: int, number: int) -> object:
    """An array full of the job's number, left in the job's slot (job 0 is slow, so the others
    run ahead as far as they are allowed to)."""
    if job == 0:
        time.sleep(0.2)
    return SLOTS.packer(number)(np.full(256, number, dtype=np.int64))


def test_results_come_in_job_order_and_slots_are_not_overwritten_before_use() -> None:
    for number, placed in enumerate(
        map_in_order(_fill_slot, list(range(40)), workers=2, in_flight=4, initializer=_nothing)
    ):
        time.sleep(0.005)  # the workers are faster than this reader
        assert (SLOTS.unpacker(number)(placed) == number).all()


def test_an_array_too_big_for_its_slot_travels_as_it_is() -> None:
    slots = SharedSlots(2, 1000)
    place = slots.packer(3)
    small, big, second = np.arange(100.0), np.arange(1000.0), np.arange(10.0)
    placed = [place(small), place(big), place(second)]
    assert placed[1] is big  # 8000 bytes: over the slot; the next one still fits after the first
    np.testing.assert_array_equal(slots.unpacker(3)(placed[0]), small)
    np.testing.assert_array_equal(slots.unpacker(3)(placed[2]), second)


def _fail_on_three(job: int, number: int) -> int:
    if job == 3:
        raise ValueError("bad job 3")
    return job


def test_an_error_in_a_worker_is_raised_in_the_parent_with_its_traceback() -> None:
    results = map_in_order(_fail_on_three, list(range(8)), workers=2, in_flight=2, initializer=_nothing)
    with pytest.raises(WorkerError, match="bad job 3") as raised:
        list(results)
    assert isinstance(raised.value.__cause__, ValueError)


def _die_on_two(job: int, number: int) -> int:
    if job == 2:
        os._exit(9)
    return job


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(WorkerError, match="died"):
        list(map_in_order(_die_on_two, list(range(8)), workers=2, in_flight=2, initializer=_nothing))


def _slow(job: int, number: int) -> int:
    time.sleep(0.05)
    return os.getpid()


def test_stopping_early_stops_the_workers() -> None:
    results = map_in_order(_slow, list(range(100)), workers=2, in_flight=4, initializer=_nothing)
    pids = {next(results), next(results)}
    start = time.monotonic()
    results.close()
    assert time.monotonic() - start < 2  # each finishes its current job and returns
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: gone


def _torch_half(job: int, number: int) -> float:
    return float(torch.ones(2**20).to(torch.float16)[-1])  # over torch's grain size: parallel if it may


def _timed_out(signum: int, frame: object) -> None:
    raise TimeoutError("the workers hang")


def test_workers_convert_with_torch_after_the_parent_used_its_thread_pool() -> None:
    """torch's OpenMP pool does not survive a fork: a worker that used it would hang forever.
    The extractor's worker initialiser keeps them off it."""
    torch.ones(2**22).to(torch.float16)  # large enough to start the parent's thread pool
    empty = (ExtractionPlan((), ()), SharedSlots(1, 64))
    previous = signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(60)
    try:
        results = map_in_order(
            _torch_half, [0, 1], workers=2, in_flight=2, initializer=_init_extraction_worker, initargs=empty
        )
        assert list(results) == [1.0, 1.0]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
