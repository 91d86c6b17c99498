"""Your own model: a Python file a space names (`plugins:`) registers an architecture that is then
searched like the shipped ones; a bad file fails in one line naming it before Ray starts; Ray
workers import the copy shipped with the runtime environment; the report retrains with it and a
saved model refuses a plugin file that is missing or changed."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

import predict
from common import experiment as experiments
from common.errors import UserError
from features.dataset import load_dataset
from models import architecture_names, plugins, registry
from models.plugins import PluginFile, file_sha256, load_shipped, plugin_of, stage_for_shipping
from search import runner
from search.runner import SearchRequest, run_search
from search.space import load_space
from tests.conftest import make_layout, write_tone_clip
from training.config import TrialConfig
from training.saved_model import load_model, save_model

REPO = Path(__file__).resolve().parent.parent

# A plugin as a user writes it; NAME is made unique per test (a process registers a name once).
PLUGIN = """
from dataclasses import dataclass

from torch import nn

from models.registry import ModelParams, register


@dataclass(frozen=True)
class PoolParams(ModelParams):
    width: int = 8
    dropout: float = 0.0


@register("NAME", PoolParams)
def build(params: PoolParams, n_bins: int, n_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(n_bins, params.width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Dropout(params.dropout), nn.Linear(params.width, n_classes),
    )
"""

SPACE = """
plugins: [PLUGIN_FILE]
features: {kind: mel, mel: {n_bins: 16}}
model: {arch: NAME, NAME: MODEL_PARAMS}
optimizer: {name: adam, lr: {loguniform: [3.0e-3, 3.0e-2]}}
schedule: {name: none}
training: {segment_seconds: 1.0, segments_per_clip: 2, batch_size: 4}
search: {num_samples: 1, max_epochs: 1, grace_period: 1, reduction_factor: 2, cpus_per_trial: 1}
"""


@pytest.fixture(autouse=True)
def forget_plugins() -> None:
    """Each test's plugin architectures leave the registry with it: other test files list the
    registry and expect the shipped architectures alone."""
    shipped, loaded = set(architecture_names()), dict(plugins._LOADED)
    yield
    registry.forget(set(architecture_names()) - shipped)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)


def unique_name() -> str:
    return f"net_{uuid.uuid4().hex[:8]}"


def write_space(folder: Path, plugin_source: str, name: str, params: str = "{width: {choice: [4, 8]}}") -> Path:
    """`folder/space.yaml` naming `folder/plugins/mine.py` by a path relative to the space file."""
    plugin = folder / "plugins" / "mine.py"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(plugin_source.replace("NAME", name))
    text = SPACE.replace("PLUGIN_FILE", "plugins/mine.py").replace("MODEL_PARAMS", params).replace("NAME", name)
    (folder / "space.yaml").write_text(text)
    return folder / "space.yaml"


def test_plugin_architecture_is_searched_like_a_shipped_one(tmp_path: Path) -> None:
    name = unique_name()
    space = load_space(write_space(tmp_path, PLUGIN, name))
    plugin = tmp_path / "plugins" / "mine.py"
    assert space.plugins == (PluginFile(plugin, file_sha256(plugin)),)
    assert name in architecture_names() and plugin_of(name) == space.plugins[0]
    config = TrialConfig.from_dict(_drawn(space))
    assert config.model.arch == name and config.model.params["width"] in (4, 8)
    # Unknown keys and bad types are refused with the shipped architectures' messages.
    bad = write_space(tmp_path / "typo", PLUGIN, unique_name(), params="{widht: 4}")
    with pytest.raises(UserError, match=r"^\S*space.yaml: unknown key model\.params\.widht \(known: dropout, width\)"):
        load_space(bad)


def _drawn(space) -> dict:
    """One trial's config, drawn as Optuna would (here: the first option of every choice)."""

    class First:
        def suggest_categorical(self, name, options):
            return options[0]

        def suggest_float(self, name, low, high, log=False):
            return low

        def suggest_int(self, name, low, high, step=1):
            return low

    return space.suggest(First())


REJECTS_INPUT = PLUGIN.replace("nn.Conv1d(n_bins,", "nn.Conv1d(n_bins + 1,")  # expects one bin more
WRONG_OUTPUT = PLUGIN.replace("nn.Linear(params.width, n_classes)", "nn.Linear(params.width, 7)")


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("def broken(:\n", r"mine\.py:1: syntax error"),
        ("import no_such_module_here\n" + PLUGIN, r"mine\.py: fails to import \(ModuleNotFoundError: No module named"),
        (
            PLUGIN + PLUGIN.replace("NAME", "cnn2d"),
            r"mine\.py: architecture 'cnn2d' is taken \(registered by \S*cnn2d\.py\)",
        ),
        ("x = 1\n", r"mine\.py: registers no architecture"),
        (REJECTS_INPUT, r"mine\.py: model net_\w+ on input \(2, 16, 43\): fails \(RuntimeError: "),
        (WRONG_OUTPUT, r"mine\.py: model net_\w+ on input \(2, 16, 43\): returns shape \(2, 7\), not"),
    ],
    ids=["syntax", "missing-import", "taken-name", "registers-nothing", "rejects-input", "wrong-output"],
)
def test_bad_plugin_is_one_line_naming_the_file(tmp_path: Path, source: str, problem: str) -> None:
    name = unique_name()
    before = set(architecture_names())
    with pytest.raises(UserError) as err:
        load_space(write_space(tmp_path, source, name))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'space.yaml'}: ") and "\n" not in message
    assert f"{tmp_path}/plugins/mine.py" in message
    assert re.search(problem, message), message
    if "taken" in problem:  # a file failing half-way leaves nothing of it registered
        assert set(architecture_names()) == before


def test_missing_plugin_file_exits_2_before_ray(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("PLUGIN_FILE", "gone.py").replace("MODEL_PARAMS", "{}").replace("NAME", "cnn2d"))
    done = subprocess.run(
        [sys.executable, "run_search.py", "--space", str(space), "--storage", str(tmp_path / "runs")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {space}: {tmp_path / 'gone.py'}: plugin file not found"
    assert not (tmp_path / "runs").exists()  # nothing started


def test_worker_loads_the_copy_shipped_with_the_runtime_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Ray's `py_modules` does on a node without the driver's files: the staged folder sits
    in a directory on `sys.path`; the recorded path does not exist there."""
    name = unique_name()
    source = tmp_path / "mine.py"
    source.write_text(PLUGIN.replace("NAME", name))
    recorded = PluginFile(tmp_path / "elsewhere" / "mine.py", file_sha256(source))  # the driver's path
    unpacked = tmp_path / "unpacked"
    stage_for_shipping([PluginFile(source, recorded.sha256)], unpacked)
    with pytest.raises(UserError, match=r"mine\.py: plugin file is not on this Ray worker"):
        load_shipped([recorded])
    monkeypatch.setattr(sys, "path", [*sys.path, str(unpacked)])
    load_shipped([recorded])
    assert plugin_of(name).path == unpacked / recorded.shipped_folder / "mine.py"


def test_saved_model_refuses_a_missing_or_changed_plugin(tmp_path: Path) -> None:
    name = unique_name()
    space = load_space(write_space(tmp_path, PLUGIN, name))
    config = TrialConfig.from_dict({**_drawn(space), "training": {"segment_seconds": 1.0}})
    model = load_model_for(config, tmp_path / "model.pt")
    plugin = tmp_path / "plugins" / "mine.py"
    saved = load_model(model, [plugin])  # the reader names the file (records run no code)
    assert saved.config.model.arch == name
    assert torch.load(model, weights_only=True)["plugin"] == space.plugins[0].to_dict()
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    with pytest.raises(
        UserError,
        match=rf"^{plugin}: plugin file has sha256 \w+…, but {model} records {plugin} \(sha256 \w+…\)",
    ):
        load_model(model, [plugin])
    plugin.unlink()
    with pytest.raises(UserError, match=rf"^{plugin}: plugin file not found$"):
        load_model(model, [plugin])


def test_resume_loads_the_recorded_plugin_and_refuses_a_changed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed search reads the experiment's copy of the space file, elsewhere: its plugin paths
    are still relative to the original file, and a plugin edited since is refused."""
    data = tmp_path / "data"
    make_layout(data, genres=("a", "b"), per_split=(2, 1, 1), seconds=1.5)
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path / "cache"))
    space = load_space(write_space(tmp_path, PLUGIN, unique_name()))
    experiment = experiments.locate(str(tmp_path / "runs"), "resumed", resume=False)
    search = dataclasses.asdict(space.search)
    plugins = [plugin.to_dict() for plugin in space.plugins]
    experiments.write_metadata(experiment, space.path, search, load_dataset(data).describe(), {}, plugins)
    started: list = []

    def start_ray(address: str | None, job_name: str, plugins: tuple = ()) -> None:
        started.append(plugins)
        raise UserError("stop here")

    monkeypatch.setattr(runner, "start_ray", start_ray)
    resume = SearchRequest(space=None, storage=str(tmp_path / "runs"), name="resumed", resume=True)
    with pytest.raises(UserError, match="stop here"):
        run_search(resume)
    assert started == [space.plugins]
    plugin = tmp_path / "plugins" / "mine.py"
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    changed = rf"^{experiment.local_dir / experiments.METADATA_FILE}: {plugin}: plugin file has changed since"
    with pytest.raises(UserError, match=changed):
        run_search(resume)


def load_model_for(config: TrialConfig, path: Path) -> Path:
    from models import build_model

    network = build_model(config.model.arch, config.model.params, 16, 3)
    stats = (np.zeros(16, np.float32), np.ones(16, np.float32))
    save_model(path, network.state_dict(), config, ("a", "b", "c"), stats, {})
    return path


@pytest.mark.slow
def test_plugin_model_searched_reported_and_predicted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A real one-trial search through Ray of a space naming a plugin, a report (1 seed) and a
    prediction, each command a fresh process loading the plugin from the recorded file. The plugin
    logs where each process imported it from: Ray's workers use the runtime environment's copy.
    Then predict.py's main, here, refuses the plugin file once edited."""
    data = tmp_path / "data"
    make_layout(data, genres=("a", "b", "c"), per_split=(4, 2, 2), seconds=2.0)
    imports = tmp_path / "imports.log"
    logging = f"\nwith open({str(imports)!r}, 'a') as _log:\n    _log.write(__file__ + '\\n')\n"
    name = unique_name()
    space = write_space(tmp_path, PLUGIN + logging, name)
    env = {**os.environ, "GENRE_SEARCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path / "cache"))
    try:
        outcome = run_search(SearchRequest(space=str(space), data=str(data), storage=str(tmp_path), name="mine"))
    finally:
        ray.shutdown()
    board = (outcome.local_dir / "leaderboard.csv").read_text().splitlines()
    assert len(board) == 2 and ",error," not in "".join(board)  # its heading and the trial
    plugin = tmp_path / "plugins" / "mine.py"
    metadata = json.loads((outcome.local_dir / "experiment.json").read_text())
    assert metadata["plugins"] == [{"file": str(plugin), "sha256": file_sha256(plugin)}]
    shipped = [line for line in imports.read_text().splitlines() if line != str(plugin)]
    assert shipped and all(f"genre_search_plugin_{file_sha256(plugin)[:16]}/mine.py" in line for line in shipped)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    reported = run("report.py", "--experiment", str(outcome.local_dir), "--seeds", "1", "--plugin", str(plugin))
    assert reported.returncode == 0, reported.stderr[-3000:]
    model = outcome.local_dir / "report" / "model-seed0.pt"
    assert torch.load(model, weights_only=True)["config"]["model"]["arch"] == name
    clip = tmp_path / "clip.wav"
    write_tone_clip(clip, seconds=2.0, pitch_hz=440.0, seed=7)
    predicted = run("predict.py", str(model), str(clip), "--plugin", str(plugin))
    assert predicted.returncode == 0 and predicted.stdout.startswith(f"{clip}: "), predicted.stderr[-3000:]
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        predict.main([str(model), str(clip), "--plugin", str(plugin)])
    stderr = capsys.readouterr().err
    assert refused.value.code == 2 and stderr.count("\n") == 1 and "plugin file has sha256" in stderr
