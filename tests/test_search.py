"""The search: space files (every error before Ray starts), a real tiny search end to end with ASHA,
resume after the driver is killed, and proof that the test split is never read."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import ray
import yaml
from ray.tune.search import ConcurrencyLimiter

import run_search as search_command
from common import experiment as experiments
from common import upstream
from common.errors import UserError
from features.dataset import load_dataset
from features.store import FeatureStore
from reporting.trials import load_trials
from search import lifecycle, optuna_search, runner
from search import tuner as tuner_module
from search.ray_session import auth_token_file
from search.runner import SearchRequest, run_search
from search.settings import SearchSettings
from search.space import load_space, parse_space
from search.space_file import SPACES_DIR
from search.tuner import EpochBudget
from tests.conftest import make_layout, wait_for, write_tone_clip

REPO = Path(__file__).resolve().parent.parent
# reuse_workers: a trial runs in a finished trial's worker process, seconds less per trial than a new
# process importing torch (only the dashboard's worker names, tested in test_watch_live, need new ones).
TINY_SPACE = """
features: {kind: mel, mel: {n_bins: 32}FEATURES}
model: {arch: cnn2d, cnn2d: {depth: 2, channels: {choice: [4, 8]}, dropout: {uniform: [0.0, 0.3]}}}
optimizer: {name: {choice: [adam, sgd]}, lr: {loguniform: [1.0e-3, 3.0e-2]}, sgd: {momentum: 0.9}}
schedule: {name: none}
training: {segment_seconds: 1.0, segments_per_clip: 2, batch_size: 4}
search: {num_samples: NUM, max_epochs: EPOCHS, grace_period: 1, reduction_factor: 2, cpus_per_trial: 1,
         reuse_workers: true}
"""


# Audio augmentation as a search dimension: trials with and without augmented copies.
AUGMENT = ", audio_augment: {copies: {choice: [0, 1]}, pitch_shift: [-2, 2], time_stretch: [0.9, 1.1]}"


def tiny_space(folder: Path, num_samples: int, max_epochs: int, features: str = "") -> Path:
    path = folder / "tiny.yaml"
    text = TINY_SPACE.replace("NUM", str(num_samples)).replace("EPOCHS", str(max_epochs))
    path.write_text(text.replace("FEATURES", features))
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("search") / "data"
    make_layout(root, genres=("a", "b", "c"), per_split=(4, 2, 2), seconds=3.0)
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.mark.parametrize("path", sorted(SPACES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_space_parses(path: Path) -> None:
    space = load_space(path.name)
    assert space.feature_settings()
    assert space.search.num_samples >= 1


def test_every_key_of_shipped_spaces_is_commented() -> None:
    for path in SPACES_DIR.glob("*.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#") and ":" in line:
                assert "#" in line, f"{path.name}:{number} has no comment: {line.strip()}"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"model": {"arch": "cnn2d", "cnn2d": {"depht": 3}}}, "depht"),
        ({"optimizer": {"momentun": 0.9}}, "optimizer.momentun"),
        ({"traning": {}}, "traning"),
        ({"training": {"batch_size": "large"}}, "training.batch_size"),
        ({"optimizer": {"name": {"choice": []}}}, "optimizer.name"),
        ({"optimizer": {"lr": {"loguniform": [0.1, 0.001]}}}, "optimizer.lr"),
        ({"optimizer": {"name": "adam", "sgd": {"momentum": 0.9}}}, "optimizer.sgd"),
        ({"model": {"arch": {"choice": ["cnn2d"]}, "resnet": {"depth": 2}}}, "model.resnet"),
        ({"features": {"kind": "cqt"}}, "features.kind"),
        ({"features": {"sample_rate": 12345}}, "features.sample_rate"),
        ({"features": {"hop_length": {"uniform": [256, 512]}}}, "features.hop_length"),
        ({"search": {"num_samples": 0}}, "search.num_samples"),
        ({"search": {"epoch_budget": 0}}, "search.epoch_budget"),
        ({"search": {"tpe_startup_trials": 0}}, "search.tpe_startup_trials"),
        ({"search": {"searcher": "grid"}}, "search.searcher"),
        ({"optimizer": {"lr": {"normal": [0, 1]}}}, "optimizer.lr"),
    ],
)
def test_space_errors_name_file_and_key(raw: dict, key: str) -> None:
    with pytest.raises(UserError) as err:
        parse_space(raw, Path("my-space.yaml"))
    message = str(err.value)
    assert message.startswith("my-space.yaml: ") and key in message and "\n" not in message


def test_bad_space_fails_before_ray_with_exit_2(tmp_path: Path) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text("optimizer: {lr: {uniform: [1, 0.1]}}\n")
    done = subprocess.run(
        [sys.executable, "run_search.py", "--space", str(space), "--storage", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {space}: optimizer.lr: low 1 is above high 0.1"


def test_space_name_found_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_space("cnn2d.yaml").path == SPACES_DIR / "cnn2d.yaml"


@pytest.mark.slow
def test_tiny_search_end_to_end(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    splits_read: list[str] = []
    original = FeatureStore.load_split

    def recording(self: FeatureStore, split: str):
        splits_read.append(split)
        return original(self, split)

    monkeypatch.setattr(FeatureStore, "load_split", recording)
    monkeypatch.setenv("GENRE_SEARCH_RAY_DASHBOARD", "1")  # every server Ray starts listens on the loopback
    # Another Ray started on this machine (`ray start`): a search without --address starts its own.
    monkeypatch.setattr(upstream.LATEST_RAY_ADDRESS_FINDER, lambda *args: "127.0.0.1:9")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # Two trials at a time: ASHA cuts a trial that reaches a rung below the median of those before
    # it, so what it cuts depends on the order the epochs arrive in; eight trials give it room.
    space = tiny_space(tmp_path, num_samples=8, max_epochs=4)
    try:
        outcome = run_search(SearchRequest(space=str(space), data=str(tiny_data), storage=str(tmp_path), name="e2e"))
        # The local Ray the search started (still running) listens on the loopback address alone.
        listening = _listening_addresses()
    finally:
        ray.shutdown()
    assert listening, "found no listening Ray process"
    assert [a for a in listening if not _is_loopback(a)] == []
    assert auth_token_file().stat().st_mode & 0o777 == 0o600  # the dashboard's token: its owner's alone
    assert not outcome.stopped
    folder = outcome.local_dir
    assert sorted(set(splits_read)) == ["train", "valid"]  # the test split is never loaded
    board = pd.read_csv(folder / "leaderboard.csv")
    assert len(board) == 8 and (board["status"] != "error").all()
    assert (board["epochs"] < 4).any(), f"ASHA stopped no trial early:\n{board[['epochs', 'valid_clip_acc']]}"
    assert (board["epochs"] == 4).any()
    assert board["valid_clip_acc"].between(0, 1).all()
    best = json.loads((folder / "best_config.json").read_text())
    assert best["valid_clip_acc"] == board["valid_clip_acc"].max()
    assert best["config"]["model"]["arch"] == "cnn2d"
    assert (folder / "study.sqlite").is_file() and (folder / "space.yaml").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit) as again:  # the same command again (in this process: no new one to start)
        search_command.main(["--space", str(space), "--storage", str(tmp_path), "--name", "e2e"])
    assert again.value.code == 2 and "already exists" in capsys.readouterr().err  # nothing overwritten silently


def test_epoch_budget_stops_the_whole_search_at_its_count_of_results() -> None:
    budget = EpochBudget(3)
    seen = []
    for trial in ("a", "b", "a"):
        assert budget(trial, {"training_iteration": 1}) is False  # no single trial is stopped by it
        seen.append(budget.stop_all())
    assert seen == [False, False, True]


def test_searcher_random_is_optunas_random_sampler_on_the_same_space() -> None:
    assert isinstance(optuna_search.sampler(SearchSettings()), optuna.samplers.TPESampler)
    random_sampler = optuna_search.sampler(SearchSettings(searcher="random"))
    assert isinstance(random_sampler, optuna.samplers.RandomSampler)
    space = load_space("cnn2d.yaml")
    seeded = SearchSettings(searcher="random", seed=5)
    drawn = [space.suggest(optuna.create_study(sampler=optuna_search.sampler(seeded)).ask()) for _ in range(2)]
    assert drawn[0] == drawn[1]  # seeded: the same first config for the same seed
    assert drawn[0]["model"]["arch"] == "cnn2d"


def test_first_trials_run_first_with_their_values_and_the_rest_drawn(tmp_path: Path) -> None:
    """search.first_trials: the searcher's first configs carry the given values (the others drawn
    from the space), then TPE goes on; a first trial with a name or value the space cannot draw
    (choices edited since) is left out, with one line naming it, the key and why."""
    raw = yaml.safe_load((SPACES_DIR / "cnn2d.yaml").read_text())
    raw["search"]["first_trials"] = [
        {"optimizer.name": "sgd", "optimizer.lr": 0.01, "optimizer.sgd.momentum": 0.9, "training.segment_seconds": 3.0}
    ]
    space = parse_space(raw, tmp_path / "first.yaml")
    searcher = optuna_search.searcher(space, "first", optuna.storages.InMemoryStorage())
    first, second = searcher.suggest("a"), searcher.suggest("b")
    assert (first["optimizer"]["name"], first["optimizer"]["lr"], first["optimizer"]["momentum"]) == ("sgd", 0.01, 0.9)
    assert first["training"]["segment_seconds"] == 3.0
    assert first["model"]["arch"] == "cnn2d" and 0.0 <= first["model"]["params"]["dropout"] <= 0.5
    assert second != first
    for point, message in [
        ({"optimizer.learning_rate": 0.01}, "search.first_trials[0]: 'optimizer.learning_rate' is not a searched"),
        ({"optimizer.lr": 0.5}, "search.first_trials[0].optimizer.lr: 0.5 is not in loguniform [0.0003, 0.03]"),
        ({"model.cnn2d.channels": 12}, "search.first_trials[0].model.cnn2d.channels: 12 is not one of the choices"),
        ({"training.batch_size": 16}, "search.first_trials[0]: 'training.batch_size' is not a searched"),
    ]:
        raw["search"]["first_trials"] = [point, {"label": "kept", "optimizer.lr": 0.01}]
        space = parse_space(raw, tmp_path / "first.yaml")
        assert space.first_trial_labels() == ["kept"]
        (dropped,) = space.dropped_first_trials()
        assert dropped.startswith(f"first trial first-1 left out: {message}")


def test_tpe_options_reach_the_sampler_and_draw_the_conditional_space() -> None:
    """multivariate (with group: the space is conditional) and constant_liar, off by default; on,
    TPE models the values jointly, once past its random start-up trials, and draws valid configs
    while other trials are still running."""
    default = optuna_search.sampler(SearchSettings())
    assert (default._multivariate, default._group, default._constant_liar) == (False, False, False)
    assert default._n_startup_trials == 10  # Optuna's default
    joint = optuna_search.sampler(SearchSettings(tpe_multivariate=True, tpe_constant_liar=True, tpe_startup_trials=5))
    assert (joint._multivariate, joint._group, joint._constant_liar) == (True, True, True)
    assert joint._n_startup_trials == 5
    space = load_space("cnn2d.yaml")
    study = optuna.create_study(direction="maximize", sampler=joint)
    running = []
    for number in range(14):
        trial = study.ask()
        config = space.suggest(trial)
        if number < 12:
            study.tell(trial, config["optimizer"]["lr"])
        else:
            running.append(config)  # left running: constant_liar counts it as a poor result
    assert all(config["model"]["arch"] == "cnn2d" for config in running)
    assert [t.state for t in study.trials].count(optuna.trial.TrialState.RUNNING) == 2


@pytest.mark.slow
def test_random_search_stops_at_its_epoch_budget(tiny_data: Path, tmp_path: Path) -> None:
    """`--epoch-budget 5` (search.epoch_budget) ends the search; it has ended, not been interrupted,
    so nothing asks to resume it."""
    space = tiny_space(tmp_path, num_samples=8, max_epochs=3)
    space.write_text(space.read_text().replace("cpus_per_trial: 1}", "cpus_per_trial: 1, searcher: random}"))
    request = search_command.parse_args(["--space", str(space), "--data", str(tiny_data), "--epoch-budget", "5"])
    try:
        outcome = run_search(dataclasses.replace(request, storage=str(tmp_path), name="budget"))
    finally:
        ray.shutdown()
    board = pd.read_csv(outcome.local_dir / "leaderboard.csv")
    # Ray stops every trial once 5 results are in; one of the other slot may already be on its way.
    assert 5 <= board["epochs"].sum() <= 6
    assert len(board) < 8 and not outcome.stopped


# A config failure not retried (issue 12.10): tests/test_report_outcomes.py, whose errored trials
# fail for their config under max_failures 1.


@pytest.mark.slow
def test_interrupted_and_killed_search_resumes(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (SIGKILL), resumed, stopped with SIGTERM (as `kill`, systemd, Slurm and Kubernetes
    stop a job; Ctrl-C takes the same path, tests/test_trust_driver.py), resumed to the end: every
    trial runs once, nothing is left dangling, and the wall time counts all three runs. The last
    resume runs the command's main in this process: only the first two are stopped by a signal."""
    space = tiny_space(tmp_path, num_samples=4, max_epochs=4, features=AUGMENT)
    where = ["--storage", str(tmp_path), "--name", "killed"]
    start = [sys.executable, "run_search.py", "--space", str(space), "--data", str(tiny_data), *where]
    resume = [sys.executable, "run_search.py", *where, "--resume"]
    # A resumed search runs on the data it recorded, whatever the default is now (here: no data).
    env = {**os.environ, "RAY_DEDUP_LOGS": "0", "GTZAN_DIR": str(tmp_path / "no-data-here")}
    folder = tmp_path / "killed"

    driver = subprocess.Popen(start, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _epochs_reported(folder) > 0, driver)
    driver.kill()
    driver.wait()
    before = _trials_with_results(folder)
    assert not (folder / "leaderboard.csv").exists(), "the driver should have been killed mid-search"

    with open(tmp_path / "stopped.log", "w") as log:
        snapshots = _run_snapshots(folder)
        driver = subprocess.Popen(resume, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        # The killed driver's workers may still write a checkpoint or two: first wait for this run.
        wait_for(lambda: _run_snapshots(folder) > snapshots, driver)
        reported = _epochs_reported(folder)
        wait_for(lambda: _epochs_reported(folder) > reported, driver)
        driver.send_signal(signal.SIGTERM)
        driver.wait(timeout=180)
    output = (tmp_path / "stopped.log").read_text()
    assert driver.returncode == search_command.TERMINATED_EXIT_CODE, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    resume_line = f"python run_search.py --resume --name killed --storage {tmp_path}"
    assert output.splitlines()[-1] == f"search interrupted (SIGTERM); resume with: {resume_line}"
    assert (folder / "leaderboard.csv").is_file()  # the leaderboard of what exists

    monkeypatch.setenv("GTZAN_DIR", env["GTZAN_DIR"])
    try:
        search_command.main(resume[2:])  # ends without SystemExit: exit code 0
    finally:
        ray.shutdown()
    board = pd.read_csv(folder / "leaderboard.csv")
    assert len(board) == 4 and board["trial"].is_unique  # the requested total, no trial twice
    assert set(board["features.audio_augment.copies"]) == {0, 1}  # trials with and without copies
    assert (board["status"] != "error").all()
    assert set(before) <= set(board["trial"])  # trials already started are kept
    # Unfinished trials went on from their checkpoints. An epoch reported after the killed driver's
    # last snapshot runs again (Ray restores that snapshot): it counts once, with its later report.
    histories = load_trials(folder, max_epochs=4).histories
    for trial, epochs in zip(board["trial"], board["epochs"]):
        assert list(histories[trial]["training_iteration"]) == list(range(1, epochs + 1))
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{folder / 'study.sqlite'}")
    assert [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING] == []
    assert {p.name for p in experiments.trial_folders(folder)} == set(board["trial"])
    seconds = experiments.run_seconds(folder)
    assert len(seconds) == 3 and min(seconds) > 0, seconds  # the killed run's time counts too


def test_resume_refuses_other_changed_or_missing_data(tiny_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    experiment = _recorded_experiment(tmp_path, data)
    resume = SearchRequest(space=None, storage=str(tmp_path), name=experiment.name, resume=True)
    with pytest.raises(UserError, match=f"--data {tiny_data} is not the data the search ran on: experiment"):
        run_search(dataclasses.replace(resume, data=str(tiny_data)))
    clip = next(data.glob("*/*.wav"))
    write_tone_clip(clip, seconds=3.0, pitch_hz=300.0, seed=99)  # the data changed since
    with pytest.raises(UserError, match=r"it has changed since \(now [0-9a-f]+\): resuming would score"):
        run_search(resume)
    shutil.rmtree(data)
    with pytest.raises(UserError, match=f"ran on {data}, which is gone"):
        run_search(resume)
    assert not ray.is_initialized()


def test_failed_start_leaves_nothing_behind(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    space = tiny_space(tmp_path, num_samples=1, max_epochs=1)
    request = SearchRequest(space=str(space), data=str(tiny_data), storage=str(tmp_path), name="failed")

    def unreachable(address: str | None, job_name: str, plugins: tuple = ()) -> None:
        raise UserError(f"--address {address}: no Ray cluster answered there")

    monkeypatch.setattr(runner, "start_ray", unreachable)
    for _ in range(2):  # the same command again fails the same way, not with "pass --resume"
        with pytest.raises(UserError, match="no Ray cluster answered"):
            run_search(dataclasses.replace(request, address="nowhere:6379"))
        assert not (tmp_path / "failed").exists()


def test_resume_of_a_start_cut_short_starts_it(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A driver killed after writing experiment.json but before Ray's first snapshot of the run:
    `--resume` starts the search (there is nothing to restore) instead of failing on tuner.pkl."""
    experiment = _recorded_experiment(tmp_path, tiny_data)
    (experiment.local_dir / "tuner.pkl").write_bytes(b"")  # a Tuner saved, no snapshot of its run
    (experiment.local_dir / "study.sqlite").write_bytes(b"")
    started: list[bool] = []

    def tuner(experiment, space, stores, restore: bool) -> None:
        started.append(restore)
        raise KeyboardInterrupt  # stop here: what matters is how the search was to go on

    monkeypatch.setattr(runner, "start_ray", lambda address, job_name, plugins=(): None)
    monkeypatch.setattr(runner, "build_tuner", tuner)
    with pytest.raises(KeyboardInterrupt):
        run_search(SearchRequest(space=None, storage=str(tmp_path), name=experiment.name, resume=True))
    assert started == [False]  # a new Tuner, not Tuner.restore
    assert sorted(p.name for p in experiment.local_dir.iterdir()) == ["experiment.json", "space.yaml"]


def test_build_stores_only(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def no_ray(*args, **kwargs) -> None:
        raise AssertionError("--build-stores-only started Ray")

    monkeypatch.setattr(ray, "init", no_ray)
    space = tiny_space(tmp_path, num_samples=1, max_epochs=1, features=", hop_length: {choice: [512, 1024]}")
    search_command.main(["--space", str(space), "--data", str(tiny_data), "--build-stores-only"])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.endswith(".h5")]
    assert len(printed) == 2 and all(Path(p).is_absolute() and Path(p).is_file() for p in printed)
    assert sorted(FeatureStore(Path(p)).setting.hop_length for p in printed) == [512, 1024]


def _tiny_searcher(tmp_path: Path, num_samples: int = 3) -> optuna_search.ResumableOptunaSearch:
    """A search's searcher on its study in SQLite (a new object each call: a driver started again)."""
    space = load_space(tiny_space(tmp_path, num_samples=num_samples, max_epochs=1))
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.sqlite'}")
    sampler = optuna_search.SpaceSampler(space)
    return optuna_search.ResumableOptunaSearch(
        sampler, "valid_clip_acc", mode="max", num_samples=num_samples, study_name="s", storage=storage
    )


def _write_run_snapshot(folder: Path, trial_ids: list[str]) -> None:
    """Ray's snapshot of the run as Ray writes it (only what the searcher reads of it: the trial ids)."""
    trial_data = [[json.dumps({"trial_id": trial_id, "status": "RUNNING"}), "{}"] for trial_id in trial_ids]
    (folder / "experiment_state-2026-12-07_09-38-59.json").write_text(json.dumps({"trial_data": trial_data}))


def _study_states(tmp_path: Path) -> list[optuna.trial.TrialState]:
    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    return [trial.state for trial in optuna.load_study(study_name="s", storage=storage).trials]


def test_restored_searcher_fails_the_study_trials_ray_does_not_resume(tmp_path: Path) -> None:
    """The study (SQLite) records a trial at once; Ray snapshots the run and the searcher every few
    seconds. A trial asked for after both snapshots, or one the searcher's snapshot has but the run's
    has not, is resumed by no one: closed. The search still gets its num_samples trials."""
    first = _tiny_searcher(tmp_path)
    first.suggest("kept")  # in both snapshots: Ray resumes this trial
    first.suggest("searcher-only")  # in the searcher's snapshot only
    first.save_to_dir(str(tmp_path), session_str="snapshot")
    first.suggest("lost")  # asked after both snapshots, then the driver was killed
    _write_run_snapshot(tmp_path, ["kept"])
    restored = _tiny_searcher(tmp_path)
    restored.restore_from_dir(str(tmp_path))
    RUNNING, FAIL = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL
    assert _study_states(tmp_path) == [RUNNING, FAIL, FAIL]
    assert isinstance(restored.suggest("second"), dict) and isinstance(restored.suggest("third"), dict)
    assert restored.suggest("fourth") == optuna_search.Searcher.FINISHED


def test_restored_searcher_skips_a_trial_only_the_run_snapshot_knows(tmp_path: Path) -> None:
    """Ray uploads its run snapshot and the searcher's as separate files: a driver killed between
    the two resumes a trial the restored searcher never proposed. Its results and completion are
    skipped (they used to raise KeyError and end the resumed search), it counts toward num_samples,
    and the study closed it on restore."""
    first = _tiny_searcher(tmp_path, num_samples=2)
    first.suggest("known")
    first.save_to_dir(str(tmp_path), session_str="snapshot")  # the searcher's last snapshot to arrive
    first.suggest("newer")  # in Ray's run snapshot, not in the searcher's
    _write_run_snapshot(tmp_path, ["known", "newer"])
    restored = _tiny_searcher(tmp_path, num_samples=2)
    restored.restore_from_dir(str(tmp_path))
    result = {"valid_clip_acc": 0.5, "training_iteration": 1}
    for trial_id in ("newer", "known"):
        restored.on_trial_result(trial_id, result)
        restored.on_trial_complete(trial_id, result)
    assert _study_states(tmp_path) == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert restored.suggest("third") == optuna_search.Searcher.FINISHED


def test_searcher_stops_at_num_samples() -> None:
    """Ray samples without end (its count is a file of its own); the searcher counts the trials."""
    space = load_space(SPACES_DIR / "cnn2d.yaml").with_search(num_samples=2)
    searcher = optuna_search.searcher(space, "count", optuna.storages.InMemoryStorage())
    assert [isinstance(searcher.suggest(t), dict) for t in "ab"] == [True, True]
    assert searcher.suggest("c") == optuna_search.Searcher.FINISHED


def test_searcher_proposes_no_more_trials_than_slots_and_a_restored_one_counts_none(tmp_path: Path) -> None:
    """Tune's max_concurrent_trials reaches the searcher (Ray's ConcurrencyLimiter hands it over): no
    trial is proposed beside the running ones, for which Ray would start a worker every time a slot
    frees and throw it away when a short trial's worker frees first. A restored searcher counts no
    trial as running: the ones Ray resumes come back without it, and a count restored from its
    snapshot could hold a slot for a trial never resumed."""
    searcher = _tiny_searcher(tmp_path, num_samples=5)
    limiter = ConcurrencyLimiter(searcher, max_concurrent=2)
    assert isinstance(limiter.suggest("a"), dict) and isinstance(limiter.suggest("b"), dict)
    assert limiter.suggest("c") is None  # both slots busy: Ray asks again later
    limiter.on_trial_complete("a", {"valid_clip_acc": 0.5, "training_iteration": 1})
    assert isinstance(limiter.suggest("c"), dict)
    assert limiter.suggest("d") is None
    searcher.save_to_dir(str(tmp_path), session_str="snapshot")
    _write_run_snapshot(tmp_path, ["a", "b", "c"])
    restored = _tiny_searcher(tmp_path, num_samples=5)
    ConcurrencyLimiter(restored, max_concurrent=2)
    restored.restore_from_dir(str(tmp_path))
    assert isinstance(restored.suggest("d"), dict) and isinstance(restored.suggest("e"), dict)
    assert restored.suggest("f") == optuna_search.Searcher.FINISHED


@pytest.mark.parametrize(
    ("cluster", "cpus", "gpus", "slots"),
    [
        ({"CPU": 2.0}, 1.0, 0.25, 2),
        ({"CPU": 16.0}, 2.0, 0.25, 8),
        ({"CPU": 16.0, "GPU": 1.0}, 1.0, 0.25, 4),
        ({"CPU": 1.0}, 2.0, 0.25, 1),
    ],
)
def test_trial_slots_follow_the_clusters_cpus_and_gpus(cluster: dict, cpus: float, gpus: float, slots: int) -> None:
    space = load_space(SPACES_DIR / "cnn2d.yaml")
    space = dataclasses.replace(
        space, search=dataclasses.replace(space.search, cpus_per_trial=cpus, gpus_per_trial=gpus)
    )
    assert tuner_module.trial_slots(space, cluster) == slots


def test_trial_folders_ray_did_not_resume_are_set_aside(tmp_path: Path) -> None:
    for name in ("cnn2d_adam_mel_1", "cnn2d_adam_mel_2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "params.json").write_text("{}")
    lifecycle.set_orphans_aside(tmp_path, [SimpleNamespace(path=str(tmp_path / "cnn2d_adam_mel_1"))])
    assert [folder.name for folder in experiments.trial_folders(tmp_path)] == ["cnn2d_adam_mel_1"]
    assert (tmp_path / "orphaned-trials" / "cnn2d_adam_mel_2" / "params.json").is_file()


def _recorded_experiment(storage: Path, data: Path) -> experiments.Experiment:
    """An experiment folder as a new search writes it before Ray starts."""
    space = load_space(tiny_space(storage, num_samples=1, max_epochs=1))
    experiment = experiments.locate(str(storage), "recorded", resume=False)
    search = dataclasses.asdict(space.search)
    experiments.write_metadata(experiment, space.path, search, load_dataset(data).describe(), {})
    return experiment


def _epochs_reported(folder: Path) -> int:
    """Epochs reported by all trials so far: one checkpoint each, written at once to the trial's
    folder (Ray copies its result files there from the driver only every so often)."""
    return len(list(folder.glob("*/checkpoint_*")))


def _run_snapshots(folder: Path) -> int:
    """Ray's snapshots of the run: each run of the search (first, resumed) writes one of its own."""
    return len(list(folder.glob("experiment_state-*.json")))


def _trials_with_results(folder: Path) -> list[str]:
    """Trials that reported at least one epoch."""
    if not folder.is_dir():
        return []
    return sorted(p.parent.name for p in folder.glob("*/result.json") if p.stat().st_size > 0)


def _listening_addresses() -> list[str]:
    """The TCP addresses this process and its descendants (Ray's processes) listen on."""
    import psutil  # shipped with Ray (ray/thirdparty_files), on the path once ray is imported

    found = []
    for process in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        found += [f"{c.laddr.ip} {c.laddr.port}" for c in connections if c.status == psutil.CONN_LISTEN]
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split()[0])
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def test_leaderboard_takes_a_config_ray_lost_from_the_trial_folder(tmp_path: Path) -> None:
    """A resumed search can hold a trial whose last result has no config: its folder's params.json has it."""
    import pyarrow.fs

    from search.leaderboard import trial_records

    config = {"model": {"arch": "cnn1d"}, "model.arch": "cnn1d"}
    (tmp_path / "with").mkdir()
    (tmp_path / "with" / "params.json").write_text(json.dumps(config))
    (tmp_path / "never-started").mkdir()
    fs = pyarrow.fs.LocalFileSystem()
    results = [
        SimpleNamespace(path=str(tmp_path / name), config=None, filesystem=fs, metrics_dataframe=None, error=None)
        for name in ("with", "never-started")
    ]
    records = trial_records(results)
    assert [record.config for record in records] == [config, None]


def test_the_ray_dashboard_is_left_out_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """GENRE_SEARCH_RAY_DASHBOARD=0 (scripts, this suite): a local Ray without its dashboard."""
    from ray.job_config import JobConfig

    from search import ray_session

    asked: dict = {}
    monkeypatch.setattr(ray_session.ray, "init", lambda **options: asked.update(options))
    for value, expected in (("0", False), ("1", True)):
        monkeypatch.setenv(ray_session.DASHBOARD_SWITCH, value)
        ray_session._init_local_ray(JobConfig())
        assert asked["include_dashboard"] is expected and asked["dashboard_host"] == "127.0.0.1"
