"""Searches that went wrong, and crafted folders: real tiny searches whose trials error (a network
that cannot fit its input fails before its first epoch) or whose driver is killed before any trial
reported, summarised by the search and reported by report.py from the folder's plain files, which
never unpickle anything."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
import ray

import report
from common.trials import METRIC, ROW_COLUMNS, TrialRecord, epoch_history, trial_rows
from reporting.trials import load_trials
from search.runner import SearchRequest, run_search
from tests.conftest import make_layout

REPO = Path(__file__).resolve().parent.parent
MAX_EPOCHS = 2
# A learning rate of 1e30 makes the loss NaN at once (training.fit raises TrainingDiverged, a
# config failure: not retried), while 3e-3 trains. Optuna's TPE sampler with seed 10 draws
# 3e-3, 1e30, 3e-3, 1e30 for the first four trials (its first ten are random draws of the seeded
# sampler, whatever the results). The space's networks all fit their input: the pre-flight check
# refuses a space that could draw one that does not.
# reuse_workers: a trial runs in a finished trial's worker process, seconds less per trial than a new
# process importing torch (only the dashboard's worker names, tested in test_watch_live, need new ones).
SPACE = """
features: {{kind: mel, mel: {{n_bins: 32}}}}
model: {{arch: cnn1d, cnn1d: {{depth: 2, channels: 4, pool_size: 2, dropout: 0.0}}}}
optimizer: {{name: adam, lr: {lr}}}
schedule: {{name: none}}
training: {{segment_seconds: 1.0, segments_per_clip: {segments}, batch_size: 4}}
search: {{num_samples: {samples}, max_epochs: {epochs}, max_failures: {failures}, seed: 10, reuse_workers: true}}
"""
# max_failures 1: Ray retries a failed trial once, which a config failure must not train again.
MIXED = SPACE.format(lr="{choice: [3.0e-3, 1.0e+30]}", segments=4, samples=4, epochs=MAX_EPOCHS, failures=1)
SLOW = SPACE.format(
    lr="{loguniform: [3.0e-3, 3.0e-2]}", segments=20000, samples=3, epochs=MAX_EPOCHS, failures=0
)  # minutes per epoch


def search_command(base: Path, name: str, space: str) -> list[str]:
    (base / f"{name}.yaml").write_text(space)
    args = ["run_search.py", "--space", str(base / f"{name}.yaml"), "--data", str(base / "data")]
    return [*args, "--storage", str(base / "runs"), "--name", name]


@pytest.fixture(scope="module")
def searches(tmp_path_factory: pytest.TempPathFactory, ray_token_file: Path) -> dict:
    """Two real searches on tiny tone clips, side by side: one whose driver (with every process it
    started) is killed before any trial reported, and one of 2 trials finished and 2 errored (run
    in this process meanwhile: what it checks needs no process of its own); and the second with its
    finished trials taken out: every trial errored (cheaper than a third search, the same files)."""
    base = tmp_path_factory.mktemp("outcomes")
    make_layout(base / "data", genres=("a", "b", "c"), per_split=(4, 2, 2), seconds=3.0)
    env = {**os.environ, "GENRE_SEARCH_CACHE": str(base / "cache"), "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
    done = {"base": base, "env": env, "runs": base / "runs"}
    killed = _killed_search(base, {**env, "GENRE_SEARCH_CACHE": str(base / "cache-of-killed")})
    (base / "mixed.yaml").write_text(MIXED)
    mixed = SearchRequest(str(base / "mixed.yaml"), data=str(base / "data"), name="mixed", storage=str(base / "runs"))
    with pytest.MonkeyPatch.context() as patch:  # the session's Ray token, as for every test (tests/conftest.py)
        patch.setenv("GENRE_SEARCH_CACHE", str(base / "cache"))
        patch.setenv("RAY_AUTH_TOKEN_PATH", str(ray_token_file))
        try:
            outcome = run_search(mixed)
        finally:
            ray.shutdown()
    assert not outcome.stopped and (outcome.local_dir / "leaderboard.csv").is_file()
    _errored_only(base / "runs" / "mixed", base / "runs" / "failing")
    killed.join()
    assert _started_and_saved(base / "runs" / "killed"), "no trial started, or Ray saved no state, before the deadline"
    return done


def _errored_only(mixed: Path, folder: Path) -> None:
    """A copy of experiment `mixed` without its finished trials, in Ray's state too."""
    shutil.copytree(mixed, folder, ignore=shutil.ignore_patterns("report", "leaderboard.csv", "best_config.json"))
    board = pd.read_csv(mixed / "leaderboard.csv")
    finished = set(board.loc[board["status"] != "error", "trial"])
    for name in finished:
        shutil.rmtree(folder / name)
    (state,) = folder.glob("experiment_state-*.json")
    saved = json.loads(state.read_text())
    saved["trial_data"] = [e for e in saved["trial_data"] if json.loads(e[0])["relative_logdir"] not in finished]
    state.write_text(json.dumps(saved))


def _killed_search(base: Path, env: dict[str, str]) -> threading.Thread:
    """Start the search to kill (in a cache of its own: no store built by two searches at once);
    the thread returned kills it, with every process it started, once a trial has started."""
    driver = subprocess.Popen(
        [sys.executable, *search_command(base, "killed", SLOW)],
        cwd=REPO,
        # A started trial's params.json reaches the experiment folder with Ray Tune's saves of the
        # run, every 10 s by default: every second here, so the kill comes a second, not up to ten, later.
        env={**env, "TUNE_GLOBAL_CHECKPOINT_S": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: Ray's processes go down with the driver
    )
    folder, deadline = base / "runs" / "killed", time.time() + 240

    def kill_once_started() -> None:
        while time.time() < deadline and not _started_and_saved(folder):
            time.sleep(0.1)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()

    killer = threading.Thread(target=kill_once_started, daemon=True)
    killer.start()
    return killer


def _started_and_saved(folder: Path) -> bool:
    """A trial has started (its folder has params.json) and Ray's saved state lists a trial."""
    states = sorted(folder.glob("experiment_state-*.json"))
    if not list(folder.glob("*/params.json")) or not states:
        return False
    try:
        return bool(json.loads(states[-1].read_text())["trial_data"])
    except ValueError:  # caught while Ray rewrote it
        return False


def _one_line_exit_2(result: subprocess.CompletedProcess, folder: Path) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert str(folder) in lines[0] and "no trial finished an epoch" in lines[0]
    return lines[0]


def _report(experiment: Path, searches: dict, *extra: str) -> subprocess.CompletedProcess:
    """`python report.py --experiment EXPERIMENT --seeds 1 ...` as report.py's main in this process
    (what these tests check needs no process of its own; that reporting imports neither the search
    nor Ray is a test of its own, below): its exit code, and what it wrote to stdout and to stderr,
    where its log records and warnings go too, as they would from the command."""
    argv = ["--experiment", str(experiment), "--seeds", "1", *extra]
    out, err = io.StringIO(), io.StringIO()
    logged = logging.StreamHandler(err)
    logged.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))  # report.main's format
    logged.setLevel(logging.WARNING)
    logging.getLogger().addHandler(logged)
    code = 0
    try:
        with (
            pytest.MonkeyPatch.context() as patch,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            warnings.catch_warnings(record=True) as warned,
        ):
            patch.setenv("GENRE_SEARCH_CACHE", searches["env"]["GENRE_SEARCH_CACHE"])
            warnings.simplefilter("default")
            for hidden in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.filterwarnings("ignore", category=hidden)  # as Python's default filters hide them
            try:
                report.main(argv)
            except SystemExit as ended:
                code = ended.code
    finally:
        logging.getLogger().removeHandler(logged)
    for each in warned:
        err.write(warnings.formatwarning(each.message, each.category, each.filename, each.lineno))
    return subprocess.CompletedProcess(["report.py", *argv], code, out.getvalue(), err.getvalue())


def _shared_rows(table: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in ROW_COLUMNS if c in table] + sorted(c for c in table.columns if "." in c)
    return table[columns].sort_values("trial").reset_index(drop=True)


@pytest.mark.slow
def test_two_finished_two_errored_are_reported_with_the_errored_listed(searches: dict) -> None:
    folder = searches["runs"] / "mixed"
    board = pd.read_csv(folder / "leaderboard.csv")  # the search's own rows, from Ray's ResultGrid
    assert sorted(board["status"]) == ["error", "error", "finished", "finished"], board
    assert (board.loc[board["status"] == "error", "optimizer.lr"] == 1e30).all()
    for path in board.loc[board["status"] == "error", "path"]:  # issue 12.10: a config failure is not retried
        errors = (Path(path) / "error.txt").read_text()
        assert errors.count("Failure #") == 2  # Ray's retry happened, and trained nothing:
        assert errors.count("in _check_finite") == 1, errors  # the retry failed at once
        assert "NotRetried: not retried, its config failed: TrainingDiverged: training diverged" in errors
    reported = _report(folder, searches)
    assert reported.returncode == 0, reported.stderr[-3000:]
    text = (folder / "report" / "report.md").read_text()
    errored = sorted(board.loc[board["status"] == "error", "trial"])
    line = next(line for line in text.splitlines() if line.startswith("Errored trials (2;"))
    assert all(f"`{name}`" in line for name in errored)
    assert line in reported.stdout
    best = json.loads((folder / "best_config.json").read_text())
    assert f"Best trial of the search: `{best['trial']}`" in text
    # One function makes the rows on both sides: the report's, read from files, equal the search's.
    table = load_trials(folder, MAX_EPOCHS).table
    pd.testing.assert_frame_equal(_shared_rows(table), _shared_rows(board), check_dtype=False)


@pytest.mark.slow
def test_all_errored_prints_the_trials_and_one_line(searches: dict, tmp_path: Path, capsys) -> None:
    folder = searches["runs"] / "failing"
    from ray.tune import ExperimentAnalysis, ResultGrid

    from search.leaderboard import summarize

    board = summarize(ResultGrid(ExperimentAnalysis(str(folder))), tmp_path, MAX_EPOCHS)  # the search's summary
    assert "no trial finished an epoch: nothing to report" in capsys.readouterr().out
    assert list(board["status"]) == ["error", "error"]
    reported = _report(folder, searches)
    assert "2 error" in _one_line_exit_2(reported, folder)
    for name in board["trial"]:
        assert any(name in line and " error " in line for line in reported.stdout.splitlines()), reported.stdout
    assert not (folder / "report").exists()  # stopped before any training


@pytest.mark.slow
def test_killed_before_any_epoch_prints_the_trials_and_one_line(searches: dict, tmp_path: Path) -> None:
    folder = searches["runs"] / "killed"
    started = sorted(p.parent.name for p in folder.glob("*/params.json"))
    reported = _report(folder, searches)
    _one_line_exit_2(reported, folder)
    for name in started:
        assert any(name in line and "interrupted" in line for line in reported.stdout.splitlines()), reported.stdout
    # The search's own summary of such a grid (Ray gives no config for a trial that never reported).
    from ray.tune import ExperimentAnalysis, ResultGrid

    from search.leaderboard import summarize

    table = summarize(ResultGrid(ExperimentAnalysis(str(folder))), tmp_path, MAX_EPOCHS)
    assert set(table["status"]) == {"no result"} and set(table["trial"]) <= set(load_trials(folder, 2).table["trial"])
    assert (tmp_path / "leaderboard.csv").is_file() and not (tmp_path / "best_config.json").exists()


class Bait:
    """Unpickling this creates `marker`: proof that a file's pickled content was run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.slow
def test_crafted_pickles_in_the_folder_never_run(searches: dict, tmp_path: Path) -> None:
    folder = tmp_path / "crafted"
    shutil.copytree(searches["runs"] / "mixed", folder, ignore=shutil.ignore_patterns("report"))
    markers = tmp_path / "markers"
    markers.mkdir()
    bait = pickle.dumps(Bait(tmp_path / "bait-works"))
    pickle.loads(bait)  # the bait itself works: unpickling it creates its marker
    assert (tmp_path / "bait-works").exists()
    (state,) = folder.glob("experiment_state-*.json")
    saved = json.loads(state.read_text())
    for index, entry in enumerate(saved["trial_data"]):
        trial = json.loads(entry[0])
        payload = pickle.dumps(Bait(markers / f"state-{index}")).hex()
        trial["storage"] = {"_type": "CLOUDPICKLE_FALLBACK", "value": payload}
        entry[0] = json.dumps(trial)
    state.write_text(json.dumps(saved))
    for index, path in enumerate([*folder.glob("*.pkl"), *folder.glob("*/*.pkl")]):
        path.write_bytes(pickle.dumps(Bait(markers / f"pkl-{index}-{path.name}")))  # error.pkl, params.pkl, tuner.pkl
    assert list(folder.glob("*/error.pkl")), "the errored trials' error.pkl should be among the crafted files"
    reported = _report(folder, searches, "--out", str(tmp_path / "out"))
    assert sorted(p.name for p in markers.iterdir()) == []  # nothing pickled was run
    assert reported.returncode == 0, reported.stderr[-3000:]


def test_reporting_imports_neither_search_nor_ray() -> None:
    """The report reads files: neither the search's code nor Ray (nor its unpickling) is loaded."""
    modules = ["report"] + [f"reporting.{p.stem}" for p in (REPO / "reporting").glob("*.py") if p.stem != "__init__"]
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
    code += "print(sorted({m.split('.')[0] for m in sys.modules} & {'search', 'ray'}))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "[]"


def test_rows_of_trials_without_config_or_epochs() -> None:
    """A trial that never started has no config; one that errored at once has no epoch."""
    history = pd.DataFrame({"training_iteration": [1, 2], METRIC: [0.5, 0.5], "valid_loss": [0.9, 0.7]})
    records = [
        TrialRecord("never", "runs/x/never", None, pd.DataFrame(), errored=False),
        TrialRecord("failed", "runs/x/failed", {"optimizer.lr": 0.1, "optimizer": {}}, pd.DataFrame(), errored=True),
        TrialRecord("ran", "runs/x/ran", {"optimizer.lr": 0.01}, history, errored=False),
    ]
    table = trial_rows(records, max_epochs=2)
    assert list(table["trial"]) == ["ran", "never", "failed"]
    assert list(table["status"]) == ["finished", "no result", "error"]
    assert table.loc[0, "best_epoch"] == 2  # the tie at 0.5 goes to the lower loss
    assert table["optimizer.lr"].isna().tolist() == [False, True, False]


def test_an_epoch_reported_again_counts_once_with_its_later_report() -> None:
    """After a killed driver Ray resumes a trial from its last snapshot's checkpoint: the epochs
    reported after that snapshot come again, and the later report is the run that went on."""
    reports = pd.DataFrame({"training_iteration": [1, 2, 2, 3], METRIC: [0.4, 0.9, 0.6, 0.7]})
    history = epoch_history(reports)
    assert list(history["training_iteration"]) == [1, 2, 3]
    assert list(history[METRIC]) == [0.4, 0.6, 0.7]
