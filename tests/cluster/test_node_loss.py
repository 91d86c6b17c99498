"""A search on two nodes goes on when one is lost: trials on both nodes, features from Ray's
object store, the network a plugin of the test's own that Ray ships to the nodes; then report.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import ray
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from common import experiment as experiments
from reporting.trials import listed_trials
from search.trainable import NODE_ID
from tests.cluster.conftest import REPO, opened, reported_rows, run_python, space_file, worker_node
from tests.conftest import wait_for

# A network of the test's own (README "Search your own model"), in a folder no node has on its
# path: Ray ships it with the job. Each build writes down the Ray node it ran on; after its second
# validation a trial waits while the gate file exists, so the test removes a node at a known epoch.
PLUGIN = "plugins: [node_logged.py]\nmodel: {arch: node_logged, node_logged: {width: {choice: [4, 8]}}}"
NODE_LOGGED_PLUGIN = """
import os
import time
from dataclasses import dataclass

import ray
from torch import nn

from models.registry import ModelParams, register


@dataclass(frozen=True)
class NodeLoggedParams(ModelParams):
    width: int = 8


@register("node_logged", NodeLoggedParams)
def build(params, n_bins, n_classes):
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "no-ray"
    with open({log!r}, "a") as log:
        log.write(node + "\\n")
    return Gated(n_bins, params.width, n_classes)


class Gated(nn.Module):
    def __init__(self, n_bins, width, n_classes):
        super().__init__()
        embed = nn.Sequential(nn.Conv1d(n_bins, width, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.net = nn.Sequential(embed, nn.Linear(width, n_classes))
        self.validations, self.was_training = 0, True

    def forward(self, x):
        self.validations += self.was_training and not self.training
        self.was_training = self.training
        while self.training and self.validations >= 2 and os.path.exists({gate!r}):
            time.sleep(0.2)
        return self.net(x)
"""


def _stored_epochs(folder: Path) -> list[int]:
    """Epochs in each trial's result.json in the storage (sorted; [] before both trials wrote one)."""
    trials = experiments.trial_folders(folder) if folder.is_dir() else []
    try:
        stored = [len(reported_rows(trial)) for trial in trials if (trial / experiments.TRIAL_RESULT_FILE).is_file()]
    except ValueError:  # a line caught while Ray wrote it
        return []
    return sorted(stored) if len(stored) == 2 else []


def _assert_opens_are_recorded(cluster: Cluster, node, name: str, base: Path) -> None:
    """The check can fail: a task on `node` that opens an HDF5 file is recorded (then forgotten)."""
    h5py.File(base / "control.h5", "w").close()

    @ray.remote(num_cpus=1)
    def open_file(path: str) -> None:
        import h5py

        h5py.File(path, "r").close()

    ray.init(address=cluster.address)
    try:
        on_node = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        ray.get(open_file.options(scheduling_strategy=on_node).remote(str(base / "control.h5")))
    finally:
        ray.shutdown()
    assert [line.split(" ", 1)[1] for line in opened(base, name)] == [str(base / "control.h5")]
    (base / f"h5-opens-{name}.txt").unlink()


@pytest.mark.slow
def test_search_on_two_nodes_goes_on_when_one_is_lost(cluster: Cluster, base: Path) -> None:
    """Two trials at a time, one per node, features from the object store, the network a plugin
    file that Ray ships to the nodes; the worker node is removed while its trial waits after its
    second epoch (at the plugin's gate, once Ray's records in the storage hold both trials' two
    epochs): that trial goes on on the head node from its checkpoint, every epoch reported once.
    Then report.py on the result."""
    worker = worker_node(cluster, base, "worker-1")
    _assert_opens_are_recorded(cluster, worker, "worker-1", base)
    # Short epochs (2 segments per clip): the gate holds each trial, and its node's one CPU, after
    # its second epoch, so the two trials run at once, one per node, however fast their epochs are.
    gate = base / "gate"
    gate.touch()
    plugin = NODE_LOGGED_PLUGIN.format(log=str(base / "plugin-builds.txt"), gate=str(gate))
    (base / "node_logged.py").write_text(plugin)
    space = space_file(base, "lost", samples=2, epochs=6, model=PLUGIN)
    storage = base / "runs"
    args = ["--space", str(space), "--data", str(base / "data"), "--storage", str(storage), "--name", "lost"]
    folder = storage / "lost"
    with open(base / "lost.log", "w") as log:
        driver = subprocess.Popen(
            [sys.executable, "run_search.py", *args, "--address", cluster.address],
            cwd=REPO,
            # Ray Tune saves its state (and the trials' result.json) to the storage every 10 s by
            # default: every second here, so the wait below is a second, not ten.
            env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        # Both trials wait after their second epoch (they run at once, so one on each node), and
        # Ray's records in the storage hold both epochs: a retried trial's result.json is restored
        # from the storage, which lags the driver by seconds (epochs just before a loss go missing).
        wait_for(lambda: _stored_epochs(folder) == [2, 2], driver)
        cluster.remove_node(worker)
        gate.unlink()
        driver.wait(timeout=300)
    output = (base / "lost.log").read_text()
    assert driver.returncode == 0, output[-3000:]
    statuses = [trial.status for trial in listed_trials(folder).values()]
    assert statuses == ["TERMINATED", "TERMINATED"], output[-3000:]
    nodes = {}
    for trial in experiments.trial_folders(folder):
        rows = reported_rows(trial)
        epochs = [row["training_iteration"] for row in rows]
        assert epochs == list(range(1, 7)), (trial.name, epochs)  # every epoch once, none again
        assert [row["epoch"] for row in rows] == epochs  # fit() went on from the checkpoint's epoch
        nodes[trial.name] = [row[NODE_ID] for row in rows]
    head = cluster.head_node.node_id
    moved = [ran for ran in nodes.values() if worker.node_id in ran]
    assert len(moved) == 1 and len(nodes) == 2, nodes  # one trial per node
    lost_at = moved[0].index(head)  # the first epoch after the loss
    assert lost_at >= 2 and set(moved[0][:lost_at]) == {worker.node_id} and set(moved[0][lost_at:]) == {head}
    assert opened(base, "worker-1") == [] and opened(base, "head") == []  # not one feature file opened
    built_on = (base / "plugin-builds.txt").read_text().split()
    assert worker.node_id in built_on and head in built_on, built_on  # the plugin network ran on both nodes

    reported = run_python(
        ["report.py", "--experiment", str(folder), "--seeds", "1", "--plugin", str(base / "node_logged.py")]
    )
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert (folder / "report" / "report.md").is_file()
