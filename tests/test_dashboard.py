"""The search in a browser: optuna-dashboard (search.dashboard) lists a running trial of a study and
listens on the loopback address only; TensorBoard's HParams (search.tensorboard_log) lists each
searched parameter once, no constants, and a running trial's best accuracy so far."""

from __future__ import annotations

import json
import pickle
import socket
import urllib.request
from pathlib import Path

import optuna
import psutil
from ray.tune.experiment import Trial
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

from common import upstream
from run_search import parse_args
from search import dashboard
from search.distributions import Distribution
from search.tensorboard_log import BEST, CURVES, EPOCHS, SearchTensorBoard

PARAMETERS = {
    "optimizer.name": Distribution("choice", ("adam", "sgd")),
    "optimizer.lr": Distribution("loguniform", (1e-4, 1e-1)),
    "model.cnn2d.depth": Distribution("int", (1, 4)),
}


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_dashboard_lists_a_running_trial_on_loopback_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    study = optuna.create_study(study_name="exp", storage=url, direction="maximize")
    running = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    running.report(0.25, step=1)
    with dashboard.serving(url, port=0) as address:
        port = int(address.rsplit(":", 1)[1])
        listening = {c.laddr.ip for c in psutil.Process().net_connections("tcp") if c.laddr.port == port}
        assert listening == {"127.0.0.1"}, listening
        (listed,) = _get(f"{address}/api/studies")["study_summaries"]
        trials = _get(f"{address}/api/studies/{listed['study_id']}")["trials"]
        assert [(t["state"], t["intermediate_values"]) for t in trials] == [("Running", [{"step": 1, "value": 0.25}])]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the dashboard still listens after its block"


def test_dashboard_flag_and_one_liner() -> None:
    assert parse_args(["--space", "cnn2d.yaml", "--dashboard"]).dashboard
    assert not parse_args(["--space", "cnn2d.yaml"]).dashboard
    assert (
        dashboard.command("sqlite:///runs/x/study.sqlite")
        == "optuna-dashboard sqlite:///runs/x/study.sqlite --host 127.0.0.1"
    )


class FakeTrial:
    """What the callback reads of Ray Tune's Trial (through common.upstream)."""

    def __init__(self, folder: Path, config: dict):
        self.local_path, self.config, self.metric_analysis = str(folder), config, {}

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)

    def report(self, callback: SearchTensorBoard, epoch: int, accuracy: float) -> None:
        result = {"training_iteration": epoch, "valid_clip_acc": accuracy, "train_loss": 1.0 / epoch, "done": False}
        callback.on_trial_result(epoch, [], self, result)
        best = max(accuracy, self.metric_analysis.get("valid_clip_acc", {}).get("max", 0.0))
        self.metric_analysis["valid_clip_acc"] = {"max": best}


def _config(lr: float, depth: int) -> dict:
    """A trial's config as Ray's OptunaSearch makes it: the searched values by Optuna's names, then
    the full config the space built (constants included)."""
    searched = {"optimizer.name": "adam", "optimizer.lr": lr, "model.cnn2d.depth": depth}
    built = {
        "optimizer": {"name": "adam", "lr": lr, "weight_decay": 0.0},
        "model": {"arch": "cnn2d", "params": {"depth": depth}},
        "training": {"max_epochs": 4, "batch_size": 16},
    }
    return {**searched, **built}


def _events(folder: Path) -> EventAccumulator:
    (path,) = folder.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(path))
    accumulator.Reload()
    return accumulator


def test_tensorboard_hparams_searched_once_best_so_far_running_included(tmp_path: Path) -> None:
    callback = SearchTensorBoard(PARAMETERS)
    running, ended = FakeTrial(tmp_path / "a", _config(0.01, 2)), FakeTrial(tmp_path / "b", _config(0.001, 3))
    for trial in (running, ended):
        callback.on_trial_start(0, [], trial)
    for epoch, accuracy in enumerate([0.5, 0.75, 0.25], start=1):
        running.report(callback, epoch, accuracy)
    ended.report(callback, 1, 0.4)
    callback.on_trial_complete(1, [], ended)
    pickle.dumps(callback)  # Ray pickles its callbacks with the tuner while trials run

    events = _events(Path(running.local_path))
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    assert [info.name for info in experiment.hparam_infos] == list(PARAMETERS)  # once each, no constants
    assert [info.name.tag for info in experiment.metric_infos] == [BEST, EPOCHS]
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams.keys() == PARAMETERS.keys()
    assert start.hparams["optimizer.lr"].number_value == 0.01
    assert metadata.SESSION_END_INFO_TAG not in content  # still running: shown, with its best so far
    assert [s.value for s in events.Scalars(BEST)] == [0.5, 0.75, 0.75]
    assert [s.value for s in events.Scalars(f"{CURVES}valid_clip_acc")] == [0.5, 0.75, 0.25]

    ended_content = _events(Path(ended.local_path)).PluginTagToContent(metadata.PLUGIN_NAME)
    end = metadata.parse_session_end_info_plugin_data(ended_content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS


def test_ray_trial_folder_touches_public_trial_members() -> None:
    """common.upstream.ray_trial_folder: Ray Tune's Trial.init_local_path() and Trial.local_path."""
    assert callable(Trial.init_local_path) and isinstance(Trial.local_path, property), upstream.PINNED
