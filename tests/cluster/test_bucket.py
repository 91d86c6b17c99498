"""A search whose storage is an S3 bucket (moto's server) on the cluster: killed mid-search,
resumed to the end, then reported from the bucket alone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest
from ray.cluster_utils import Cluster
from ray.tune.trainable.metadata import _TrainingRunMetadata

from common import experiment as experiments
from common import remote
from search.trainable import NODE_ID
from tests.cluster.conftest import (
    BUCKET,
    REPO,
    SLOW_SEGMENTS,
    opened,
    reported_rows,
    run_python,
    space_file,
    worker_node,
)
from tests.conftest import wait_for

EPOCHS = 5  # of each trial


@pytest.mark.slow
def test_search_in_a_bucket_killed_resumed_and_reported(cluster: Cluster, base: Path, s3: str) -> None:
    """--storage s3://… on the cluster: the driver killed (SIGKILL) mid-search, --resume to the end,
    then report.py from the bucket alone (the driver's local folder deleted first); every file
    where the README says, trials on both nodes, no feature file opened on any node."""
    worker = worker_node(cluster, base, "worker-2")
    name = f"bucket-{os.getpid()}"  # the driver's own files go to runs/<name> in the project
    local = experiments.local_folder(s3, name)
    space = space_file(base, "bucket", samples=3, epochs=EPOCHS, segments=SLOW_SEGMENTS)
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

        resumed = run_python(["run_search.py", "--resume", *where], timeout=400)
        (base / "resumed.log").write_text(resumed.stdout + resumed.stderr)  # whole, for a failure's reader
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        prefix = f"genre-search/{name}/"
        keys = _bucket_keys(name)
        for own in remote.OWN_FILES:
            assert prefix + own in keys, own
        assert prefix + experiments.TUNER_FILE in keys and _bucket_keys(name, "experiment_state-")

        shutil.rmtree(local)  # the report reads the bucket alone
        reported = run_python(["report.py", "--experiment", name, "--storage", s3, "--seeds", "1"])
        assert reported.returncode == 0, reported.stderr[-3000:]
        assert prefix + "report/report.md" in _bucket_keys(name)
        board = pd.read_csv(local / experiments.LEADERBOARD_FILE)
        assert len(board) == 3 and (board["status"] == "finished").all()
        assert len(experiments.run_seconds(local)) == 2  # the killed run and the resumed one
        for trial in board["trial"]:
            assert _bucket_keys(name, f"{trial}/checkpoint_")
            rows = reported_rows(local / trial)
            assert sorted({row["training_iteration"] for row in rows}) == list(range(1, EPOCHS + 1)), trial
            assert all(row["epoch"] == row["training_iteration"] for row in rows)  # fit() counts as Ray does
        assert cut_short
        for trial, checkpointed in cut_short.items():  # the resumed run's worker went on from that checkpoint
            rows = reported_rows(local / trial)
            workers = [row["pid"] for row in rows]
            assert len(set(workers)) == 2, trial
            assert rows[workers.index(workers[-1])]["training_iteration"] == checkpointed + 1, trial
        nodes = {row[NODE_ID] for trial in board["trial"] for row in reported_rows(local / trial)}
        assert nodes == {cluster.head_node.node_id, worker.node_id}
        assert opened(base, "worker-2") == [] and opened(base, "head") == []
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
