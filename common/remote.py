"""Experiments whose storage is a URI (`--storage s3://bucket/genre-search`): Ray Tune writes its
trials, checkpoints and run state there itself; the search's own files (experiment.json, the space
copy, the Optuna study, the leaderboard, the best config, the wall times) live in a local folder
on the driver's machine and are uploaded beside Ray's; the report and a resume elsewhere fetch
what they read from there. Everything goes through pyarrow's filesystems, as Ray's storage does,
so any URI Ray takes works here (S3-compatible endpoints through AWS_ENDPOINT_URL). A storage that
cannot be reached or read is one line naming the URI and the cause (`check_storage`, `reaching`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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

# pyarrow's OSError texts (the AWS SDK's error names, curl's) and what each means for the user.
CAUSES = (
    (
        ("NETWORK_CONNECTION", "Could not connect", "Couldn't resolve", "Connection refused", "Timeout was reached"),
        "the storage endpoint does not answer (AWS_ENDPOINT_URL or the URI's endpoint_override)",
    ),
    (
        ("INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "ACCESS_DENIED", "EXPIRED_TOKEN", "AccessDenied"),
        "access denied: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE)",
    ),
    (("NO_SUCH_BUCKET", "NoSuchBucket"), "no such bucket"),
)
BUCKET_STORES = ("s3", "gcs")  # filesystems whose first path part is a bucket that must exist


def cause(error: OSError) -> str:
    """pyarrow's error as one line: what it means, then its own details (curl's, the SDK's)."""
    text = " ".join(str(error).split())
    detail = text.split("Details: ", 1)[-1] if "Details: " in text else text
    for markers, meaning in CAUSES:
        if any(marker in text for marker in markers):
            return f"{meaning}: {detail}"
    return text


@contextmanager
def reaching(uri: str) -> Iterator[None]:
    """pyarrow's errors inside the block as a `UserError` naming `uri` and the cause."""
    try:
        yield
    except OSError as err:
        raise UserError(f"storage {uri}: {cause(err)}") from err


def check_storage(experiment: Experiment) -> None:
    """For a URI: list the experiment's prefix (reaching the endpoint, with the credentials), and
    see that its bucket exists, before anything is built or started; nothing for a folder."""
    if not is_uri(experiment.storage):
        return
    with reaching(experiment.uri):
        filesystem, root = pyarrow.fs.FileSystem.from_uri(experiment.uri)
        filesystem.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
        if filesystem.type_name not in BUCKET_STORES:
            return
        bucket = root.split("/", 1)[0]
        missing = filesystem.get_file_info(bucket).type == pyarrow.fs.FileType.NotFound
    if missing:
        raise UserError(f"storage {experiment.uri}: no such bucket {bucket!r} (create it first)")


def upload(experiment: Experiment, names: tuple[str, ...] = OWN_FILES) -> None:
    """Copy the driver's own files (those that exist) to the experiment's URI; nothing for a folder."""
    if not is_uri(experiment.storage):
        return
    with reaching(experiment.uri):
        filesystem, root = pyarrow.fs.FileSystem.from_uri(experiment.uri)
        for name in names:
            if (experiment.local_dir / name).is_file():
                local = pyarrow.fs.LocalFileSystem()
                pyarrow.fs.copy_files(str(experiment.local_dir / name), f"{root}/{name}", local, filesystem)


def upload_report(experiment: Experiment) -> None:
    """Copy the experiment's report folder to its URI (`<uri>/report/`)."""
    if not is_uri(experiment.storage):
        return
    with reaching(experiment.uri):
        filesystem, root = pyarrow.fs.FileSystem.from_uri(experiment.uri)
        local = pyarrow.fs.LocalFileSystem()
        pyarrow.fs.copy_files(str(experiment.local_dir / REPORT_DIR), f"{root}/{REPORT_DIR}", local, filesystem)


def download(experiment: Experiment, own_files_only: bool = False) -> None:
    """Fetch the experiment's files from its URI into its local folder: Ray's trial files and run
    state (never its checkpoints or pickles: nothing here reads them), and the search's own files
    the local folder lacks (the driver's copy, where there is one, is the newer)."""
    with reaching(experiment.uri):
        _download(experiment, own_files_only)


def _download(experiment: Experiment, own_files_only: bool) -> None:
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
