"""Jobs spread over forked worker processes, results back in job order: small results through
one pipe per worker, their arrays through shared memory slots.

Measured on 2 cores with 736 clips: multiprocessing.Pool's helper threads cost the parent 0.3-0.7 s
of CPU (the GIL handed between threads for every job), a pipe per worker read by the parent's one
thread costs 0.05 s; and pickling a clip's feature rows through a pipe cost the single writer about
1 ms per row of 330 KB (as much as computing a cheap setting), which a slot in shared memory
turns into one copy in the worker.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

ALIGNMENT = 64  # bytes: each array starts on a cache line


@dataclass(frozen=True)
class InSlot:
    """Where a worker left an array in its slot."""

    offset: int
    shape: tuple[int, ...]
    dtype: str


class SharedSlots:
    """`count` slots of `size` bytes in one anonymous shared mapping, created before the workers
    fork so that they see the same pages. Job `n` uses slot `n % count`: at most `count` jobs may
    be in flight, and job `n + count` may start only once the arrays of job `n` have been used."""

    def __init__(self, count: int, size: int):
        self.count, self.size = count, _aligned(size)
        self.buffer = mmap.mmap(-1, max(count * self.size, 1))  # pages are touched only when used

    def packer(self, job: int) -> Callable[[np.ndarray], Any]:
        """A function that places arrays one after another in the job's slot and returns where
        each lies; an array that no longer fits is returned as it is (it travels pickled, slower)."""
        used, slot = 0, job % self.count

        def place(array: np.ndarray) -> np.ndarray | InSlot:
            nonlocal used
            if used + array.nbytes > self.size:
                return array
            where = InSlot(used, array.shape, array.dtype.str)
            self._view(slot, where)[...] = array
            used = _aligned(used + array.nbytes)
            return where

        return place

    def unpacker(self, job: int) -> Callable[[Any], np.ndarray]:
        """A function that turns what `packer(job)` returned back into arrays: views into the
        job's slot, valid until job `job + count` starts."""
        return lambda item: self._view(job % self.count, item) if isinstance(item, InSlot) else item

    def _view(self, slot: int, where: InSlot) -> np.ndarray:
        offset = slot * self.size + where.offset
        return np.ndarray(where.shape, np.dtype(where.dtype), buffer=self.buffer, offset=offset)


def _aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


def map_in_order(
    function: Callable[[Any, int], Any],
    jobs: Sequence[Any],
    workers: int,
    in_flight: int,
    initializer: Callable[..., None],
    initargs: tuple = (),
) -> Iterator[Any]:
    """`function(job, number)` for each job, in `workers` forked processes (each first runs
    `initializer(*initargs)`), yielded in job order. Job `n + in_flight` is sent only once the
    caller has asked for the result after job `n`'s, so resources numbered `n % in_flight` (a
    shared slot) are free again. `in_flight` must be a multiple of `workers`: job n goes to worker
    `n % workers`, which returns its results in the order it got the jobs."""
    if in_flight % workers:
        raise ValueError(f"in_flight ({in_flight}) must be a multiple of workers ({workers})")
    context = multiprocessing.get_context("fork")  # workers inherit imports, warm caches, shared memory
    connections, processes = [], []
    try:
        for _ in range(workers):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_serve, args=(child_end, function, initializer, initargs), daemon=True)
            process.start()
            child_end.close()
            connections.append(parent_end)
            processes.append(process)
        for number in range(min(in_flight, len(jobs))):
            connections[number % workers].send((number, jobs[number]))
        for number in range(len(jobs)):
            yield _received(connections[number % workers], processes[number % workers])
            if number + in_flight < len(jobs):
                connections[number % workers].send((number + in_flight, jobs[number + in_flight]))
    finally:
        for connection in connections:
            with contextlib.suppress(OSError):  # a worker that died has closed its end
                connection.send(None)  # done (or stopping early): return after the current job
        for process in processes:
            process.join(timeout=WORKER_EXIT_SECONDS)
            process.kill()  # no-op for a worker that returned; stops one that is stuck


WORKER_EXIT_SECONDS = 5


def _serve(connection: Connection, function: Callable, initializer: Callable, initargs: tuple) -> None:
    initializer(*initargs)
    while (message := connection.recv()) is not None:
        number, job = message
        try:
            connection.send(function(job, number))
        except Exception as err:  # raised again in the parent, with this traceback
            connection.send(_Failed(err, traceback.format_exc()))


@dataclass(frozen=True)
class _Failed:
    error: Exception
    traceback: str


class WorkerError(RuntimeError):
    """A worker process failed: it raised (the cause carries its traceback) or died."""


def _received(connection: Connection, process: multiprocessing.Process) -> Any:
    try:
        result = connection.recv()
    except EOFError:
        process.join(timeout=WORKER_EXIT_SECONDS)
        raise WorkerError(f"worker process {process.pid} died (exit code {process.exitcode})") from None
    if isinstance(result, _Failed):
        raise WorkerError(f"worker process {process.pid} failed:\n{result.traceback}") from result.error
    return result
