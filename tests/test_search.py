"""The search: space files (every error before Ray starts), a real tiny search end to end with ASHA,
resume after the driver is killed, and proof that the test split is never read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import ray

from common.errors import UserError
from features.store import FeatureStore
from search.space import load_space, parse_space
from search.space_file import SPACES_DIR
from tests.conftest import make_layout

REPO = Path(__file__).resolve().parent.parent
TINY_SPACE = """
features: {kind: mel, mel: {n_bins: 32}FEATURES}
model: {arch: cnn2d, cnn2d: {depth: 2, channels: {choice: [4, 8]}, dropout: {uniform: [0.0, 0.3]}}}
optimizer: {name: {choice: [adam, sgd]}, lr: {loguniform: [1.0e-3, 3.0e-2]}, sgd: {momentum: 0.9}}
schedule: {name: none}
training: {segment_seconds: 1.0, segments_per_clip: 2, batch_size: 4}
search: {num_samples: NUM, max_epochs: EPOCHS, grace_period: 1, reduction_factor: 2, cpus_per_trial: 1}
"""


# Audio augmentation as a search dimension: trials with and without augmented copies.
AUGMENT = ", audio_augment: {copies: {choice: [0, 1]}, pitch_shift: [-2, 2], time_stretch: [0.9, 1.1]}"


def tiny_space(folder: Path, num_samples: int, max_epochs: int, features: str = "") -> Path:
    path = folder / "tiny.yaml"
    text = TINY_SPACE.replace("NUM", str(num_samples)).replace("EPOCHS", str(max_epochs))
    path.write_text(text.replace("FEATURES", features))
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search") / "data"
    make_layout(root, genres=("a", "b", "c"), per_split=(4, 2, 2), seconds=3.0)
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.mark.parametrize("path", sorted(SPACES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_space_parses(path: Path) -> None:
    space = load_space(path.name)
    assert space.feature_settings()
    assert space.search.num_samples >= 1


def test_every_key_of_shipped_spaces_is_commented() -> None:
    for path in SPACES_DIR.glob("*.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#") and ":" in line:
                assert "#" in line, f"{path.name}:{number} has no comment: {line.strip()}"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"model": {"arch": "cnn2d", "cnn2d": {"depht": 3}}}, "depht"),
        ({"optimizer": {"momentun": 0.9}}, "optimizer.momentun"),
        ({"traning": {}}, "traning"),
        ({"training": {"batch_size": "large"}}, "training.batch_size"),
        ({"optimizer": {"name": {"choice": []}}}, "optimizer.name"),
        ({"optimizer": {"lr": {"loguniform": [0.1, 0.001]}}}, "optimizer.lr"),
        ({"optimizer": {"name": "adam", "sgd": {"momentum": 0.9}}}, "optimizer.sgd"),
        ({"model": {"arch": {"choice": ["cnn2d"]}, "resnet": {"depth": 2}}}, "model.resnet"),
        ({"features": {"kind": "cqt"}}, "features.kind"),
        ({"features": {"sample_rate": 12345}}, "features.sample_rate"),
        ({"features": {"hop_length": {"uniform": [256, 512]}}}, "features.hop_length"),
        ({"search": {"num_samples": 0}}, "search.num_samples"),
        ({"optimizer": {"lr": {"normal": [0, 1]}}}, "optimizer.lr"),
    ],
)
def test_space_errors_name_file_and_key(raw: dict, key: str) -> None:
    with pytest.raises(UserError) as err:
        parse_space(raw, Path("my-space.yaml"))
    message = str(err.value)
    assert message.startswith("my-space.yaml: ") and key in message and "\n" not in message


def test_bad_space_fails_before_ray_with_exit_2(tmp_path: Path) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text("optimizer: {lr: {uniform: [1, 0.1]}}\n")
    done = subprocess.run(
        [sys.executable, "run_search.py", "--space", str(space), "--storage", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {space}: optimizer.lr: low 1 is above high 0.1"


def test_space_name_found_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_space("cnn2d.yaml").path == SPACES_DIR / "cnn2d.yaml"


def test_tiny_search_end_to_end(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from search.runner import SearchRequest, run_search

    splits_read: list[str] = []
    original = FeatureStore.load_split

    def recording(self: FeatureStore, split: str):
        splits_read.append(split)
        return original(self, split)

    monkeypatch.setattr(FeatureStore, "load_split", recording)
    space = tiny_space(tmp_path, num_samples=6, max_epochs=4)
    try:
        folder = run_search(SearchRequest(space=str(space), data=str(tiny_data), storage=str(tmp_path), name="e2e"))
    finally:
        ray.shutdown()
    assert sorted(set(splits_read)) == ["train", "valid"]  # the test split is never loaded
    board = pd.read_csv(folder / "leaderboard.csv")
    assert len(board) == 6 and (board["status"] != "error").all()
    assert (board["epochs"] < 4).any(), "ASHA stopped no trial early"
    assert (board["epochs"] == 4).any()
    assert board["valid_clip_acc"].between(0, 1).all()
    best = json.loads((folder / "best_config.json").read_text())
    assert best["valid_clip_acc"] == board["valid_clip_acc"].max()
    assert best["config"]["model"]["arch"] == "cnn2d"
    assert (folder / "study.sqlite").is_file() and (folder / "space.yaml").is_file()
    again = subprocess.run(
        [sys.executable, "run_search.py", "--space", str(space), "--storage", str(tmp_path), "--name", "e2e"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "already exists" in again.stderr  # nothing overwritten silently


def test_resume_after_driver_killed(tiny_data: Path, tmp_path: Path) -> None:
    space = tiny_space(tmp_path, num_samples=6, max_epochs=3, features=AUGMENT)
    command = [sys.executable, "run_search.py", "--space", str(space), "--data", str(tiny_data)]
    command += ["--storage", str(tmp_path), "--name", "killed"]
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "killed"
    deadline = time.time() + 240
    while time.time() < deadline and not _trials_with_results(folder):
        time.sleep(0.2)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = _trials_with_results(folder)
    assert before, "no trial reported before the kill"
    assert not (folder / "leaderboard.csv").exists(), "the driver should have been killed mid-search"
    resumed = subprocess.run(
        [*command[:2], "--storage", str(tmp_path), "--name", "killed", "--resume", "--data", str(tiny_data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    board = pd.read_csv(folder / "leaderboard.csv")
    assert len(board) == 6 and board["trial"].is_unique  # the requested total, no trial twice
    assert set(board["features.audio_augment.copies"]) == {0, 1}  # trials with and without copies
    assert (board["status"] != "error").all()
    assert set(before) <= set(board["trial"])  # trials already started are kept
    for trial in board["trial"]:  # and none ran an epoch twice: unfinished ones went on from checkpoints
        progress = pd.read_csv(folder / trial / "progress.csv")
        assert progress["training_iteration"].is_unique


def _trials_with_results(folder: Path) -> list[str]:
    """Trials that reported at least one epoch."""
    if not folder.is_dir():
        return []
    return sorted(p.parent.name for p in folder.glob("*/result.json") if p.stat().st_size > 0)
