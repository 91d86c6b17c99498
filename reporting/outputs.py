"""A report's files written into a hidden folder beside their destination and moved in only when all
are complete, the completion mark (report.json) last: a killed report leaves the previous one whole.

A folder with the report's other files but not its mark (a report killed while moving them in, or
one from before this rule) is incomplete: `reporting.baselines.report_complete` says so, and the
report that needs it makes it again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from common.partials import PARTIAL_MARK, partial_path, process_alive


def start(out_dir: Path) -> Path:
    """A new, empty staging folder for `out_dir`; the staging folders of dead reports are removed
    (only those of `out_dir`: a folder chosen with --out may hold other files)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.parent.glob(f".{out_dir.name}{PARTIAL_MARK}*"):
        pid = leftover.name.rsplit(PARTIAL_MARK, 1)[1].split("-")[0]
        if leftover.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
    staging = partial_path(out_dir)
    staging.mkdir()
    return staging


def commit(staging: Path, out_dir: Path, mark: str) -> None:
    """Move every file of `staging` into `out_dir`, replacing files of the same name: first the old
    mark goes (from here on the folder reads as incomplete), then the files, the new mark last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / mark).unlink(missing_ok=True)
    for path in sorted(staging.iterdir(), key=lambda item: item.name == mark):
        os.replace(path, out_dir / path.name)
    staging.rmdir()


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
