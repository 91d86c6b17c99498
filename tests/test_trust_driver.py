"""One driver per experiment folder (a lease that names its holder, taken over from a dead one),
a resume that runs only what it recorded, and Ctrl-C or SIGTERM ending a search the same way:
leaderboard, one line with the resume command, exit 128 + the signal (issue 29, items 1, 4, 8, 14)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import ray

import run_search as search_command
from common import driver_lease
from common import experiment as experiments
from common.errors import UserError
from search import leaderboard, lifecycle
from search.space import load_space
from tests.conftest import make_layout, wait_for

REPO = Path(__file__).resolve().parent.parent
REFUSAL = re.compile(
    r"is in use by the driver pid (\d+) on host (\S+) \(\S+\) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    r"\(lease refreshed \d+ s ago\); wait for it or stop it"
)
SPACE = """
features: {kind: mel, mel: {n_bins: 16}}
model: {arch: cnn2d, cnn2d: {depth: 1, channels: 4}}
optimizer: {name: adam, lr: 1.0e-3}
schedule: {name: none}
training: {segment_seconds: 1.0, segments_per_clip: 1, batch_size: 4}
search: {num_samples: 1, max_epochs: EPOCHS, grace_period: 1, scheduler: fifo, cpus_per_trial: 1}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every refusal here comes before Ray starts."""

    def refused(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", refused)


def _write_lease(folder: Path, host: str, pid: int, refreshed_ago: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    lease = {"host": host, "pid": pid, "command": "run_search.py", "started": now - 600}
    lease.update(refreshed=now - refreshed_ago, token="theirs")
    (folder / experiments.LEASE_FILE).write_text(json.dumps(lease))


def _experiment(storage: Path, name: str = "x", epochs: int = 1) -> Path:
    """An experiment folder as a new search records it (experiment.json, the space copy)."""
    space_file = storage / "space.yaml"
    space_file.write_text(SPACE.replace("EPOCHS", str(epochs)))
    space = load_space(space_file)
    experiment = experiments.Experiment(str(storage), name, storage / name)
    experiments.write_metadata(experiment, space_file, dataclasses.asdict(space.search), {}, {})
    return experiment.local_dir


# --- item 1: one driver per experiment folder ------------------------------------------------------


def test_a_fresh_lease_of_another_host_refuses_a_second_driver(tmp_path: Path) -> None:
    _write_lease(tmp_path / "x", "node-7", 1234, refreshed_ago=3)
    with pytest.raises(UserError, match=REFUSAL) as refused:
        driver_lease.DriverLease(tmp_path / "x").acquire()
    assert "driver pid 1234 on host node-7" in str(refused.value) and "\n" not in str(refused.value)
    assert json.loads((tmp_path / "x" / experiments.LEASE_FILE).read_text())["token"] == "theirs"


def test_a_stale_lease_is_taken_over_and_ours_is_kept_fresh_then_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(driver_lease, "REFRESH_SECONDS", 0.05)
    _write_lease(tmp_path / "x", "node-7", 1234, refreshed_ago=driver_lease.STALE_SECONDS + 1)
    path = tmp_path / "x" / experiments.LEASE_FILE
    with driver_lease.DriverLease(tmp_path / "x"):
        assert "that driver is gone; taking its lease over" in capsys.readouterr().out
        first = json.loads(path.read_text())
        assert (first["host"], first["pid"]) == (socket.gethostname(), os.getpid())
        time.sleep(0.3)
        assert json.loads(path.read_text())["refreshed"] > first["refreshed"]
        with pytest.raises(UserError, match=REFUSAL):  # a second driver in this very process
            driver_lease.DriverLease(tmp_path / "x").acquire()
    assert not path.exists()


def test_a_dead_driver_of_this_host_leaves_a_lease_taken_over_at_once(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write_lease(tmp_path / "x", socket.gethostname(), gone.pid, refreshed_ago=1)
    with driver_lease.DriverLease(tmp_path / "x") as lease:
        assert lease.path.is_file()
    assert list((tmp_path / "x").iterdir()) == []


def test_a_new_search_folder_left_empty_is_removed(tmp_path: Path) -> None:
    with driver_lease.DriverLease(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()


def _holder(folder: Path) -> subprocess.Popen:
    """A live driver of this host that holds `folder`'s lease until it is killed."""
    code = (
        "import sys, time; from common.driver_lease import DriverLease\n"
        f"with DriverLease({str(folder)!r}):\n    print('held', flush=True); time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_resume_new_search_and_report_are_refused_while_a_driver_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = _experiment(tmp_path)
    holder = _holder(folder)
    try:
        commands = {
            "resume": ["--resume", "--name", "x", "--storage", str(tmp_path)],
            "new search": ["--space", str(tmp_path / "space.yaml"), "--name", "x", "--storage", str(tmp_path)],
        }
        for what, argv in commands.items():
            with pytest.raises(SystemExit) as ended:
                search_command.main(argv)
            lines = capsys.readouterr().err.strip().splitlines()
            assert ended.value.code == 2 and len(lines) == 1, (what, lines)
            assert REFUSAL.search(lines[0]) and f"driver pid {holder.pid} on host" in lines[0], (what, lines)
        from reporting.build import ReportRequest, make_report

        with pytest.raises(UserError, match=REFUSAL):
            make_report(ReportRequest(experiment=str(folder), seeds=1))
        assert not (folder / experiments.REPORT_DIR).exists()
    finally:
        holder.kill()
        holder.wait()
    assert (folder / experiments.LEASE_FILE).is_file()  # killed: its lease is left, and taken over


# --- item 4: a resume runs what it recorded ----------------------------------------------------------


def test_resume_refuses_flags_it_cannot_apply(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _experiment(tmp_path)
    argv = ["--resume", "--name", "x", "--storage", str(tmp_path), "--space", "cnn2d.yaml", "--num-samples", "9"]
    with pytest.raises(SystemExit) as ended:
        search_command.main(argv)
    assert ended.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --resume continues experiment x with the space and search settings it recorded: "
        "--space, --num-samples cannot apply (resume without them, or start a new search with them)"
    )


def test_an_edited_space_copy_is_refused_naming_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _experiment(tmp_path)
    located = experiments.Experiment(str(tmp_path), "x", folder)
    assert lifecycle.recorded_space(located).search.max_epochs == 1  # unedited: resumed as recorded
    copy = folder / experiments.SPACE_COPY
    copy.write_text(copy.read_text().replace("n_bins: 16", "n_bins: 32"))
    with pytest.raises(UserError, match=f"^{re.escape(str(copy))} was edited since the search started") as refused:
        lifecycle.recorded_space(located)
    assert "\n" not in str(refused.value)
    metadata = json.loads((folder / experiments.METADATA_FILE).read_text())
    del metadata[experiments.SPACE_HASH_KEY]  # an experiment from before the hash was recorded
    (folder / experiments.METADATA_FILE).write_text(json.dumps(metadata))
    lifecycle.recorded_space(located)
    assert [r.getMessage() for r in caplog.records if "records no sha256" in r.getMessage()] == [
        f"{folder} records no sha256 of space.yaml (an older experiment): used unchecked"
    ]


# --- items 8 and 14: Ctrl-C and SIGTERM end a search the same way -----------------------------------


def test_an_interrupted_search_says_so_in_one_line_with_exit_128_plus_the_signal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    resume = "python run_search.py --resume --name x"
    for number, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        outcome = SimpleNamespace(stopped=True, stop_signal=number, resume_command=resume, local_dir=Path("x"))
        monkeypatch.setattr(search_command, "run_search", lambda request, outcome=outcome: outcome)
        with pytest.raises(SystemExit) as ended:
            search_command.main(["--space", "baseline.yaml"])
        how = "SIGTERM" if number == signal.SIGTERM else "Ctrl-C"
        assert ended.value.code == code
        assert capsys.readouterr().out.splitlines()[-1] == f"search interrupted ({how}); resume with: {resume}"


def test_the_leaderboard_calls_a_trial_cut_off_interrupted(tmp_path: Path) -> None:
    """Ray Tune marks every trial it stops at the end of a run as terminated: only the last result's
    `done` tells a trial cut off by Ctrl-C from one ASHA stopped."""
    history = pd.DataFrame({"training_iteration": [1], "valid_clip_acc": [0.5], "valid_loss": [1.0]})
    results = [
        SimpleNamespace(
            path=str(tmp_path / name), config={"model": {}}, metrics_dataframe=history, error=None, metrics=metrics
        )
        for name, metrics in (("asha", {"done": True}), ("cut", {"done": False}))
    ]
    board = leaderboard.summarize(results, tmp_path, max_epochs=4, interrupted=True)
    assert dict(zip(board["trial"], board["status"])) == {"asha": "stopped early", "cut": "interrupted"}


@pytest.mark.slow
def test_ctrl_c_on_a_search_whose_trials_all_exist_says_interrupted(tmp_path: Path) -> None:
    """A one-trial search (every trial exists already) gets Ctrl-C mid-run: leaderboard (the trial
    "interrupted"), best config, the one line with the resume command, exit 130, the lease gone.
    SIGTERM takes the same path, and its resume to the end is tests/test_search.py's
    test_interrupted_and_killed_search_resumes."""
    make_layout(tmp_path / "data", genres=("a", "b"), per_split=(2, 1, 1), seconds=1.0)
    space = tmp_path / "one.yaml"
    space.write_text(SPACE.replace("EPOCHS", "300"))  # many short epochs: Ctrl-C lands mid-run
    where = ["--storage", str(tmp_path / "runs"), "--name", "term"]
    start = [sys.executable, "run_search.py", "--space", str(space), "--data", str(tmp_path / "data"), *where]
    folder = tmp_path / "runs" / "term"
    with open(tmp_path / "term.log", "w") as log:
        driver = subprocess.Popen(start, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: any(folder.glob("*/checkpoint_*")), driver)
        driver.send_signal(signal.SIGINT)  # Ctrl-C
        driver.wait(timeout=120)
    output = (tmp_path / "term.log").read_text()
    assert driver.returncode == 130, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    resume = f"python run_search.py --resume --name term --storage {tmp_path / 'runs'}"
    assert output.splitlines()[-1] == f"search interrupted (Ctrl-C); resume with: {resume}"
    board = pd.read_csv(folder / "leaderboard.csv")
    assert list(board["status"]) == ["interrupted"] and (folder / "best_config.json").is_file()
    assert not (folder / experiments.LEASE_FILE).exists()
