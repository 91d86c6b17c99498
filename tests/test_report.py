"""report.py end to end on a tiny finished search (made once for the module): report.md with both
accuracies and real PNGs, saved models that `predict.py` uses, the test split read by the
report and never by the search, and bad input failing with one line and exit code 2."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import optuna
import pandas as pd
import pytest
import torch

import predict
import report
from features.store import FeatureStore
from reporting.baselines import HOMEWORK_TEST_ACC, homework_baseline, homework_genres
from reporting.figures import importance_png
from reporting.importance import param_importances
from reporting.locate import find_experiment
from reporting.retrain import open_store
from reporting.trials import best_trial, load_trials
from tests.conftest import make_layout, write_tone_clip

REPO = Path(__file__).resolve().parent.parent
GENRES = ("a", "b", "c")  # make_layout gives genre i a tone of 220 * (i + 1) Hz: easy to learn
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# reuse_workers: a trial runs in a finished trial's worker process, seconds less per trial than a new
# process importing torch (only the dashboard's worker names, tested in test_watch_live, need new ones).
SPACE = """
features: {kind: mel, mel: {n_bins: 32}}
model: {arch: cnn1d, cnn1d: {depth: 2, channels: {choice: [4, 8]}, dropout: 0.0}}
optimizer: {name: adam, lr: {loguniform: [3.0e-3, 3.0e-2]}}
schedule: {name: none}
training: {segment_seconds: 1.0, segments_per_clip: 4, batch_size: 4}
search: {num_samples: 3, max_epochs: 3, grace_period: 1, reduction_factor: 2, reuse_workers: true}
"""
MAX_EPOCHS = 3
# Every Python process of a command (Ray's trial workers included: they inherit the environment)
# loads this, records that it started, and records each split any FeatureStore reads: once a
# process imports features.store, its FeatureStore is wrapped (Ray's own processes, which never
# import it, do not pay for importing it).
RECORDER = """
import os
import sys


def _record(line):
    with open(os.environ["SPLIT_LOG"], "a") as log:
        log.write(f"{line}\\n")


def _wrap(store):
    load_split = store.FeatureStore.load_split

    def recorded(self, split):
        _record(f"split {os.getpid()} {split}")
        return load_split(self, split)

    store.FeatureStore.load_split = recorded


class _WrapOnImport:
    def find_spec(self, name, path, target=None):
        if name != "features.store":
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None:
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                _wrap(module)

            spec.loader.exec_module = exec_module
        return spec


if os.environ.get("SPLIT_LOG"):
    try:
        with open("/proc/self/cmdline", "rb") as f:
            _record("start " + str(os.getpid()) + " " + f.read().replace(b"\\0", b" ").decode(errors="replace"))
        sys.meta_path.insert(0, _WrapOnImport())
    except Exception:
        pass
"""


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A finished 3-trial search, made by a subprocess whose every process (Ray's workers included)
    records the feature-store splits it reads, and its report (2 seeds, with --merge-train-valid),
    made by report.py's main in this process, recording the same way (a process it started would
    record too: the environment is the same)."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("report")
    make_layout(base / "data", genres=GENRES, per_split=(4, 2, 2), seconds=3.0)
    (base / "tiny.yaml").write_text(SPACE)
    (base / "hooks").mkdir()
    (base / "hooks" / "sitecustomize.py").write_text(RECORDER)
    env = {
        **os.environ,
        "GENRE_SEARCH_CACHE": str(base / "cache"),
        "PYTHONPATH": os.pathsep.join([str(base / "hooks"), str(REPO)]),
        "OMP_NUM_THREADS": "1",  # tiny models: more threads than free cores only slows them down
        "RAY_DEDUP_LOGS": "0",
    }
    storage = base / "runs"
    args = ["run_search.py", "--space", str(base / "tiny.yaml"), "--data", str(base / "data")]
    searched = run([*args, "--storage", str(storage), "--name", "tiny"], {**env, "SPLIT_LOG": str(base / "search.log")})
    assert searched.returncode == 0, searched.stderr[-3000:]
    experiment = storage / "tiny"
    _fake_baseline_sibling(experiment)
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        for name in ("GENRE_SEARCH_CACHE", "PYTHONPATH"):
            patch.setenv(name, env[name])
        patch.setenv("SPLIT_LOG", str(base / "report.log"))
        _record_splits(patch, base / "report.log")
        report.main(["--experiment", "tiny", "--storage", str(storage), "--seeds", "2", "--merge-train-valid"])
    return {"base": base, "env": env, "storage": storage, "experiment": experiment, "stdout": printed.getvalue()}


def _record_splits(patch: pytest.MonkeyPatch, log: Path) -> None:
    """In this process, the recorder's lines for each split a FeatureStore reads (RECORDER)."""
    load_split = FeatureStore.load_split

    def recorded(self: FeatureStore, split: str):
        with open(log, "a") as file:
            file.write(f"split {os.getpid()} {split}\n")
        return load_split(self, split)

    patch.setattr(FeatureStore, "load_split", recorded)


def _fake_baseline_sibling(experiment: Path) -> None:
    """An older experiment of baseline.yaml on the same data, with only its leaderboard: the report
    must find it by the documented rule and show its search result."""
    sibling = experiment.parent / "baseline-old"
    sibling.mkdir()
    metadata = json.loads((experiment / "experiment.json").read_text())
    metadata.update(name="baseline-old", space_file=str(REPO / "spaces" / "baseline.yaml"))
    metadata["started"] = "2000-01-01T00:00:00+0000"
    (sibling / "experiment.json").write_text(json.dumps(metadata))
    (sibling / "leaderboard.csv").write_text(
        "trial,status,epochs,best_epoch,valid_clip_acc,valid_loss\nx,finished,5,5,0.5,1.0\n"
    )


def _log(path: Path) -> tuple[list[str], list[str]]:
    lines = path.read_text().splitlines()
    return [line.split(" ", 2)[2] for line in lines if line.startswith("start ")], [
        line.split()[2] for line in lines if line.startswith("split ")
    ]


@pytest.mark.slow
def test_search_never_reads_test_data_and_the_report_does(search: dict) -> None:
    commands, splits = _log(search["base"] / "search.log")
    assert any("default_worker" in command for command in commands), "the recorder did not reach Ray's workers"
    assert sorted(set(splits)) == ["train", "valid"]
    _, report_splits = _log(search["base"] / "report.log")
    assert "test" in report_splits


@pytest.mark.slow
def test_report_md_has_both_accuracies_and_real_pictures(search: dict) -> None:
    out = search["experiment"] / "report"
    text = (out / "report.md").read_text()
    assert text.strip() in search["stdout"]  # printed as well as written
    for label in ("validation clip accuracy", "test clip accuracy"):
        numbers = re.search(rf"\| \**{label}\** \| \**([0-9.]+) ± ([0-9.]+)\**", text)
        assert numbers, label
        assert all(0.0 <= float(value) <= 1.0 for value in numbers.groups())
    assert "test clip accuracy of the models trained on train+valid" in text
    assert "| baseline.yaml, experiment `baseline-old` (best trial in its search) | 0.5000 |" in text
    assert "0.6344" in text and "not shown" in text  # tone clips are not GTZAN
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"confusion.png", "confusion_train_valid.png", "learning_curves.png", "search_history.png"} <= set(images)
    for name in images:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        assert matplotlib.image.imread(out / name).shape[0] > 100
    numbers = json.loads((out / "report.json").read_text())
    assert len(numbers["test"]["seeds"]) == 2 and all(0.0 <= v <= 1.0 for v in numbers["test"]["seeds"])
    assert numbers["search"]["trials"] == 3 and numbers["search"]["epochs_run"] <= 3 * MAX_EPOCHS


@pytest.mark.slow
def test_intervals_are_in_report_md_and_report_json(search: dict) -> None:
    out = search["experiment"] / "report"
    text, numbers = (out / "report.md").read_text(), json.loads((out / "report.json").read_text())
    for key, label in (("valid", "validation clip accuracy"), ("test", r"\*\*test clip accuracy\*\*")):
        interval = numbers["intervals"][key]
        assert interval["low"] <= numbers[key]["mean"] == interval["estimate"] <= interval["high"]
        assert re.search(rf"\| {label} \|[^|]+\| \**\[{interval['low']:.4f}, {interval['high']:.4f}\]", text), key
    assert "bootstrap over clips" in numbers["intervals"]["method"] and "bootstrap over clips" in text
    assert numbers["intervals"]["test_ensemble"]["estimate"] == numbers["test_ensemble"]
    optimism = numbers["optimism"]
    assert optimism["optimism"] == pytest.approx(optimism["search_valid"] - numbers["valid"]["mean"])
    assert "Optimism of the search" in text and "macro-F1" in text
    assert set(numbers["per_class"]) >= {"precision", "accuracy (recall)", "F1"}
    clips = pd.read_csv(out / "predictions.csv")  # per clip, per seed, per split: what --compare pairs on
    assert len(clips) == 2 * (6 + 6) and set(clips["split"]) == {"valid", "test"}
    assert clips[clips["split"] == "test"].groupby("seed")["correct"].mean().tolist() == numbers["test"]["seeds"]


@pytest.mark.slow
def test_best_trial_is_best_over_all_epochs(search: dict) -> None:
    import pandas as pd

    trials = load_trials(search["experiment"], max_epochs=MAX_EPOCHS)
    best = best_trial(trials, search["experiment"])
    rows = []
    for progress in search["experiment"].glob("*/progress.csv"):
        history = pd.read_csv(progress)
        top = history.sort_values(["valid_clip_acc", "valid_loss"], ascending=[False, True]).iloc[0]
        rows.append((-top["valid_clip_acc"], top["valid_loss"], progress.parent.name, int(top["training_iteration"])))
    expected = min(rows)
    assert (best.name, best.best_epoch) == (expected[2], expected[3])
    assert best.config == {k: v for k, v in trials.configs[best.name].items() if "." not in k}


@pytest.mark.slow
def test_saved_model_predicts_the_genre_of_a_tone(search: dict, tmp_path: Path) -> None:
    model = search["experiment"] / "report" / "model-seed0.pt"
    saved = predict.load_model(model)  # weights_only: plain containers and tensors only
    assert saved.classes == GENRES and saved.about["trained_on"] == "train"
    clip = tmp_path / "unknown.wav"
    write_tone_clip(clip, seconds=4.0, pitch_hz=220.0 * 3, seed=1234)  # genre "c"'s pitch, a new clip
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    result = run(["predict.py", str(model), str(tmp_path / "broken.wav"), str(clip)], search["env"])
    assert result.returncode == 1  # one file failed, the other still printed
    assert result.stdout.splitlines()[0].startswith(f"{clip}: c ")
    assert [line for line in result.stderr.splitlines() if "broken.wav" in line] == [
        line for line in result.stderr.splitlines() if line.startswith("error:")
    ]


def _one_line_exit_2(capsys: pytest.CaptureFixture, main, argv: list[str], names: Path | str) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(names) in lines[0], lines


@pytest.mark.slow
def test_bad_inputs_give_one_line_and_exit_code_2(search: dict, tmp_path: Path, capsys) -> None:
    storage = search["storage"]
    _one_line_exit_2(capsys, report.main, ["--storage", str(tmp_path / "empty")], tmp_path / "empty")
    _one_line_exit_2(capsys, report.main, ["--experiment", str(tmp_path)], tmp_path)  # not an experiment
    _one_line_exit_2(capsys, report.main, ["--experiment", "nope", "--storage", str(storage)], storage / "nope")
    unfinished = tmp_path / "runs" / "unfinished"
    shutil.copytree(search["experiment"], unfinished, ignore=shutil.ignore_patterns("report"))
    for metrics in [*unfinished.glob("*/progress.csv"), *unfinished.glob("*/result.json")]:
        metrics.unlink()  # as if every trial died before its first epoch
    _one_line_exit_2(capsys, report.main, ["--experiment", str(unfinished)], unfinished)
    model = search["experiment"] / "report" / "model-seed0.pt"
    payload = torch.load(model, weights_only=True)
    payload["config"]["model"]["params"]["channels"] = 3  # weights no longer fit the network
    torch.save(payload, tmp_path / "other.pt")
    _one_line_exit_2(capsys, predict.main, [str(tmp_path / "other.pt"), "x.wav"], tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    _one_line_exit_2(capsys, predict.main, [str(tmp_path / "text.pt"), "x.wav"], tmp_path / "text.pt")


@pytest.mark.slow
def test_missing_store_is_rebuilt_from_the_recorded_dataset(search: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path))  # only stores in the cache are rebuilt
    metadata = json.loads((search["experiment"] / "experiment.json").read_text())
    ((name, listed),) = metadata["stores"].items()
    setting = FeatureStore(listed).setting
    moved = tmp_path / "stores" / Path(listed).name
    metadata["stores"][name] = str(moved)  # as if the cache folder had been cleaned
    store = open_store(search["experiment"], metadata, setting)
    assert store.path == moved and moved.is_file()
    assert store.dataset["fingerprint"] == metadata["dataset"]["fingerprint"]


@pytest.mark.slow
def test_default_experiment_is_the_latest_started(search: dict) -> None:
    assert find_experiment(None, str(search["storage"])) == search["experiment"]  # not the older sibling


def test_homework_baseline_only_on_gtzan_genres() -> None:
    gtzan = {"synthetic": False, "classes": list(homework_genres())}
    test_ids = [line.rsplit(".", 1)[0] for line in (REPO / "features/splits/test_filtered.txt").read_text().split()]
    assert len(homework_genres()) == 8 and homework_baseline(gtzan, test_ids) == HOMEWORK_TEST_ACC
    assert homework_baseline({**gtzan, "synthetic": True}, test_ids) is None
    assert homework_baseline({"synthetic": False, "classes": list(GENRES)}) is None


def _study(tmp_path: Path, trials: list[dict]) -> None:
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.sqlite'}", direction="maximize")
    distributions = {
        "optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
        "model.cnn2d.depth": optuna.distributions.IntDistribution(1, 4),
    }
    for number, params in enumerate(trials):
        chosen = {name: distributions[name] for name in params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=chosen, value=0.1 * number))


def test_importance_handles_small_studies(tmp_path: Path) -> None:
    assert param_importances(tmp_path, "s").values == {}  # no study file at all
    _study(tmp_path, [{"optimizer.lr": 0.01}])
    assert "withheld" in param_importances(tmp_path, "s").note
    (tmp_path / "study.sqlite").unlink()
    _study(tmp_path, [{"optimizer.lr": 0.001 * (i + 1)} for i in range(10)])
    assert param_importances(tmp_path, "s").values == {"optimizer.lr": 1.0}  # a single parameter
    (tmp_path / "study.sqlite").unlink()
    _study(tmp_path, [{"optimizer.lr": 0.001 * (i + 1), "model.cnn2d.depth": 1 + i % 3} for i in range(12)])
    values = param_importances(tmp_path, "s").values
    assert set(values) == {"optimizer.lr", "model.cnn2d.depth"} and abs(sum(values.values()) - 1.0) < 1e-6
    picture = importance_png(values, tmp_path / "importance.png")
    assert picture.read_bytes()[:8] == PNG_SIGNATURE and matplotlib.image.imread(picture).ndim == 3
