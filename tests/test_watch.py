"""Watching a search: while a real tiny search runs, its trials are named on their workers in the
dashboard's API (which refuses requests without the cluster's token), its metrics are on the
node's Prometheus endpoint with trial tags, and the terminal shows progress lines, not tables;
after it, TensorBoard reads every trial's curves and hyperparameters."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import experiment as experiments
from search.progress import Plan, progress_line, snapshot
from tests.conftest import make_layout

REPO = Path(__file__).resolve().parent.parent
# Two trials run side by side to the end (FIFO). Each waits after its first validation while the gate
# file exists (the plugin below), so the test sees both running, named and measured however fast or
# slow the machine is, then removes the gate and both run on to the end.
SPACE = """
plugins: [gated.py]
features: {kind: mel, mel: {n_bins: 32}}
model: {arch: gated}
optimizer: {name: {choice: [adam, sgd]}, lr: 0.01, sgd: {momentum: 0.9}}
schedule: {name: none}
training: {segment_seconds: 1.0, segments_per_clip: 4, batch_size: 4}
search: {num_samples: 2, max_epochs: 8, scheduler: fifo, cpus_per_trial: 1}
"""

GATED_PLUGIN = """
import os
import time
from dataclasses import dataclass

from torch import nn

from models.registry import ModelParams, register

GATE = {gate!r}


@dataclass(frozen=True)
class GatedParams(ModelParams):
    pass


class Gated(nn.Module):
    def __init__(self, n_bins, n_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(n_bins, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(8, n_classes)
        self.validated = False

    def forward(self, x):
        self.validated = self.validated or not self.training
        while self.training and self.validated and os.path.exists(GATE):
            time.sleep(0.2)
        return self.head(self.net(x))


@register("gated", GatedParams)
def build(params, n_bins, n_classes):
    return Gated(n_bins, n_classes)
"""


class Named(SimpleNamespace):
    def __str__(self) -> str:
        return self.name


def trial(name: str, status: str, epochs: int = 0, best: float | None = None) -> Named:
    analysis = {"valid_clip_acc": {"max": best}} if best is not None else {}
    return Named(name=name, status=status, last_result={"training_iteration": epochs}, metric_analysis=analysis)


def test_progress_line_counts_trials_by_status_with_the_best_so_far() -> None:
    trials = [
        trial("a", Trial.TERMINATED, epochs=8, best=0.5),
        trial("b", Trial.TERMINATED, epochs=2, best=0.75),  # ASHA stopped it
        trial("c", Trial.ERROR),
        trial("d", Trial.RUNNING, epochs=3, best=0.625),
        trial("e", Trial.PENDING),
    ]
    line = progress_line(snapshot(trials, max_epochs=8), Plan(10, 8, valid_clips=8), elapsed=150.0)
    # 13 epochs run in 150 s; of 10 trials x 8 epochs, the 3 ended ones never run 14: 53 left, about 611 s.
    assert line == (
        "[2m30s] 3/10 done (1 finished, 1 stopped early, 1 errored), 1 running"
        " | leader b 0.750, 1 clip ahead of d 0.625 | 13/66 epochs | about 10m11s left"
    )
    # With an epoch budget: 13 of 40 epochs in 150 s, the other 27 in about 311 s more.
    line = progress_line(snapshot(trials, max_epochs=8), Plan(10, 8, epoch_budget=40), elapsed=150.0)
    assert line.endswith("| leader b 0.750, 0.125 ahead of d 0.625 | 13/40 epochs | about 5m11s left")


@pytest.mark.slow
def test_a_running_search_is_visible_by_trial(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_layout(data, genres=("a", "b", "c"), per_split=(4, 2, 2), seconds=3.0)
    (tmp_path / "watch.yaml").write_text(SPACE)
    gate = tmp_path / "gate"
    gate.touch()
    (tmp_path / "gated.py").write_text(GATED_PLUGIN.format(gate=str(gate)))
    token_file = tmp_path / "ray-auth-token"
    env = {
        **os.environ,
        "GENRE_SEARCH_CACHE": str(tmp_path / "cache"),
        "RAY_AUTH_TOKEN_PATH": str(token_file),
        "RAY_metrics_report_interval_ms": "1000",  # Ray exports metrics every 10 s by default
        # A trial's folder (its params.json) reaches the experiment folder with Ray Tune's saves of
        # the run, every 10 s by default: every second here.
        "TUNE_GLOBAL_CHECKPOINT_S": "1",
    }
    command = [sys.executable, "run_search.py", "--space", str(tmp_path / "watch.yaml"), "--data", str(data)]
    command += ["--storage", str(tmp_path), "--name", "watched"]
    folder = tmp_path / "watched"
    search = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(search.stdout), daemon=True)
    reader.start()
    try:
        dashboard = _wait_for(lambda: _printed_url(lines, "Ray dashboard: "), search)
        metrics = _wait_for(lambda: _printed_url(lines, "Search metrics "), search)
        token = token_file.read_text().strip()
        assert _status(f"{dashboard}/logical/actors", token=None) in (401, 403)  # refused without the token
        seen: set[str] = set()
        names = _wait_for(lambda: _trials_named_on_workers(dashboard, token, folder, seen), search)
        jobs = json.loads(_get(f"{dashboard}/api/jobs/", token))
        assert "watched" in [job.get("metadata", {}).get("job_name") for job in jobs]
        scraped = _wait_for(lambda: _scraped_for(metrics, names), search)
        assert "ray_genre_search_trials{" in scraped and 'status="running"' in scraped
        time.sleep(5)  # Ray drops a gauge not recorded again within two export intervals (here 2 s)
        assert _scraped_for(metrics, names), "a waiting trial's gauges left the endpoint"
        gate.unlink()
        assert search.wait(timeout=400) == 0
    finally:
        search.kill()
        search.wait()
        reader.join(timeout=10)
        output = "".join(lines)
        print(output)  # shown by pytest when the test fails
    assert f"tensorboard --logdir {folder}" in output
    assert "started with configuration" not in output  # no table per trial
    assert re.search(r"2/2 done \(2 finished, 0 stopped early, 0 errored\), 0 running \| leader", output), output
    for trial_folder in experiments.trial_folders(folder):
        (events,) = trial_folder.glob("events.out.tfevents.*")
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        assert len(accumulator.Scalars("ray/tune/valid_clip_acc")) == 8
        assert "_hparams_/session_start_info" in accumulator.PluginTagToContent("hparams")


def _wait_for(found: Callable[[], object], search: subprocess.Popen, timeout: float = 300) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        assert search.poll() is None, "the search ended before it could be watched"
        time.sleep(0.5)
    raise AssertionError("timed out")


def _printed_url(lines: list[str], start: str) -> str | None:
    for line in list(lines):
        if line.startswith(start):
            return re.search(r"http://[0-9.:]+", line).group(0)
    return None


def _status(url: str, token: str | None) -> int:
    try:
        _get(url, token)
    except urllib.error.HTTPError as err:
        return err.code
    return 200


def _get(url: str, token: str | None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        return response.read().decode()


def _trials_named_on_workers(dashboard: str, token: str, folder: Path, seen: set[str]) -> set[str] | None:
    """The two trials, once each was seen running (its folder there) as the repr of a live worker."""
    running = {path.name for path in experiments.trial_folders(folder)} if folder.is_dir() else set()
    actors = json.loads(_get(f"{dashboard}/logical/actors", token))["data"]["actors"].values()
    seen |= running & {actor.get("reprName") for actor in actors if actor["state"] == "ALIVE"}
    return seen if len(seen) == 2 else None


def _scraped_for(url: str, trials: set[str]) -> str | None:
    """The endpoint's text once it holds the validation accuracy of every trial, with its tags.
    Ray's agent opens the endpoint after Ray has started (later on a loaded machine): not yet is None."""
    try:
        text = _get(url, token=None)
    except urllib.error.URLError as err:
        if isinstance(err.reason, ConnectionRefusedError):
            return None
        raise
    accuracy = [line for line in text.splitlines() if line.startswith("ray_genre_search_trial_valid_clip_acc{")]
    accuracy = [line for line in accuracy if 'experiment="watched"' in line]
    tagged = all(any(f'trial="{name}"' in line for line in accuracy) for name in trials)
    return text if tagged else None
