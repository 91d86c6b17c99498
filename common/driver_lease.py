"""One live driver per experiment folder: the search (new or resumed) and the report's retraining
hold a lease file there, refreshed every few seconds, and a second driver is refused naming the first.

The lease is plain JSON (host, pid, command, started, refreshed), so it works on shared storage
where a pid means nothing: a lease not refreshed for STALE_SECONDS (or, on the same host, whose
process is gone) is its dead driver's and is taken over. Taking it is atomic on any POSIX
filesystem, NFS included: a hard link that fails if the lease exists, and a stale one renamed aside
first (whoever renames it has it)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from common.errors import UserError
from common.experiment import LEASE_FILE
from common.partials import atomic_write, partial_path, process_alive

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0  # how often the holder writes its lease again
STALE_SECONDS = 6 * REFRESH_SECONDS  # a lease older than this is its dead (or hung) driver's
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Lease:
    host: str
    pid: int
    command: str  # run_search.py, report.py: which kind of driver holds it
    started: float  # seconds since the epoch
    refreshed: float
    token: str  # this hold's own: a driver refreshes and removes its own lease only

    def describe(self, folder: Path, now: float) -> str:
        since = time.strftime(TIME_FORMAT, time.localtime(self.started))
        return (
            f"{folder} is in use by the driver pid {self.pid} on host {self.host} ({self.command}) since {since} "
            f"(lease refreshed {max(0, round(now - self.refreshed))} s ago)"
        )

    def stale(self, now: float) -> bool:
        """Not refreshed for STALE_SECONDS, or held by a process of this host that is gone."""
        gone = self.host == socket.gethostname() and not process_alive(self.pid)
        return now - self.refreshed > STALE_SECONDS or gone


class DriverLease:
    """`with DriverLease(folder):` holds the folder's lease (making the folder if needed) or raises
    UserError naming the driver that holds it; released at any end (error, Ctrl-C, SIGTERM)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LEASE_FILE
        self.created_folder = False  # made by this driver: removed again if it is left empty
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = time.time()
        self.lease = Lease(socket.gethostname(), os.getpid(), Path(sys.argv[0]).name, now, now, uuid.uuid4().hex)

    def __enter__(self) -> DriverLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        self.created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # a lease released or set aside meanwhile: look again
            if self._create():
                self._thread = threading.Thread(target=self._keep_fresh, name="driver-lease", daemon=True)
                self._thread.start()
                return
            held, now = read_lease(self.path), time.time()
            if held is not None and not held.stale(now):
                self._remove_folder_if_empty()
                raise UserError(f"{held.describe(self.folder, now)}; wait for it or stop it")
            if held is not None and self._set_aside(held):
                print(f"{held.describe(self.folder, now)}: that driver is gone; taking its lease over")
        raise UserError(f"{self.path}: other drivers keep taking this lease; try again")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._ours():
            self.path.unlink(missing_ok=True)
        self._remove_folder_if_empty()

    def _create(self) -> bool:
        """Write the lease whole beside its place, then link it there: fails if a lease is there."""
        draft = partial_path(self.path)
        draft.write_text(json.dumps(asdict(self.lease)))
        try:
            os.link(draft, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            draft.unlink()

    def _set_aside(self, stale: Lease) -> bool:
        """Rename the stale lease aside; the one renaming it takes it. Another driver's fresh lease,
        set there after `stale` was read, is put back."""
        aside = partial_path(self.path)
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        moved = read_lease(aside)
        if moved is not None and moved.token != stale.token:
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        aside.unlink()
        return moved is not None and moved.token == stale.token

    def _keep_fresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                if not self._ours():
                    log.warning("%s: another driver took the lease of this one", self.folder)
                    return
                with atomic_write(self.path) as file:
                    file.write(json.dumps({**asdict(self.lease), "refreshed": time.time()}))
            except OSError as err:  # a storage hiccup: the next refresh tries again
                log.warning("%s: could not refresh the lease (%s)", self.path, err)

    def _ours(self) -> bool:
        held = read_lease(self.path)
        return held is not None and held.token == self.lease.token

    def _remove_folder_if_empty(self) -> None:
        if self.created_folder and self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def refuse_if_held(folder: Path) -> None:
    """Raise the one-line refusal when a live driver holds `folder`'s lease."""
    held, now = read_lease(Path(folder) / LEASE_FILE), time.time()
    if held is not None and not held.stale(now):
        raise UserError(f"{held.describe(Path(folder), now)}; wait for it or stop it")


def read_lease(path: Path) -> Lease | None:
    """The lease in `path`; None when there is none. An unreadable one (a crafted or truncated file)
    names no driver that could refresh it: it reads as one long stale."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        raw = json.loads(text)
        return Lease(
            str(raw["host"]),
            int(raw["pid"]),
            str(raw["command"]),
            float(raw["started"]),
            float(raw["refreshed"]),
            str(raw["token"]),
        )
    except (ValueError, TypeError, KeyError):
        return Lease("?", 0, "?", 0.0, 0.0, "")
