"""The search on a Ray cluster, for real: a cluster on this machine (ray.cluster_utils) with an
S3-compatible server (moto's, on 127.0.0.1), one of each per test module, so that the modules can
run side by side (pytest -n). Searches run against it with --address as subprocesses.

Each node's worker processes record every HDF5 file they open (a sitecustomize.py wrapping
`h5py.File`, on the node's PYTHONPATH): the features must reach trials through Ray's object store."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from ray.cluster_utils import Cluster

from common import experiment as experiments
from common import upstream
from tests.conftest import make_layout

REPO = Path(__file__).resolve().parents[2]
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

BUCKET = "genre-search-test"
# Segments per clip and epoch for epochs of about a second (4 s with 400 on the 2-core machine):
# trials still run when the killed driver's snapshot is taken, and two run at once, one per node.
SLOW_SEGMENTS = 100


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
def cluster(ray_token_file: Path, base: Path, s3: str) -> Iterator[Cluster]:
    """A head node (where the searches' drivers run; the test adds a worker node), one CPU each:
    two trials at a time, one per node. Every node's workers record the HDF5 files they open."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_SEARCH_CACHE", str(base / "cache"))
        patch.setenv("RAY_AUTH_TOKEN_PATH", str(ray_token_file))  # the session's (tests/conftest.py)
        patch.setenv("OMP_NUM_THREADS", "1")
        # The dashboard agent's port drawn at random (Ray's default, 52365, is taken by any other
        # Ray on the machine: another test module's, when the suite runs in parallel).
        head = {"num_cpus": 1, "include_dashboard": False, "dashboard_agent_listen_port": None}
        head["_system_config"] = FAST_HEALTH_CHECKS
        cluster = Cluster(initialize_head=True, head_node_args={**head, "env_vars": recording(base, "head")})
        try:
            yield cluster
        finally:
            cluster.shutdown()


def recording(base: Path, node: str) -> dict[str, str]:
    return {"PYTHONPATH": str(base / "hook"), OPENS_LOG: str(base / f"h5-opens-{node}.txt")}


def worker_node(cluster: Cluster, base: Path, name: str) -> upstream.RayNode:
    node = cluster.add_node(num_cpus=1, env_vars=recording(base, name))
    cluster.wait_for_nodes()
    return node


def space_file(base: Path, name: str, samples: int, epochs: int, segments: int = 2, model: str = CNN2D) -> Path:
    path = base / f"{name}.yaml"
    path.write_text(SPACE.format(model=model, samples=samples, epochs=epochs, segments=segments))
    return path


def run_python(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def reported_rows(trial_dir: Path) -> list[dict]:
    """Every epoch the trial reported, as Ray wrote them (result.json: duplicates included)."""
    lines = (trial_dir / experiments.TRIAL_RESULT_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def opened(base: Path, node: str) -> list[str]:
    log = base / f"h5-opens-{node}.txt"
    return log.read_text().splitlines() if log.is_file() else []
