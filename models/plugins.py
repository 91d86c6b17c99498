"""A researcher's own architectures in Python files that a space file names (`plugins:`): each file
is imported at most once per process, under a module name made from its content hash, and registers
its architectures with `models.registry.register`. A file that is missing, fails to import,
registers a taken name or registers nothing is refused in one line naming it.

The search, the report and saved models record each file's path and SHA-256. A record says what
was used, it never chooses what runs: the report and `predict.py` import only files the user names
(`--plugin`) whose hash the record holds (`load_named`); a Ray worker loads the copy shipped with
the job's runtime environment (`shipped_folder`)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from models.registry import architecture_names, forget

# A shipped copy lives in a folder of this prefix and the file's hash, never as a top-level module:
# a plugin named `models.py` or `torch.py` cannot shadow a package on the worker.
SHIPPED_PREFIX = "genre_search_plugin_"


@dataclass(frozen=True)
class PluginFile:
    path: Path  # absolute
    sha256: str  # of the file's bytes

    def to_dict(self) -> dict[str, str]:
        """The plain record that experiment.json and model files keep."""
        return {"file": str(self.path), "sha256": self.sha256}

    @classmethod
    def from_dict(cls, record: Any, where: str) -> PluginFile:
        ok = isinstance(record, dict) and isinstance(record.get("file"), str) and isinstance(record.get("sha256"), str)
        if not ok:
            raise UserError(f"{where}: plugin record {record!r} is not {{file, sha256}}")
        return cls(Path(record["file"]), record["sha256"])

    @property
    def shipped_folder(self) -> str:
        """The folder (importable package name) that holds this file when shipped to Ray workers."""
        return f"{SHIPPED_PREFIX}{self.sha256[:16]}"


@dataclass(frozen=True)
class _Loaded:
    plugin: PluginFile
    architectures: tuple[str, ...]


_LOADED: dict[str, _Loaded] = {}  # sha256 -> the file loaded with that content, and what it registered


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_plugin(path: Path, expected_sha256: str | None = None) -> PluginFile:
    """Import `path` (once per process for a given content) and return its record; with
    `expected_sha256`, refuse a file whose content differs from the recorded one."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{path}: plugin file not found")
    plugin = PluginFile(path, file_sha256(path))
    if expected_sha256 is not None and plugin.sha256 != expected_sha256:
        raise UserError(
            f"{path}: plugin file has changed since it was recorded (sha256 {expected_sha256[:12]}…, "
            f"now {plugin.sha256[:12]}…): restore the file that was used"
        )
    if plugin.sha256 not in _LOADED:
        _LOADED[plugin.sha256] = _Loaded(plugin, _import(plugin))
    return plugin


def load_recorded(records: Iterable[Any], where: str) -> tuple[PluginFile, ...]:
    """The plugin files an experiment or a model file recorded, each loaded from its recorded path
    and checked against its recorded hash; `where` names the record for messages."""
    plugins = [PluginFile.from_dict(record, where) for record in records]
    try:
        return tuple(load_plugin(plugin.path, plugin.sha256) for plugin in plugins)
    except UserError as err:
        raise UserError(f"{where}: {err}") from err


def load_named(arch: str, records: Iterable[Any], files: Iterable[str | Path], where: str) -> tuple[PluginFile, ...]:
    """The plugin files the user named (`--plugin FILE`), for a record `where` (an experiment.json,
    a model file) whose network is `arch`. A record says what was used; it never chooses what
    runs: each named file is imported only when its SHA-256 is one the record holds (else one line
    naming both), and an `arch` no shipped or named file registers is refused naming the record."""
    recorded = [PluginFile.from_dict(record, where) for record in records]
    hashes, loaded = {plugin.sha256 for plugin in recorded}, []
    for file in files:
        path = Path(file).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"{path}: plugin file not found")
        digest = file_sha256(path)
        if digest not in hashes:
            raise UserError(
                f"{path}: plugin file has sha256 {digest[:12]}…, but {where} records {_listed(recorded)}: "
                "pass the file that was used"
            )
        loaded.append(load_plugin(path, digest))
    owner = plugin_of(arch)  # registered earlier in this process: by a file of the recorded content only
    if recorded and (arch not in architecture_names() or (owner is not None and owner.sha256 not in hashes)):
        raise UserError(
            f"{where}: architecture {arch!r} comes from a plugin file it records ({_listed(recorded)}): "
            "a record runs no code by itself; pass the file with --plugin FILE"
        )
    return tuple(loaded)


def recorded_among(files: Iterable[str | Path], records: Iterable[Any]) -> tuple[str, ...]:
    """Those of the user's named `files` whose content one of `records` holds (no file is imported):
    what to pass on for another experiment (a baseline, a compared one) that records its own."""
    hashes = {record.get("sha256") for record in records if isinstance(record, dict)}
    return tuple(str(file) for file in files if Path(file).expanduser().is_file() and file_sha256(file) in hashes)


def _listed(plugins: list[PluginFile]) -> str:
    return ", ".join(f"{plugin.path} (sha256 {plugin.sha256[:12]}…)" for plugin in plugins) or "no plugin file"


def load_shipped(plugins: Iterable[PluginFile]) -> None:
    """On a Ray worker: load each file from its copy shipped with the job's runtime environment
    (a folder on `sys.path`), else from its recorded path (a local Ray, or a shared filesystem)."""
    for plugin in plugins:
        if plugin.sha256 in _LOADED:
            continue
        shipped = [Path(entry) / plugin.shipped_folder / plugin.path.name for entry in sys.path if entry]
        found = next((path for path in [*shipped, plugin.path] if path.is_file()), None)
        if found is None:
            raise UserError(
                f"{plugin.path}: plugin file is not on this Ray worker (not shipped with the runtime "
                "environment, nor at its path)"
            )
        load_plugin(found, plugin.sha256)


def stage_for_shipping(plugins: Iterable[PluginFile], folder: Path) -> list[Path]:
    """Copy each file into `folder/<shipped_folder>/`; returns those folders, for Ray's
    `runtime_env={"py_modules": [...]}`, which uploads them and puts them on workers' `sys.path`."""
    staged = []
    for plugin in plugins:
        target = Path(folder) / plugin.shipped_folder
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plugin.path, target / plugin.path.name)
        staged.append(target)
    return staged


def plugin_of(arch: str) -> PluginFile | None:
    """The plugin file that registered `arch`; None for the shipped architectures."""
    return next((loaded.plugin for loaded in _LOADED.values() if arch in loaded.architectures), None)


def _import(plugin: PluginFile) -> tuple[str, ...]:
    """Execute the file as a module; returns the architectures it registered. A failure removes
    whatever it registered before failing, so nothing half-loaded stays in the registry."""
    stem = re.sub(r"\W", "_", plugin.path.stem)
    name = f"{SHIPPED_PREFIX}{plugin.sha256[:16]}_{stem}"
    spec = importlib.util.spec_from_file_location(name, plugin.path)
    if spec is None or spec.loader is None:
        raise UserError(f"{plugin.path}: not importable as Python (name it *.py)")
    module = importlib.util.module_from_spec(spec)
    before = set(architecture_names())
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    try:
        _in_time(lambda: spec.loader.exec_module(module))
    except Exception as err:  # anything the user's file raises: one line naming it
        sys.modules.pop(name, None)
        forget(set(architecture_names()) - before)
        raise UserError(f"{plugin.path}{_failure(err)}") from err
    added = tuple(sorted(set(architecture_names()) - before))
    if not added:
        raise UserError(f"{plugin.path}: registers no architecture (decorate a builder with models.registry.register)")
    return added


IMPORT_TIMEOUT_ENV = "GENRE_SEARCH_PLUGIN_TIMEOUT"  # seconds a plugin file may take to import (default 60)


def _in_time(run: Any) -> None:
    """Run a plugin file's import in a thread, waited for at most $GENRE_SEARCH_PLUGIN_TIMEOUT
    seconds: a file that hangs at import is refused instead of blocking without a word."""
    try:
        seconds = float(os.environ.get(IMPORT_TIMEOUT_ENV) or 60)
    except ValueError:
        raise UserError(
            f"${IMPORT_TIMEOUT_ENV}: {os.environ[IMPORT_TIMEOUT_ENV]!r} is not a number of seconds"
        ) from None
    raised: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catching(run, raised), name="plugin import", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():  # a thread cannot be stopped: the process ends with the error
        raise UserError(f"still importing after {seconds:g} s (${IMPORT_TIMEOUT_ENV} sets the limit): refused")
    if raised:
        raise raised[0]


def _catching(run: Any, raised: list[BaseException]) -> None:
    try:
        run()
    except BaseException as err:  # noqa: BLE001 - raised again in the importing thread
        raised.append(err)


def _failure(err: Exception) -> str:
    if isinstance(err, SyntaxError):
        return f":{err.lineno}: syntax error ({err.msg})"
    if isinstance(err, UserError):  # from register: a taken name, a params class that is not one
        return f": {err}"
    text = str(err).strip().splitlines()
    return f": fails to import ({type(err).__name__}: {text[0] if text else ''})"
