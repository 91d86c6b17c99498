"""Watching a search live: who leads and by how much under the one rule for "best", how far along
against the epochs that can still run, why each trial ended (ASHA's rung and cutoff), the Optuna
study as the live record, the metrics endpoint's last values equal to the final counts; and, in the
same search while it runs, its trials named on their workers in Ray's dashboard API (which refuses
requests without the cluster's token) and their metrics on the node's Prometheus endpoint with trial
tags, the terminal showing progress lines, not tables, and after it TensorBoard reading every
trial's curves and hyperparameters."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import experiment as experiments
from common import upstream
from common.trials import METRIC, TrialRecord, leaderboard_text, rank_key, read_stops, trial_rows
from search import metrics, runner
from search.asha import EPOCH_BUDGET, MAX_EPOCHS, RUNG_CUT, SCHEDULE_ENDED, RecordingASHA, StopLog, StopRecord
from search.optuna_search import first_trial_label
from search.progress import Plan, SearchProgress, progress_line, snapshot
from search.tuner import QUIET, TrialNamer
from tests.conftest import make_layout

REPO = Path(__file__).resolve().parent.parent
WRITTEN_FOR = f"(common.upstream, written for ray {upstream.PINNED['ray']}, optuna {upstream.PINNED['optuna']})"


class Named(SimpleNamespace):
    def __str__(self) -> str:
        return self.name


def trial(name: str, status: str, epochs: int = 0, best: float | None = None) -> Named:
    analysis = {METRIC: {"max": best}} if best is not None else {}
    last = {"training_iteration": epochs}
    return Named(name=name, trial_id=name, status=status, last_result=last, metric_analysis=analysis)


# --- one rule for "best" ----------------------------------------------------------------------------


def test_ties_go_to_the_lower_loss_then_the_earlier_epoch_then_the_trial_created_first() -> None:
    assert rank_key(0.5, 0.9, 3, 0) > rank_key(0.75, 2.0, 9, 5)  # higher accuracy first
    assert rank_key(0.5, 0.7, 3, 1) < rank_key(0.5, 0.9, 1, 0)  # then the lower loss
    assert rank_key(0.5, 0.7, 2, 1) < rank_key(0.5, 0.7, 3, 0)  # then the earlier epoch
    assert rank_key(0.5, 0.7, 2, 0) < rank_key(0.5, 0.7, 2, 1)  # then the trial created first
    assert rank_key(0.5, None, 2, 0) > rank_key(0.5, 0.7, 9, 1)  # an unknown loss loses a tie


def test_the_live_leader_is_the_leaderboards_first_under_ties() -> None:
    """Two trials at 0.5625: the leaderboard's rule decides, not the names (issue 31's fc314b39 and d53fb4b9)."""
    history = {
        "zz_first": [(1, 0.5625, 0.9), (2, 0.5, 0.8)],
        "aa_second": [(1, 0.25, 1.2), (2, 0.5625, 0.8)],  # same accuracy, lower loss: it leads
        "mm_third": [(1, 0.5625, 0.8)],  # same accuracy and loss, at an earlier epoch: it leads
    }
    records = [
        TrialRecord(name, name, {}, pd.DataFrame(rows, columns=["training_iteration", METRIC, "valid_loss"]), False)
        for name, rows in history.items()
    ]
    assert list(trial_rows(records, max_epochs=2)["trial"]) == ["mm_third", "aa_second", "zz_first"]
    progress = SearchProgress("x", Plan(3, 2))
    trials = [trial(name, Trial.RUNNING, epochs=len(rows), best=0.5625) for name, rows in history.items()]
    for each, rows in zip(trials, history.values(), strict=True):
        for epoch, accuracy, loss in rows:
            progress.on_trial_result(
                0, trials, each, {"training_iteration": epoch, METRIC: accuracy, "valid_loss": loss}
            )
    state = snapshot(trials, max_epochs=2, bests=progress.bests)
    assert (state.best_trial, state.runner_up) == ("mm_third", ("aa_second", 0.5625))


# --- how far along, who leads and by how much --------------------------------------------------------


def test_time_left_counts_the_epochs_that_can_still_run_and_the_last_line_says_done() -> None:
    """Issue 31: 8 trials of 6 epochs under the space's budget of 236 can run 48 epochs, not 236."""
    trials = [trial(f"t{i}", Trial.TERMINATED, epochs=2, best=0.25) for i in range(3)]  # ASHA cut three at 2
    trials += [trial("t3", Trial.RUNNING, epochs=4, best=0.5), trial("t4", Trial.PENDING)]
    plan = Plan(num_samples=8, max_epochs=6, epoch_budget=236, valid_clips=64)
    state = snapshot(trials, max_epochs=6)
    # 10 epochs in 60 s; 48 less the 12 the cut trials never run: 36 can run, 26 more, about 156 s.
    assert progress_line(state, plan, elapsed=60.0).endswith(
        "| leader t3 0.500, 16 clips ahead of t0 0.250 | 10/36 epochs | about 2m36s left"
    )
    assert Plan(8, 6, epoch_budget=20).spendable(state) == 20  # the budget, where it is smaller
    ended = [trial(f"t{i}", Trial.TERMINATED, epochs=6, best=0.5) for i in range(2)]
    line = progress_line(snapshot(ended, max_epochs=6), Plan(2, 6, valid_clips=64), elapsed=90.0, ended=True)
    assert line == (
        "[1m30s] 2/2 done (2 finished, 0 stopped early, 0 errored), 0 running"
        " | leader t0 0.500, tied with t1 0.500 | 12/12 epochs | done"
    )


def test_first_trials_are_named_by_their_label() -> None:
    first = [("recipe-3s", {"training.segment_seconds": 3.0}), ("recipe-5s", {"training.segment_seconds": 5.0})]
    config = {"model": {"arch": "cnn2d"}, "optimizer": {"name": "adam"}, "features": {"kind": "mel"}}
    name = TrialNamer(first)
    assert (
        name(SimpleNamespace(trial_id="ab12", config={**config, "training.segment_seconds": 5.0})) == "recipe-5s_ab12"
    )
    assert name(SimpleNamespace(trial_id="cd34", config={**config, "training.segment_seconds": 4.0})) == (
        "cnn2d_adam_mel_cd34"
    )
    assert first_trial_label({"training.segment_seconds": 3.0}, first) == "recipe-3s"


def test_the_printed_leaderboard_fits_100_columns() -> None:
    rows = [
        {"training_iteration": 1, METRIC: 0.5, "valid_loss": 0.9},
        {"training_iteration": 2, METRIC: 0.625, "valid_loss": 0.8},
    ]
    config = {f"model.cnn2d.parameter_with_a_long_name_{i}": 0.001 * i for i in range(12)}
    records = [
        TrialRecord(
            f"cnn2d_adamw_mel_{i:08x}_0000{i}",
            "x",
            config,
            pd.DataFrame(rows),
            False,
            StopRecord(RUNG_CUT, 4, 0.5, 0.625).as_row(),
        )
        for i in range(12)
    ]
    text = leaderboard_text(trial_rows(records, max_epochs=8))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert text.splitlines()[0].split()[:5] == ["trial", "status", "epochs", "best_ep", "acc"]
    assert len(text.splitlines()) == 11  # heading and the top 10


# --- why each trial ended ---------------------------------------------------------------------------


def test_asha_next_rung_reads_the_rung_and_cutoff_ray_decides_by() -> None:
    """The touch of ASHA's rungs (common.upstream.asha_next_rung) against Ray's own decisions."""
    log = StopLog(max_epochs=4)
    asha = RecordingASHA(log, metric=METRIC, max_t=4, grace_period=1, reduction_factor=2)
    trials = [SimpleNamespace(trial_id=name) for name in ("a", "b", "c")]
    for each in trials:
        asha.on_trial_add(None, each)
    touch = "AsyncHyperBandScheduler._trial_info, _Bracket._rungs and cutoff"
    assert upstream.asha_next_rung(asha, "a", 1) is None, f"{touch}: an empty rung has no cutoff {WRITTEN_FOR}"
    assert asha.on_trial_result(None, trials[0], {"training_iteration": 1, METRIC: 0.75}) == TrialScheduler.CONTINUE
    assert upstream.asha_next_rung(asha, "b", 1) == (1, 0.75), f"{touch}: changed {WRITTEN_FOR}"
    assert upstream.asha_next_rung(asha, "a", 1) is None  # a is recorded at rung 1 already
    assert asha.on_trial_result(None, trials[1], {"training_iteration": 1, METRIC: 0.5}) == TrialScheduler.STOP
    assert log.cuts == {"b": StopRecord(RUNG_CUT, 1, 0.5, 0.75)}
    assert log.cuts["b"].text() == "cut at rung 1: 0.500 below the cutoff 0.750"
    assert asha.on_trial_result(None, trials[2], {"training_iteration": 1, METRIC: 0.75}) == TrialScheduler.CONTINUE
    assert "c" not in log.cuts


def test_every_ended_trial_gets_one_reason() -> None:
    log = StopLog(max_epochs=4)
    log.cuts["cut"] = StopRecord(RUNG_CUT, 1, 0.5, 0.75)
    assert log.file("cut", {"training_iteration": 1, "done": True}, False, False).reason == RUNG_CUT
    assert log.file("full", {"training_iteration": 4, "done": True}, False, False).reason == MAX_EPOCHS
    assert log.file("own", {"training_iteration": 2, "done": True}, False, False).reason == SCHEDULE_ENDED
    assert log.file("bad", {"training_iteration": 2}, True, False).reason == "errored"
    assert log.file("stopped", {"training_iteration": 2}, False, True).reason == "interrupted"
    log.budget_spent = True
    assert log.file("budget", {"training_iteration": 2}, False, False).reason == EPOCH_BUDGET
    assert log.file("never", None, False, False).reason == EPOCH_BUDGET  # ended before its first epoch
    assert set(log.ended) == {"cut", "full", "own", "bad", "stopped", "budget", "never"}


def test_trials_the_epoch_budget_ended_are_filed_and_told_to_the_study(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Ray stops every trial at once when the budget is spent, telling neither the searcher nor the
    callbacks: the progress callback files them at the end, and tells the searcher (the study)."""
    monkeypatch.setattr(metrics, "_search_gauges", lambda: (Recorder([]), Recorder([])))
    log = StopLog(max_epochs=4)
    log.budget_spent = True
    told = []

    class Searcher:
        def on_trial_complete(self, trial_id: str, result: dict, error: bool) -> None:
            told.append(trial_id)
            log.file(trial_id, result, error, False)

    progress = SearchProgress("x", Plan(2, 4), log, tmp_path / "stops.json", Searcher())
    trials = [trial("a", Trial.TERMINATED, epochs=3, best=0.5), trial("b", Trial.TERMINATED)]
    progress.on_experiment_end(trials)
    assert told == ["a", "b"]
    assert {name: row["stop_reason"] for name, row in read_stops(tmp_path).items()} == {
        "a": EPOCH_BUDGET,
        "b": EPOCH_BUDGET,
    }


def test_rays_warning_for_trials_without_results_is_dropped_and_others_kept() -> None:
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("ray.tune.analysis.experiment_analysis", logging.WARNING, "", 0, message, (), None)

    unstarted = "- t: FileNotFoundError('Could not fetch metrics for t: both result.json and progress.csv"
    unstarted += " were not found at /x')"
    assert not QUIET.filter(record(f"Failed to fetch metrics for 1 trial(s):\n{unstarted}"))
    assert QUIET.filter(record("Failed to fetch metrics for 1 trial(s):\n- t: JSONDecodeError('Expecting value')"))
    assert QUIET.filter(record("something else"))


# --- the last values reach Prometheus ----------------------------------------------------------------


def test_the_driver_waits_for_one_export_of_the_final_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last progress update records the final counts; the driver then waits for Ray's next export
    of them (after the leaderboard, search.runner.wait_for_final_export)."""
    recorded, waits = [], []
    monkeypatch.setattr(metrics, "_search_gauges", lambda: (Recorder(recorded), Recorder([])))
    monkeypatch.setattr(metrics, "_search_last", None)
    monkeypatch.setenv(metrics.EXPORT_INTERVAL_VARIABLE, "2000")
    clock = [100.0]
    monkeypatch.setattr(metrics.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(metrics.time, "sleep", waits.append)
    progress = SearchProgress("x", Plan(2, 4))
    trials = [trial("a", Trial.TERMINATED, epochs=4, best=0.5), trial("b", Trial.TERMINATED, epochs=1, best=0.25)]
    clock[0] = 103.0
    progress.on_experiment_end(trials)
    final = {tags["status"]: value for value, tags in recorded}
    assert final == {"pending": 0, "running": 0, "finished": 1, "stopped_early": 1, "errored": 0}
    assert waits == []  # not inside the search (its recorded time)
    clock[0] = 103.5
    runner.wait_for_final_export()
    assert waits == [pytest.approx(2.5)]  # one export (2 s) and the margin (1 s) after the change at 103 s
    clock[0] = 110.0
    progress.on_experiment_end(trials)
    runner.wait_for_final_export()  # unchanged since, and exported since: no wait
    assert waits == [pytest.approx(2.5)]


def test_ctrl_c_skips_the_wait_for_the_final_export(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The search has ended and is saved when the driver waits: Ctrl-C ends the wait, not the search."""
    monkeypatch.setattr(runner, "seconds_to_final_export", lambda: 9.0)

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "flush_search", interrupted)
    runner.wait_for_final_export()
    assert "in 9 s (Ctrl-C skips the wait)" in capsys.readouterr().out


class Recorder:
    def __init__(self, into: list) -> None:
        self.into = into

    def set(self, value: float, tags: dict[str, str]) -> None:
        self.into.append((value, tags))


# --- one small real search, watched while it runs ----------------------------------------------------

PROBE_PLUGIN = """
import os
import time
from dataclasses import dataclass

from torch import nn

from models.registry import ModelParams, register

GATE = {gate!r}  # while it exists, a network waits after its first validation (the test looks meanwhile)


@dataclass(frozen=True)
class ProbeParams(ModelParams):
    blind: int = 0  # 1: the input is ignored, every clip gets the same class (chance accuracy)


class Probe(nn.Module):
    def __init__(self, blind, n_bins, n_classes):
        super().__init__()
        self.blind = blind
        self.net = nn.Sequential(nn.Conv1d(n_bins, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(16, n_classes)
        self.validated = False

    def forward(self, x):
        self.validated = self.validated or not self.training
        while self.training and self.validated and os.path.exists(GATE):
            time.sleep(0.2)
        out = self.head(self.net(x))
        return self.head.bias.expand(x.shape[0], -1) + 0 * out if self.blind else out


@register("probe", ProbeParams)
def build(params, n_bins, n_classes):
    return Probe(params.blind, n_bins, n_classes)
"""
# Two networks that learn the tones, then two blind ones that ASHA (rungs at epochs 1, 2, 4) cuts at
# rung 1, below the cutoff the seeing ones set there. The first ones wait after their first epoch
# until the test has seen it in the study, the dashboards and the metrics (the gate file), however
# fast the machine. Ray's dashboard names a worker after its first trial: those two, each in a new
# worker, are the ones looked for there.
SPACE = """
plugins: [probe.py]
features: {kind: mel, mel: {n_bins: 16}}
model: {arch: probe, probe: {blind: {choice: [0, 1]}}}
optimizer: {name: adam, lr: {choice: [0.01, 0.02]}}
schedule: {name: none}
training: {segment_seconds: 1.0, segments_per_clip: 4, batch_size: 4}
search:
  num_samples: 4
  max_epochs: 4
  grace_period: 1
  reduction_factor: 2
  cpus_per_trial: 1
  first_trials:
    - {label: seeing-a, model.probe.blind: 0, optimizer.lr: 0.01}
    - {label: seeing-b, model.probe.blind: 0, optimizer.lr: 0.02}
    - {label: blind-a, model.probe.blind: 1, optimizer.lr: 0.01}
    - {label: blind-b, model.probe.blind: 1, optimizer.lr: 0.02}
"""


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The search's output, and what was seen while it ran: the study's trials, every scrape."""
    tmp_path = tmp_path_factory.mktemp("live")
    make_layout(tmp_path / "data", genres=("a", "b", "c"), per_split=(4, 2, 2), seconds=3.0)
    (tmp_path / "live.yaml").write_text(SPACE)
    gate = tmp_path / "gate"
    gate.touch()
    (tmp_path / "probe.py").write_text(PROBE_PLUGIN.format(gate=str(gate)))
    token_file = tmp_path / "ray-auth-token"
    env = {
        **os.environ,
        "GENRE_SEARCH_CACHE": str(tmp_path / "cache"),
        "RAY_AUTH_TOKEN_PATH": str(token_file),
        "RAY_metrics_report_interval_ms": "1000",  # Ray exports metrics every 10 s by default
        # A trial's folder (its params.json) reaches the experiment folder with Ray Tune's saves of
        # the run, every 10 s by default: every second here.
        "TUNE_GLOBAL_CHECKPOINT_S": "1",
        "GENRE_SEARCH_RAY_DASHBOARD": "1",  # its API is what this test reads
    }
    command = [
        sys.executable,
        "run_search.py",
        "--space",
        str(tmp_path / "live.yaml"),
        "--data",
        str(tmp_path / "data"),
    ]
    command += ["--storage", str(tmp_path), "--name", "live", "--dashboard"]
    search = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(search.stdout), daemon=True)
    reader.start()
    study_url = f"sqlite:///{tmp_path / 'live' / 'study.sqlite'}"
    seen: dict = {"running_with_values": [], "pruned": {}, "scrapes": [], "dashboard_running": [], "workers": {}}
    gated_since = None
    try:
        while search.poll() is None:
            _look(seen, tmp_path / "live" / "study.sqlite", lines)
            if gate.exists():
                _look_at_workers(seen["workers"], lines, token_file, tmp_path / "live")
            # The gate opens once optuna-dashboard listed a running trial and the look at the workers
            # is done (or two minutes after a running trial was first seen: then the tests fail
            # below, naming what was missing), so that the looks cannot miss the running trials.
            if seen["running_with_values"] and gated_since is None:
                gated_since = time.monotonic()
            opened_by_time = gated_since is not None and time.monotonic() > gated_since + 120
            looked = seen["dashboard_running"] and "still_scraped" in seen["workers"]
            if seen["running_with_values"] and (looked or opened_by_time):
                gate.unlink(missing_ok=True)
            time.sleep(1.0)
        search.wait(timeout=300)
    finally:
        search.kill()
        search.wait()
        reader.join(timeout=10)
    output = "".join(lines)
    print(output)  # shown by pytest when a test fails
    assert search.returncode == 0, output
    return {"output": output, "folder": tmp_path / "live", "seen": seen, "study_url": study_url}


def _look(seen: dict, study: Path, lines: list[str]) -> None:
    """One look at the running search: its study (read as the SQLite file it is: Optuna's loader
    costs more than the look), and its metrics endpoint once printed."""
    if study.is_file():
        with contextlib.suppress(sqlite3.OperationalError), contextlib.closing(sqlite3.connect(study)) as db:
            states = dict(db.execute("SELECT number, state FROM trials"))
            values: dict[int, dict[int, float]] = {}
            for number, step, value in db.execute(
                "SELECT number, step, intermediate_value FROM trial_intermediate_values JOIN trials USING (trial_id)"
            ):
                values.setdefault(number, {})[step] = value
            attrs: dict[int, dict] = {}
            for number, key, value in db.execute(
                "SELECT number, key, value_json FROM trial_user_attributes JOIN trials USING (trial_id)"
            ):
                attrs.setdefault(number, {})[key] = json.loads(value)
            for number, state in states.items():
                if state == "RUNNING" and values.get(number):
                    seen["running_with_values"].append(values[number])
                if state == "PRUNED":
                    seen["pruned"][number] = (attrs.get(number, {}), values.get(number, {}))
    if seen["running_with_values"]:
        seen["dashboard_running"] += _dashboard_running(lines)
    url = next(
        (re.search(r"http://[0-9.:]+/metrics", line).group(0) for line in list(lines) if "/metrics" in line), None
    )
    if url:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                seen["scrapes"].append(response.read().decode())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass


def _look_at_workers(watch: dict, lines: list[str], token_file: Path, folder: Path) -> None:
    """One look, while the first two trials wait at the gate, at Ray's dashboard (printed once Ray
    started) and the search's metrics endpoint: the dashboard's API without the token (refused), the
    trials seen running (their folders there) as the repr of a live worker, the job's name, then
    the endpoint's text once it tags both trials' values, and again 5 s later (Ray drops a gauge not
    recorded again within two export intervals, here 2 s, and a waiting trial records none)."""
    dashboard, metrics_url = _printed_url(lines, "Ray dashboard: "), _printed_url(lines, "Search metrics ")
    if dashboard is None or metrics_url is None or not token_file.is_file():
        return
    token = token_file.read_text().strip()
    if "refused" not in watch:
        watch["refused"] = _status(f"{dashboard}/logical/actors", token=None)
    names = _trials_named_on_workers(dashboard, token, folder, watch.setdefault("named", set()))
    if names is None:
        return
    if "jobs" not in watch:
        jobs = json.loads(_get(f"{dashboard}/api/jobs/", token))
        watch["jobs"] = [job.get("metadata", {}).get("job_name") for job in jobs]
    if "scraped" not in watch:
        scraped = _scraped_for(metrics_url, names)
        if scraped:
            watch["scraped"], watch["scraped_at"] = scraped, time.monotonic()
    elif "still_scraped" not in watch and time.monotonic() > watch["scraped_at"] + 5:
        watch["still_scraped"] = _scraped_for(metrics_url, names) is not None


def _printed_url(lines: list[str], start: str) -> str | None:
    for line in list(lines):
        if line.startswith(start):
            return re.search(r"http://[0-9.:]+(/metrics)?", line).group(0)
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
    accuracy = [line for line in accuracy if 'experiment="live"' in line]
    tagged = all(any(f'trial="{name}"' in line for line in accuracy) for name in trials)
    return text if tagged else None


def _dashboard_running(lines: list[str]) -> list[dict]:
    """The running trials with epochs that the search's optuna-dashboard (`--dashboard`) lists."""
    printed = (re.search(r"optuna-dashboard .*?(http://[0-9.:]+)", line) for line in list(lines))
    url = next((match.group(1) for match in printed if match), None)
    if url is None:
        return []
    try:
        with urllib.request.urlopen(f"{url}/api/studies", timeout=10) as response:
            (study,) = json.loads(response.read())["study_summaries"]
        with urllib.request.urlopen(f"{url}/api/studies/{study['study_id']}", timeout=10) as response:
            trials = json.loads(response.read())["trials"]
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return []
    return [trial for trial in trials if trial["state"] == "Running" and trial["intermediate_values"]]


@pytest.mark.slow
def test_the_study_is_the_live_record(watched: dict) -> None:
    """While the search ran: a running trial's epochs as intermediate values, ASHA's cuts as
    pruned trials with their rung, cutoff and value there; only searched parameters."""
    seen = watched["seen"]
    assert seen["running_with_values"], "no running trial was seen with an epoch's value in the study"
    assert seen["dashboard_running"], "optuna-dashboard (--dashboard) listed no running trial while the search ran"
    assert seen["pruned"], "no pruned trial was seen while the search ran"
    for attrs, values in seen["pruned"].values():
        assert attrs["stop_reason"] == RUNG_CUT and attrs["rung"] == 1 and attrs["label"].startswith("blind")
        assert values[1] < attrs["cutoff"]  # its value at the rung, below the cutoff
    study = optuna.load_study(study_name="live", storage=watched["study_url"])
    assert {each.user_attrs["label"] for each in study.trials} == {"seeing-a", "seeing-b", "blind-a", "blind-b"}
    assert all(set(each.params) == {"model.probe.blind", "optimizer.lr"} for each in study.trials)
    finished = [each for each in study.trials if each.state == optuna.trial.TrialState.COMPLETE]
    assert all(sorted(each.intermediate_values) == [1, 2, 3, 4] for each in finished)


@pytest.mark.slow
def test_the_live_leader_is_the_final_best_and_stops_say_why(watched: dict) -> None:
    output, folder = watched["output"], watched["folder"]
    progress = [line for line in output.splitlines() if " done (" in line]
    assert progress[-1].endswith("| done"), progress[-1]
    leader = re.search(r"\| leader (\S+) ", progress[-1]).group(1)
    best = pd.read_csv(folder / "leaderboard.csv").iloc[0]
    assert leader == best["trial"] == (folder / "best_config.json").read_text().split('"trial": "')[1].split('"')[0]
    table = pd.read_csv(folder / "leaderboard.csv").set_index("trial")
    cut = table[table["stop_reason"] == RUNG_CUT]
    assert sorted(name.split("_")[0] for name in cut.index) == ["blind-a", "blind-b"]
    assert (cut["rung"] == 1).all() and (cut[METRIC] < cut["cutoff"]).all()
    for name in cut.index:
        assert re.search(rf"^{name} ended: cut at rung 1: 0\.\d+ below the cutoff \d\.\d+$", output, re.M), name
    assert "Number of trials" not in output  # Ray's header with 9223372036854775807 trials
    board = output[output.index("Leaderboard (all 4 trials;") :].splitlines()[1:6]
    assert max(len(line) for line in board) <= 100


@pytest.mark.slow
def test_the_last_scrape_holds_the_final_counts(watched: dict) -> None:
    scraped = [text for text in watched["seen"]["scrapes"] if "ray_genre_search_trials{" in text]
    assert scraped, "the endpoint never showed the search's counts"
    last = {}
    for line in scraped[-1].splitlines():
        if line.startswith("ray_genre_search_trials{") and 'experiment="live"' in line:
            last[re.search(r'status="(\w+)"', line).group(1)] = float(line.rsplit(" ", 1)[1])
    statuses = pd.read_csv(watched["folder"] / "leaderboard.csv")["status"].str.replace(" ", "_")
    expected = Counter(statuses)
    assert last == {status: float(expected.get(status, 0)) for status in metrics.STATUSES}


@pytest.mark.slow
def test_a_running_search_is_visible_by_trial(watched: dict) -> None:
    """While the first two trials waited at the gate: Ray's dashboard API refused a request without
    the token, named each running trial on its worker and listed the job by its name; the metrics
    endpoint tagged both trials' values and the trial counts, and kept a waiting trial's gauges.
    The terminal showed progress lines, no table per trial; TensorBoard reads every trial's curves
    and hyperparameters."""
    workers, output, folder = watched["seen"]["workers"], watched["output"], watched["folder"]
    assert workers.get("refused") in (401, 403), workers.get("refused")  # refused without the token
    named = workers.get("named", set())
    assert sorted(name.split("_")[0] for name in named) == ["seeing-a", "seeing-b"], named
    assert "live" in workers.get("jobs", []), workers.get("jobs")
    scraped = workers.get("scraped")
    assert scraped, "the metrics endpoint never tagged both running trials' values"
    assert "ray_genre_search_trials{" in scraped and 'status="running"' in scraped
    assert workers.get("still_scraped"), "a waiting trial's gauges left the endpoint"
    assert f"tensorboard --logdir {folder}" in output
    assert "started with configuration" not in output  # no table per trial
    done = r"4/4 done \(2 finished, 2 stopped early, 0 errored\), 0 running \| leader"
    assert re.search(done, output), output
    epochs = pd.read_csv(folder / "leaderboard.csv").set_index("trial")["epochs"]
    trial_folders = experiments.trial_folders(folder)
    assert sorted(p.name for p in trial_folders) == sorted(epochs.index)
    for trial_folder in trial_folders:
        (events,) = trial_folder.glob("events.out.tfevents.*")
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        assert len(accumulator.Scalars("ray/tune/valid_clip_acc")) == epochs[trial_folder.name]
        assert "_hparams_/session_start_info" in accumulator.PluginTagToContent("hparams")
    assert sorted(epochs) == [1, 1, 4, 4]  # two cut at rung 1, two to the end
