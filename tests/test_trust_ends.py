"""Faults that must end cleanly (issue 29): remote storage that cannot be reached or read, a Ray that
cannot be joined or started, a killed synthetic-set generation, and spaces that could draw a network
their input cannot feed. Each test fails on the code before that issue for the reason it gives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import optuna
import psutil
import pytest
import torch
from moto import settings as moto_settings
from moto.server import ThreadedMotoServer

import report
import run_search
from common import experiment as experiments
from common.errors import USER_ERROR_EXIT_CODE, UserError
from models import build_model, check_input_fits
from models.params import min_input
from models.registry import parse_params
from search import ray_session
from search.space import load_space, parse_space
from search.space_file import SPACES_DIR
from training.config import TrialConfig, trial_config

REPO = Path(__file__).resolve().parents[1]
BUCKET = "trust-ends"
TINY_SPACE = """
features: {kind: mel, mel: {n_bins: 16}}
model: {arch: cnn2d, cnn2d: {depth: 1, channels: 4}}
training: {segment_seconds: 1.0, segments_per_clip: 1, batch_size: 4}
search: {num_samples: 1, max_epochs: 1, grace_period: 1}
"""
DRAWS = 200  # configs drawn from each shipped space
BUILT = 8  # of them built and run: those that come closest to what their input allows


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_error_line(err: str) -> str:
    """The one error line in a command's stderr (beside Ray's own log lines), and no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- item 9: remote storage -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1 with one bucket; its endpoint."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Test credentials, an empty cache, a tiny space (tmp_path/space.yaml); the experiment's local
    folder (runs/<name>) must not appear."""
    (tmp_path / "space.yaml").write_text(TINY_SPACE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path / "cache"))
    name = f"trust-{uuid.uuid4().hex[:8]}"
    yield experiments.DEFAULT_STORAGE / name
    assert not (experiments.DEFAULT_STORAGE / name).exists(), "a local folder was left behind"


def run_cli(main, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, float]:
    """Run a command's `main` in this process: its exit code, its one error line, its seconds."""
    started = time.monotonic()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return exited.value.code, one_error_line(capsys.readouterr().err), time.monotonic() - started


def test_search_on_an_unreachable_endpoint_is_one_line_before_anything_is_built(
    s3_env: Path, tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    uri = f"s3://{BUCKET}/genre-search"
    argv = ["--space", str(tmp_path / "space.yaml"), "--data", str(tiny_root), "--storage", uri, "--name", s3_env.name]
    code, line, seconds = run_cli(run_search.main, argv, capsys)
    assert code == USER_ERROR_EXIT_CODE and seconds < 20
    assert f"storage {uri}/{s3_env.name}: the storage endpoint does not answer" in line
    assert not (tmp_path / "cache").exists()  # no feature store was built


def test_wrong_credentials_are_one_line_in_the_search_and_the_report(
    s3_server: str,
    s3_env: Path,
    tiny_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks credentials from now on
    uri = f"s3://{BUCKET}/genre-search"
    search = [
        "--space",
        str(tmp_path / "space.yaml"),
        "--data",
        str(tiny_root),
        "--storage",
        uri,
        "--name",
        s3_env.name,
    ]
    code, line, _ = run_cli(run_search.main, search, capsys)
    assert code == USER_ERROR_EXIT_CODE
    assert f"storage {uri}/{s3_env.name}: access denied: check the credentials" in line
    code, line, _ = run_cli(report.main, ["--storage", uri, "--experiment", s3_env.name], capsys)
    assert code == USER_ERROR_EXIT_CODE
    assert f"storage {uri}/{s3_env.name}: access denied: check the credentials" in line


def test_a_missing_bucket_is_one_line(
    s3_server: str,
    s3_env: Path,
    tiny_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    uri = "s3://no-such-bucket-here/genre-search"
    argv = ["--space", str(tmp_path / "space.yaml"), "--data", str(tiny_root), "--storage", uri, "--name", s3_env.name]
    code, line, _ = run_cli(run_search.main, argv, capsys)
    assert code == USER_ERROR_EXIT_CODE and "no such bucket 'no-such-bucket-here'" in line


# --- item 10: Ray that cannot be joined or started ----------------------------------------------------

START_RAY = (
    "import sys; from common.errors import exit_on_user_error; from search.ray_session import start_ray; "
    "exit_on_user_error(start_ray)(sys.argv[1] or None, 'trust')"
)


def start_ray_cli(address: str, env: dict[str, str], seconds: float) -> tuple[subprocess.CompletedProcess, float]:
    """`start_ray` as the search calls it, behind the commands' one-line error wrapper, in a process
    of its own (Ray retries an unreachable address for minutes: the old code is stopped at `seconds`)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", START_RAY, address],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=seconds,
    )
    return done, time.monotonic() - started


def test_an_unreachable_address_is_refused_in_one_line_within_30_s() -> None:
    address = f"127.0.0.1:{closed_port()}"
    done, seconds = start_ray_cli(address, {}, seconds=30)
    assert done.returncode == USER_ERROR_EXIT_CODE and seconds < 30
    assert f"--address {address}: no Ray cluster answers there" in one_error_line(done.stderr)


def test_a_local_ray_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    done, seconds = start_ray_cli("", {"RAY_TMPDIR": str(not_a_folder)}, seconds=30)
    assert done.returncode == USER_ERROR_EXIT_CODE and seconds < 30
    assert "Ray did not start on this machine: " in one_error_line(done.stderr)


def test_a_node_that_times_out_during_startup_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    message = (  # what Ray 2.60's Node raises (ray/_private/node.py) when its raylet does not register
        "The current node timed out during startup. This could happen because some of the raylet "
        "failed to startup or the GCS has become overloaded."
    )

    def timed_out(**_: object) -> None:
        raise Exception(message)  # noqa: TRY002 (Ray's own type)

    monkeypatch.setattr(ray_session.ray, "init", timed_out)
    with pytest.raises(UserError) as err:
        ray_session.start_ray(None, "trust")
    assert "Ray did not start on this machine: The current node timed out during startup" in str(err.value)
    assert "\n" not in str(err.value)


# --- item 12: a killed generation's workers --------------------------------------------------------------


def test_a_killed_generation_leaves_no_worker_running(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "features.synth", "--out", str(tmp_path / "set"), "--seconds", "5"]
    command += ["--clips-per-genre", "10", "--workers", "2"]
    parent = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.1)
            workers = psutil.Process(parent.pid).children()
        assert len(workers) >= 2, "the generation's workers never started"
        time.sleep(0.5)  # into their first clips
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, f"workers still running 5 s after their parent was killed: {[p.pid for p in alive]}"
    finally:  # the old code's orphans, or a failed start's parent
        for process in workers:
            if process.is_running():
                process.kill()
        if parent.poll() is None:
            parent.kill()


# --- item 16: every network a shipped space can draw is one that builds -------------------------------


@pytest.mark.parametrize("space_file", sorted(p.name for p in SPACES_DIR.glob("*.yaml")))
def test_every_config_a_shipped_space_draws_builds_and_runs(space_file: str) -> None:
    """DRAWS configs through the search's own define-by-run path (random search, to reach the
    whole space) on the input each implies: every one passes the check a trial makes at its start
    (`check_input_fits`), and the networks that come closest to the limit (the least room left in
    frames or bins; dropout, which changes no shape, aside) are built and run on that input."""
    space = load_space(space_file)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {}
    for _ in range(DRAWS):
        config = TrialConfig.from_dict(trial_config(space.suggest(study.ask())))
        arch, params = config.model.arch, dict(config.model.params)
        n_bins, n_frames = config.features.n_bins, config.segment_frames
        check_input_fits(arch, params, n_bins, n_frames)
        shape_of = tuple(sorted((key, str(value)) for key, value in params.items() if key != "dropout"))
        drawn[(arch, shape_of, n_bins, n_frames)] = (arch, params, n_bins, n_frames)
    tightest = sorted(drawn.values(), key=lambda draw: -_room_used(*draw))[:BUILT]
    for index, (arch, params, n_bins, n_frames) in enumerate(tightest):
        logits = _run(arch, params, n_bins, n_frames, on_cpu=index == 0)
        assert tuple(logits.shape) == (1, 8), f"{space_file}: {arch} {params} on {n_bins} x {n_frames}"


def _run(arch: str, params: dict, n_bins: int, n_frames: int, on_cpu: bool) -> torch.Tensor:
    """The network's logits for a batch of one: on PyTorch's meta device (shapes only, no weights
    nor arithmetic), but on the CPU when asked or when it has recurrent layers (which the meta
    device runs step by step, slower than the CPU)."""
    with torch.device("meta"):
        model = build_model(arch, params, n_bins, 8)
    if on_cpu or any(isinstance(module, torch.nn.RNNBase) for module in model.modules()):
        model = build_model(arch, params, n_bins, 8)
    with torch.no_grad(), torch.device(next(model.parameters()).device):
        return model.eval()(torch.zeros(1, n_bins, n_frames))


def _room_used(arch: str, params: dict, n_bins: int, n_frames: int) -> float:
    """How much of its input the network needs (1.0: not one frame or bin to spare)."""
    typed = parse_params(arch, params)
    used = [min_input(typed.time_reductions()) / n_frames]
    if typed.freq_reductions():
        used.append(min_input(typed.freq_reductions()) / n_bins)
    return max(used)


def test_preflight_refuses_a_space_that_can_draw_a_network_too_deep_for_its_segments() -> None:
    """cnn1d.yaml as shipped before: depth up to 5 with pool 4 on 3 s segments at hop 512 (129 frames)."""
    raw = {
        "features": {"kind": "mel", "hop_length": 512, "mel": {"n_bins": 128}},
        "model": {"arch": "cnn1d", "cnn1d": {"depth": {"int": [2, 5]}, "pool_size": {"choice": [2, 4]}}},
        "training": {"segment_seconds": {"choice": [3.0, 5.0]}},
    }
    with pytest.raises(UserError) as err:
        parse_space(raw, Path("deep.yaml"))
    message = str(err.value)
    assert message.startswith("deep.yaml: model cnn1d: depth 5 with pool 4 needs at least 1024 frames")
    assert "input has 129 frames" in message and "model.cnn1d.pool_size is 4" in message
