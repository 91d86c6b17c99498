"""An experiment's life around its search: a new one recorded before Ray starts (and removed if its
start fails), a resumed one read back as it started (space, plugins, data), one whose first start
was cut short started again, its wall time recorded as it runs, trial folders set aside, and
Ctrl-C or SIGTERM ending it the same way (results kept, resumable)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import experiment as experiments
from common import remote, upstream
from common.errors import UserError
from features.dataset import Dataset
from features.layouts import open_recorded
from features.settings import FeatureSetting
from models.plugins import load_recorded
from search.space import Space, load_space

log = logging.getLogger(__name__)

WALL_CLOCK_SECONDS = 2.0  # how often a running search records its wall time (a killed run keeps it)


def record_new(
    experiment: experiments.Experiment, space: Space, dataset: Dataset, stores: dict[FeatureSetting, Path]
) -> None:
    """Create the new experiment's folder, saying what it runs (experiment.json, the space file's
    copy), and upload those files where the storage is a URI."""
    search = dataclasses.asdict(space.search)
    plugins = [plugin.to_dict() for plugin in space.plugins]
    experiments.write_metadata(experiment, space.path, search, dataset.describe(), stores, plugins)
    remote.upload(experiment, remote.STARTED_FILES)


@contextmanager
def removed_if_start_fails(experiment: experiments.Experiment, created: bool) -> Iterator[None]:
    """A new search whose start fails (Ray unreachable, Ctrl-C) leaves no folder behind (`created`:
    this run made it), so the same command can simply be run again."""
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(experiment.local_dir, ignore_errors=True)
        raise


def located_for_resume(storage: str | None, name: str | None) -> experiments.Experiment:
    """The experiment to resume; resumed on another machine than the driver's, its own files are
    downloaded from the URI first."""
    if storage and experiments.is_uri(storage) and name:
        local = experiments.local_folder(storage, name)
        remote.download(experiments.Experiment(storage, name, local), own_files_only=True)
    return experiments.locate(storage, name, resume=True)


def recorded_space(experiment: experiments.Experiment) -> Space:
    """The space and search settings the experiment started with (its copy of the space file), its
    plugin files loaded as recorded, not a file edited since."""
    metadata = experiments.read_metadata(experiment.local_dir)
    load_recorded(metadata.get("plugins") or [], str(experiment.local_dir / experiments.METADATA_FILE))
    # The copy's plugin paths are relative to the original space file's folder.
    plugins_dir = Path(metadata["space_file"]).parent
    check_space_copy(experiment.local_dir, metadata)
    return load_space(experiment.local_dir / experiments.SPACE_COPY, plugins_dir).with_search(**metadata["search"])


def check_space_copy(local_dir: Path, metadata: dict[str, Any]) -> None:
    """The space copy is the one the search started with (its sha256 in experiment.json): an
    edited copy would give a resumed search other choices than its trials were drawn from."""
    copy = Path(local_dir) / experiments.SPACE_COPY
    recorded = metadata.get(experiments.SPACE_HASH_KEY)
    if recorded is None:
        log.warning("%s records no sha256 of %s (an older experiment): used unchecked", local_dir, copy.name)
        return
    now = experiments.file_sha256(copy)
    if now != recorded:
        raise UserError(
            f"{copy} was edited since the search started (sha256 {now[:12]}, {experiments.METADATA_FILE} "
            f"records {recorded[:12]}): put it back as it was, or start a new search with the edited space"
        )


def recorded_dataset(experiment: experiments.Experiment, data: str | None) -> Dataset:
    """The dataset the experiment ran on, unchanged since (its fingerprint), not whatever data is
    the default now; `data`, when given, must be that dataset."""
    recorded = experiments.recorded_dataset(experiment.local_dir)
    ran_on = Path(recorded.described.get("source", {}).get("manifest") or recorded.root)
    where = f"experiment {experiment.local_dir} ran on {ran_on}"
    if data and Path(data).expanduser().resolve() != ran_on:
        raise UserError(f"--data {data} is not the data the search ran on: {where} (resume without --data)")
    if not ran_on.exists():
        raise UserError(f"{where}, which is gone: put the data back there to resume")
    dataset = open_recorded(recorded.described)
    now = dataset.fingerprint()
    if now != recorded.fingerprint:
        raise UserError(
            f"{where} (fingerprint {recorded.fingerprint}); it has changed since (now {now}): "
            "resuming would score trials on other data; start a new search instead"
        )
    return dataset


def start_again(experiment: experiments.Experiment) -> None:
    """A driver killed before Ray's first snapshot of the run left nothing to restore (no trial
    runs before that snapshot): the search starts over. Trial folders there mean another cause."""
    if experiments.trial_folders(experiment.local_dir):
        raise UserError(
            f"experiment {experiment.local_dir} has trial folders but no saved Ray Tune run "
            f"({experiments.TUNER_FILE}, {upstream.RUN_STATE_PATTERN}) to resume: start a new search"
        )
    print(f"experiment {experiment.name}: its first start was cut short; starting its search again")
    experiments.clear_run_state(experiment.local_dir)


@contextmanager
def wall_clock(local_dir: Path) -> Iterator[None]:
    """Record this run's wall time while it runs: a killed run's time counts."""
    run = experiments.start_run(local_dir)
    started = time.perf_counter()
    done = threading.Event()

    def record() -> None:
        while not done.wait(WALL_CLOCK_SECONDS):
            experiments.record_wall_time(local_dir, run, time.perf_counter() - started)

    recorder = threading.Thread(target=record, name="wall-clock", daemon=True)
    recorder.start()
    try:
        yield
    finally:
        done.set()
        recorder.join()
        experiments.record_wall_time(local_dir, run, time.perf_counter() - started)


def set_orphans_aside(local_dir: Path, results: Any) -> None:
    """A driver killed mid-search leaves the folders of trials it started after Ray's last snapshot
    of the run: Ray's restored run knows nothing of them (their Optuna trials are closed as failed
    and other trials run instead), so they are moved out of the experiment's trials."""
    known = {Path(result.path).name for result in results}
    orphans = [folder for folder in experiments.trial_folders(local_dir) if folder.name not in known]
    if not orphans:
        return
    aside = local_dir / experiments.ORPHANS_DIR
    aside.mkdir(exist_ok=True)
    for folder in orphans:
        folder.rename(aside / folder.name)
    print(f"{len(orphans)} trial folder(s) of an interrupted run that Ray did not resume: moved to {aside}")


def resume_command(experiment: experiments.Experiment) -> str:
    """The command that continues this search."""
    storage = "" if experiment.storage == str(experiments.DEFAULT_STORAGE) else f" --storage {experiment.storage}"
    return f"python run_search.py --resume --name {experiment.name}{storage}"


# --- Ctrl-C and SIGTERM --------------------------------------------------------------------------
# SIGTERM is what `kill`, systemd, Slurm and Kubernetes send: it ends the search as Ctrl-C does.
# Both come to one handler here: inside `Tuner.fit` the first one asks Ray Tune for its own graceful
# stop (the run's state saved, results returned), a second one, or any outside `fit`, raises
# KeyboardInterrupt. Ray Tune's own SIGINT handler is turned off so the driver always knows.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stop: dict[str, Any] = {"signal": None, "in_fit": False}


def stop_signal() -> int | None:
    """The first Ctrl-C (SIGINT) or SIGTERM this driver received; None if none."""
    return _stop["signal"]


def handle_stop_signals() -> None:
    """Install the handler (again after `ray.init`, which sets a SIGTERM handler of its own)."""
    if threading.current_thread() is threading.main_thread():
        for number in STOP_SIGNALS:
            signal.signal(number, _on_stop_signal)


def _on_stop_signal(number: int, frame: Any) -> None:
    first = _stop["signal"] is None
    _stop["signal"] = _stop["signal"] or number
    stop_fit = upstream.tune_stop_handler() if _stop["in_fit"] else None
    if not first or stop_fit is None:
        raise KeyboardInterrupt
    stop_fit(number, frame)


@contextmanager
def stoppable_fit() -> Iterator[None]:
    """Around `Tuner.fit()`: Ctrl-C and SIGTERM stop it gracefully (see above)."""
    os.environ[upstream.TUNE_SIGINT_SWITCH] = "1"
    handle_stop_signals()
    _stop["in_fit"] = True
    try:
        yield
    finally:
        _stop["in_fit"] = False


def interrupted_line(number: int, resume: str | None) -> str:
    """The one line an interrupted search ends with, the same wherever it is interrupted."""
    how = "SIGTERM" if number == signal.SIGTERM else "Ctrl-C"
    if resume is None:
        return f"search interrupted ({how}) before it started"
    return f"search interrupted ({how}); resume with: {resume}"
