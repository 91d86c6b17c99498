"""Tiny datasets made by the tests themselves (no GTZAN on any machine here): GTZAN's layout with
split lists, class folders without them, and manifests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

# Ray exports metrics every second, not every 10 s, in every test's searches (subprocesses too): a
# search's driver waits for one export of its last values before it exits (search.metrics.flush_search).
os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")
# One torch (OpenMP) thread per process, in this one and every command it starts: the tests' models
# are tiny, and test processes side by side (`-n 2`) with a thread per core each only contend.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The searches' local Rays start without Ray's dashboard (2.4 s less each, no dashboard processes
# beside the trials); the tests that look at the dashboard turn it back on.
os.environ.setdefault("GENRE_SEARCH_RAY_DASHBOARD", "0")

RATE = 22050


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules holding end-to-end (`slow`) tests first, each module's tests in their own order:
    with `-n N`, pytest-xdist hands the modules out in this order (pyproject.toml), so the long ones
    start first and the short ones fill in at the end."""
    slow = {_module(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: _module(item) not in slow)  # a stable sort: modules stay whole


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.fixture(scope="session")
def ray_token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Ray token file for the whole session (a process keeps the first token it reads, so a
    later test's own file would not match its new Ray's), written before any Ray starts: `ray.init`
    refuses a token path whose file is missing, and not every test starts Ray the way a search does."""
    path = tmp_path_factory.getbasetemp() / "ray-auth-token"
    if not path.exists():
        path.write_text(secrets.token_hex(32))  # as Ray makes one: 256 random bits in hex
        path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def one_ray_token_and_no_ray_left(ray_token_file: Path, monkeypatch: pytest.MonkeyPatch):
    """Every test's Ray uses the session's token file, and a test that started Ray in this process
    leaves none running for the next (whose `ray.init` would fail)."""
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(ray_token_file))
    yield
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()


def write_tone_clip(
    path: Path, seconds: float, pitch_hz: float, seed: int, rate: int = RATE, channels: int = 1, subtype: str = "PCM_16"
) -> None:
    """A noisy tone: cheap audio whose spectrum depends on its class (format from the suffix)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.4 * np.sin(2 * np.pi * pitch_hz * t) + 0.05 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.repeat(audio[:, None], channels, axis=1) if channels > 1 else audio
    soundfile.write(path, frames.astype(np.float32), rate, subtype=subtype)


def make_layout(
    root: Path,
    genres: tuple[str, ...] = ("blues", "rock", "ska"),
    per_split: tuple[int, int, int] = (3, 2, 2),
    seconds: float = 2.0,
    split_lists: bool = True,
) -> dict[str, list[str]]:
    """Write clips and (optionally) split lists; returns the listed names per split."""
    listed: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    index = 0
    for label, genre in enumerate(genres):
        for split, count in zip(listed, per_split):
            for _ in range(count):
                name = f"{genre}/{genre}.{index:05d}.wav"
                write_tone_clip(root / name, seconds, 220.0 * (label + 1), seed=index)
                listed[split].append(name)
                index += 1
    if split_lists:
        for split, names in listed.items():
            (root / f"{split}_filtered.txt").write_text("\n".join(names) + "\n")
    return listed


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    make_layout(root)
    return root


def make_class_folders(
    root: Path,
    classes: tuple[str, ...] = ("bird", "cat", "dog"),
    per_class: int = 10,
    seconds: float = 1.0,
    name: str = "{label}.{index:03d}.wav",
) -> dict[str, list[str]]:
    """Class sub-folders of audio, no split lists; `name` is formatted with the class (`label`),
    the clip's number within it (`index`) and overall (`number`). Returns each class's file names."""
    files: dict[str, list[str]] = {}
    number = 0
    for label_index, label in enumerate(classes):
        for index in range(per_class):
            file_name = name.format(label=label, index=index, number=number)
            write_tone_clip(root / label / file_name, seconds, 220.0 * (label_index + 1), seed=number)
            files.setdefault(label, []).append(file_name)
            number += 1
    return files


def make_manifest(path: Path, rows: list[dict[str, object]]) -> Path:
    """A CSV manifest of `rows` (column name -> value), written with pandas."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def wait_for(condition: Callable[[], bool], driver: subprocess.Popen, seconds: float = 240) -> None:
    """Until `condition()` holds, while `driver` (a search started by the test) still runs."""
    deadline = time.time() + seconds
    while not condition():
        assert driver.poll() is None, f"the driver ended early (exit code {driver.returncode})"
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models: on a busy machine, torch's threads spin waiting
    on each other (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
