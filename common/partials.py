"""Outputs written under a temporary name beside their final place and renamed into it when
complete, so an interrupted run (or a full disk) never leaves something a later run takes for
finished; the leftovers of processes that died are removed by the next run. `atomic_write` is the
one way the project writes a file so; `commit_partial` renames a partial file written otherwise
(an HDF5 store, kept open under its partial name while it grows)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

PARTIAL_MARK = ".partial-"  # `.<name>.partial-<pid>-<random>`: whose it is, and unique


def partial_path(path: Path) -> Path:
    """Where `path` (a file or a folder) is written until complete: beside it, hidden, named after
    this process, so a later run can tell a dead run's leftovers from a live one's."""
    path = Path(path)
    return path.with_name(f".{path.name}{PARTIAL_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """A file opened with `mode` ("w" or "wb") at `partial_path(path)`, put in place of `path` when
    the block ends: a reader sees the previous file or the new one whole, never part of one. An
    error in the block (or in `commit_partial`) removes the partial file and leaves `path` as it was."""
    path = Path(path)
    partial = partial_path(path)
    try:
        with open(partial, mode) as file:
            yield file
    except BaseException:  # KeyboardInterrupt too: no partial file is left behind
        partial.unlink(missing_ok=True)
        raise
    commit_partial(partial, path)


def commit_partial(partial: Path, path: Path) -> None:
    """Put the complete, closed file `partial` in place of `path`: its bytes on disk first (fsync),
    then one rename, so a crash leaves the previous file or this one, not an empty one. When that
    fails (a full disk can fail the fsync), `partial` is removed and `path` left as it was."""
    try:
        descriptor = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def remove_stale_partials(folder: Path) -> None:
    """Delete the partial files and folders in `folder` whose process no longer runs."""
    for partial in Path(folder).glob(f"*{PARTIAL_MARK}*") if Path(folder).is_dir() else ():
        pid = partial.name.rsplit(PARTIAL_MARK, 1)[1].split("-")[0]
        if pid.isdigit() and process_alive(int(pid)):
            continue
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)


def no_space_left(error: BaseException) -> bool:
    """Whether a write failed because the disk (or the user's quota) is full. HDF5 passes the
    system's message on in its text, not always in `errno`."""
    codes = (errno.ENOSPC, errno.EDQUOT)
    return getattr(error, "errno", None) in codes or any(os.strerror(code) in str(error) for code in codes)


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (0 and below name no one process: not alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, under another user
        return True
    return True
