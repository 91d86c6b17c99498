"""The search on a Ray cluster, for real: a two-node cluster on this machine (ray.cluster_utils),
searches run against it with --address as subprocesses, trials on both nodes, a node lost mid-search,
and a search whose storage is an S3 bucket (moto's server on 127.0.0.1) killed, resumed and reported.
The first search's network is a plugin of the test's own, shipped to the nodes by Ray.

Each node's worker processes record every HDF5 file they open (a sitecustomize.py wrapping
`h5py.File`, on the node's PYTHONPATH): the features must reach trials through Ray's object store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import h5py
import pandas as pd
import pytest
import ray
from moto.server import ThreadedMotoServer
from ray.cluster_utils import Cluster
from ray.tune.trainable.metadata import _TrainingRunMetadata
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from common import experiment as experiments
from common import remote
from reporting.trials import listed_trials
from search.trainable import NODE_ID
from tests.conftest import make_layout, wait_for

REPO = Path(__file__).resolve().parent.parent
SPACE = """
features: {{kind: mel, mel: {{n_bins: 32}}}}
{model}
optimizer: {{name: adam, lr: {{loguniform: [1.0e-3, 3.0e-2]}}}}
schedule: {{name: none}}
training: {{segment_seconds: 1.0, segments_per_clip: {segments}, batch_size: 4}}
search: {{num_samples: {samples}, max_epochs: {epochs}, scheduler: fifo, cpus_per_trial: 1}}
"""
# Ray notices a lost node after health checks fail: seconds here instead of Ray's 30 or so.
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 3,
}
OPENS_LOG = "GENRE_SEARCH_TEST_H5_OPENS"
RECORD_OPENS = f"""
import os

import h5py

_open = h5py.File.__init__


def _recorded(self, name, *args, **kwargs):
    with open(os.environ["{OPENS_LOG}"], "a") as log:
        log.write(f"{{os.getpid()}} {{name}}\\n")
    _open(self, name, *args, **kwargs)


h5py.File.__init__ = _recorded
"""
CNN2D = "model: {arch: cnn2d, cnn2d: {depth: 2, channels: 4, dropout: {uniform: [0.0, 0.3]}}}"
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
BUCKET = "genre-search-test"
SLOW_SEGMENTS = 400
EPOCHS = 5  # of each trial in the bucket  # crops per clip and epoch: epochs of a second or two on this machine


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cluster")
    make_layout(base / "data", genres=("a", "b", "c"), per_split=(4, 2, 2), seconds=3.0)
    (base / "hook").mkdir()
    (base / "hook" / "sitecustomize.py").write_text(RECORD_OPENS)
    return base


@pytest.fixture(scope="module")
def s3(base: Path) -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1 with one bucket; its endpoint and test credentials
    in the environment of every process started from here on (Ray's nodes, the searches)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}/genre-search"
    server.stop()


@pytest.fixture(scope="module")
def cluster(base: Path, s3: str) -> Iterator[Cluster]:
    """A head node (where the searches' drivers run) and a worker node, one CPU each: two trials
    at a time, one per node. Every node's workers record the HDF5 files they open."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_SEARCH_CACHE", str(base / "cache"))
        patch.setenv("RAY_AUTH_TOKEN_PATH", str(base / "ray-auth-token"))
        patch.setenv("OMP_NUM_THREADS", "1")
        head = {"num_cpus": 1, "include_dashboard": False, "_system_config": FAST_HEALTH_CHECKS}
        cluster = Cluster(initialize_head=True, head_node_args={**head, "env_vars": _recording(base, "head")})
        try:
            yield cluster
        finally:
            cluster.shutdown()


def _recording(base: Path, node: str) -> dict[str, str]:
    return {"PYTHONPATH": str(base / "hook"), OPENS_LOG: str(base / f"h5-opens-{node}.txt")}


def _worker_node(cluster: Cluster, base: Path, name: str) -> ray._private.node.Node:
    node = cluster.add_node(num_cpus=1, env_vars=_recording(base, name))
    cluster.wait_for_nodes()
    return node


def _space(base: Path, name: str, samples: int, epochs: int, segments: int = 2, model: str = CNN2D) -> Path:
    path = base / f"{name}.yaml"
    path.write_text(SPACE.format(model=model, samples=samples, epochs=epochs, segments=segments))
    return path


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _rows(trial_dir: Path) -> list[dict]:
    """Every epoch the trial reported, as Ray wrote them (result.json: duplicates included)."""
    lines = (trial_dir / experiments.TRIAL_RESULT_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _stored_epochs(folder: Path) -> list[int]:
    """Epochs in each trial's result.json in the storage (sorted; [] before both trials wrote one)."""
    trials = experiments.trial_folders(folder) if folder.is_dir() else []
    try:
        stored = [len(_rows(trial)) for trial in trials if (trial / experiments.TRIAL_RESULT_FILE).is_file()]
    except ValueError:  # a line caught while Ray wrote it
        return []
    return sorted(stored) if len(stored) == 2 else []


def _opened(base: Path, node: str) -> list[str]:
    log = base / f"h5-opens-{node}.txt"
    return log.read_text().splitlines() if log.is_file() else []


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
    assert [line.split(" ", 1)[1] for line in _opened(base, name)] == [str(base / "control.h5")]
    (base / f"h5-opens-{name}.txt").unlink()


@pytest.mark.slow
def test_search_on_two_nodes_goes_on_when_one_is_lost(cluster: Cluster, base: Path) -> None:
    """Two trials at a time, one per node, features from the object store, the network a plugin
    file that Ray ships to the nodes; the worker node is removed while its trial waits after its
    second epoch (at the plugin's gate, once Ray's records in the storage hold both trials' two
    epochs): that trial goes on on the head node from its checkpoint, every epoch reported once.
    Then report.py on the result."""
    worker = _worker_node(cluster, base, "worker-1")
    _assert_opens_are_recorded(cluster, worker, "worker-1", base)
    # Epochs of a second or two: a trial outlasts the start of the other node's worker (a trial
    # that ends at once lets one node run both in turn).
    gate = base / "gate"
    gate.touch()
    plugin = NODE_LOGGED_PLUGIN.format(log=str(base / "plugin-builds.txt"), gate=str(gate))
    (base / "node_logged.py").write_text(plugin)
    space = _space(base, "lost", samples=2, epochs=6, segments=SLOW_SEGMENTS, model=PLUGIN)
    storage = base / "runs"
    args = ["--space", str(space), "--data", str(base / "data"), "--storage", str(storage), "--name", "lost"]
    folder = storage / "lost"
    with open(base / "lost.log", "w") as log:
        driver = subprocess.Popen(
            [sys.executable, "run_search.py", *args, "--address", cluster.address],
            cwd=REPO,
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
        rows = _rows(trial)
        epochs = [row["training_iteration"] for row in rows]
        assert epochs == list(range(1, 7)), (trial.name, epochs)  # every epoch once, none again
        assert [row["epoch"] for row in rows] == epochs  # fit() went on from the checkpoint's epoch
        nodes[trial.name] = [row[NODE_ID] for row in rows]
    head = cluster.head_node.node_id
    moved = [ran for ran in nodes.values() if worker.node_id in ran]
    assert len(moved) == 1 and len(nodes) == 2, nodes  # one trial per node
    lost_at = moved[0].index(head)  # the first epoch after the loss
    assert lost_at >= 2 and set(moved[0][:lost_at]) == {worker.node_id} and set(moved[0][lost_at:]) == {head}
    assert _opened(base, "worker-1") == [] and _opened(base, "head") == []  # not one feature file opened
    built_on = (base / "plugin-builds.txt").read_text().split()
    assert worker.node_id in built_on and head in built_on, built_on  # the plugin network ran on both nodes

    reported = _run(["report.py", "--experiment", str(folder), "--seeds", "1"])
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert (folder / "report" / "report.md").is_file()


@pytest.mark.slow
def test_search_in_a_bucket_killed_resumed_and_reported(cluster: Cluster, base: Path, s3: str) -> None:
    """--storage s3://… on the cluster: the driver killed (SIGKILL) mid-search, --resume to the end,
    then report.py from the bucket alone (the driver's local folder deleted first); every file
    where the README says, trials on both nodes, no feature file opened on any node."""
    worker = _worker_node(cluster, base, "worker-2")
    name = f"bucket-{os.getpid()}"  # the driver's own files go to runs/<name> in the project
    local = experiments.local_folder(s3, name)
    space = _space(base, "bucket", samples=3, epochs=EPOCHS, segments=SLOW_SEGMENTS)
    where = ["--storage", s3, "--name", name, "--address", cluster.address]
    try:
        driver = subprocess.Popen(
            [sys.executable, "run_search.py", "--space", str(space), "--data", str(base / "data"), *where],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a shell would start it; the cluster is not in it
        )
        # Killed once Ray's snapshot in the bucket knows a checkpoint of a trial that is not done.
        wait_for(lambda: bool(_cut_short(name)), driver)
        os.killpg(driver.pid, signal.SIGKILL)
        cut_short = _cut_short(name)
        driver.wait()
        assert not _bucket_keys(name, experiments.LEADERBOARD_FILE), "the driver should have been killed mid-search"

        resumed = _run(["run_search.py", "--resume", *where], timeout=400)
        (base / "resumed.log").write_text(resumed.stdout + resumed.stderr)  # whole, for a failure's reader
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        prefix = f"genre-search/{name}/"
        keys = _bucket_keys(name)
        for own in remote.OWN_FILES:
            assert prefix + own in keys, own
        assert prefix + experiments.TUNER_FILE in keys and _bucket_keys(name, "experiment_state-")

        shutil.rmtree(local)  # the report reads the bucket alone
        reported = _run(["report.py", "--experiment", name, "--storage", s3, "--seeds", "1"])
        assert reported.returncode == 0, reported.stderr[-3000:]
        assert prefix + "report/report.md" in _bucket_keys(name)
        board = pd.read_csv(local / experiments.LEADERBOARD_FILE)
        assert len(board) == 3 and (board["status"] == "finished").all()
        assert len(experiments.run_seconds(local)) == 2  # the killed run and the resumed one
        for trial in board["trial"]:
            assert _bucket_keys(name, f"{trial}/checkpoint_")
            rows = _rows(local / trial)
            assert sorted({row["training_iteration"] for row in rows}) == list(range(1, EPOCHS + 1)), trial
            assert all(row["epoch"] == row["training_iteration"] for row in rows)  # fit() counts as Ray does
        assert cut_short
        for trial, checkpointed in cut_short.items():  # the resumed run's worker went on from that checkpoint
            rows = _rows(local / trial)
            workers = [row["pid"] for row in rows]
            assert len(set(workers)) == 2, trial
            assert rows[workers.index(workers[-1])]["training_iteration"] == checkpointed + 1, trial
        nodes = {row[NODE_ID] for trial in board["trial"] for row in _rows(local / trial)}
        assert nodes == {cluster.head_node.node_id, worker.node_id}
        assert _opened(base, "worker-2") == [] and _opened(base, "head") == []
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _bucket_keys(name: str, containing: str = "") -> list[str]:
    listed = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"genre-search/{name}/")
    return [item["Key"] for page in listed for item in page.get("Contents", []) if containing in item["Key"]]


def _cut_short(name: str) -> dict[str, int]:
    """Trials that Ray's snapshot in the bucket lists as running with a checkpoint, and whose
    result.json there lacks epochs: the epoch of that checkpoint, each. The snapshot's per-trial
    metadata is Ray's pickle: unpickled here, from the test's own bucket."""
    found = {}
    for key in _bucket_keys(name, "experiment_state-"):
        try:
            trials = json.loads(_bucket_text(key))["trial_data"]
        except ValueError:  # caught while Ray wrote it
            continue
        for trial, runtime in trials:
            entry = json.loads(trial)
            manager = _TrainingRunMetadata.from_json_state(runtime).checkpoint_manager
            latest = manager.latest_checkpoint_result if manager else None
            folder = entry["relative_logdir"]
            results = _bucket_keys(name, f"{folder}/{experiments.TRIAL_RESULT_FILE}")
            reported = len(_bucket_text(results[0]).splitlines()) if results else 0
            if entry["status"] == "RUNNING" and latest is not None and reported < EPOCHS:
                found[folder] = latest.metrics["epoch"]
    return found


def _bucket_text(key: str) -> str:
    return boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
