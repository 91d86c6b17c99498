"""Experiments whose storage is a URI (`--storage s3://bucket/genre-search`): Ray Tune writes its
trials, checkpoints and run state there itself; the search's own files (experiment.json, the space
copy, the Optuna study, the leaderboard, the best config, the wall times) live in a local folder
on the driver's machine and are uploaded beside Ray's; the report and a resume elsewhere fetch
what they read from there. Everything goes through pyarrow's filesystems, as Ray's storage does,
so any URI Ray takes works here (S3-compatible endpoints through AWS_ENDPOINT_URL)."""

from __future__ import annotations

from pathlib import PurePosixPath

import pyarrow.fs

from common.errors import UserError
from common.experiment import (
    BEST_CONFIG_FILE,
    LEADERBOARD_FILE,
    METADATA_FILE,
    REPORT_DIR,
    RUN_SECONDS_FILE,
    SPACE_COPY,
    STUDY_FILE,
    Experiment,
    is_uri,
)

# The search's own files: written on the driver's machine, uploaded at the start and end of a run.
OWN_FILES = (METADATA_FILE, SPACE_COPY, STUDY_FILE, LEADERBOARD_FILE, BEST_CONFIG_FILE, RUN_SECONDS_FILE)
STARTED_FILES = (METADATA_FILE, SPACE_COPY)  # what a run needs uploaded before its first trial


def upload(experiment: Experiment, names: tuple[str, ...] = OWN_FILES) -> None:
    """Copy the driver's own files (those that exist) to the experiment's URI; nothing for a folder."""
    if not is_uri(experiment.storage):
        return
    filesystem, root = pyarrow.fs.FileSystem.from_uri(experiment.uri)
    for name in names:
        if (experiment.local_dir / name).is_file():
            local = pyarrow.fs.LocalFileSystem()
            pyarrow.fs.copy_files(str(experiment.local_dir / name), f"{root}/{name}", local, filesystem)


def upload_report(experiment: Experiment) -> None:
    """Copy the experiment's report folder to its URI (`<uri>/report/`)."""
    if is_uri(experiment.storage):
        filesystem, root = pyarrow.fs.FileSystem.from_uri(experiment.uri)
        local = pyarrow.fs.LocalFileSystem()
        pyarrow.fs.copy_files(str(experiment.local_dir / REPORT_DIR), f"{root}/{REPORT_DIR}", local, filesystem)


def download(experiment: Experiment, own_files_only: bool = False) -> None:
    """Fetch the experiment's files from its URI into its local folder: Ray's trial files and run
    state (never its checkpoints or pickles: nothing here reads them), and the search's own files
    the local folder lacks (the driver's copy, where there is one, is the newer)."""
    filesystem, root = pyarrow.fs.FileSystem.from_uri(experiment.uri)
    found = filesystem.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
    for info in found:
        if info.type != pyarrow.fs.FileType.File:
            continue
        relative = PurePosixPath(info.path).relative_to(root)
        if ".." in relative.parts:
            raise UserError(f"{experiment.uri}: {info.path} is not a file inside the experiment")
        local = experiment.local_dir / relative
        own = str(relative) in OWN_FILES
        if (own and local.exists()) or (own_files_only and not own) or _not_read(relative):
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        pyarrow.fs.copy_files(info.path, str(local), filesystem, pyarrow.fs.LocalFileSystem())


def _not_read(relative: PurePosixPath) -> bool:
    return relative.suffix == ".pkl" or any(part.startswith("checkpoint_") for part in relative.parts)
