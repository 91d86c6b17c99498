"""`report.py --compare A B` on reported experiments built cheaply (experiment.json, report.json
and predictions.csv as a report writes them, no training): the side-by-side report with its
intervals, paired test and figure, and one-line refusals of experiments that are not comparable."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import report
from reporting import clips
from reporting.compare import config_differences

CLASSES = ("a", "b", "c")
CLIPS = tuple(f"{CLASSES[i % 3]}/{CLASSES[i % 3]}.{i:05d}" for i in range(60))
LABELS = np.arange(60) % 3


def _probs(correct: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(clips, classes) probabilities whose argmax is the label where `correct`, another class elsewhere."""
    predicted = np.where(correct, LABELS, (LABELS + 1 + rng.integers(0, 2, len(LABELS))) % 3)
    probs = np.full((len(LABELS), 3), 0.1)
    probs[np.arange(len(LABELS)), predicted] = 0.8
    return probs


def _reported(storage: Path, name: str, correct: np.ndarray, fingerprint: str = "fp1", lr: float = 0.01) -> Path:
    """An experiment folder with a report of `correct` ((seeds, clips) booleans) on the test clips."""
    folder = storage / name
    (folder / "report").mkdir(parents=True)
    dataset = {"fingerprint": fingerprint, "root": "/data", "classes": list(CLASSES)}
    (folder / "experiment.json").write_text(json.dumps({"name": name, "dataset": dataset}))
    config = {"model": {"arch": "cnn2d", "params": {"depth": 3}}, "optimizer": {"name": "adam", "lr": lr}}
    (folder / "report" / "report.json").write_text(json.dumps({"best_trial": f"{name}_0", "config": config}))
    rng = np.random.default_rng(len(name))
    probs = np.stack([_probs(seed, rng) for seed in correct])
    test = clips.ClipResults(CLASSES, CLIPS, LABELS, probs)
    clips.write({"valid": test, "test": test}, list(range(len(correct))), folder / "report")
    return folder


def _one_line_exit_2(capsys: pytest.CaptureFixture, argv: list[str], *names: object) -> None:
    with pytest.raises(SystemExit) as stopped:
        report.main(argv)
    assert stopped.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and all(str(name) in lines[0] for name in names), lines


def test_compare_writes_intervals_the_paired_test_and_a_figure(tmp_path: Path) -> None:
    baseline = np.random.default_rng(0).random((3, 60)) < 0.5
    better = np.ones((3, 60), dtype=bool)  # right on every clip the baseline gets wrong, and on the rest
    _reported(tmp_path, "best", better, lr=0.003)
    _reported(tmp_path, "base", baseline)
    report.main(["--compare", "best", "base", "--storage", str(tmp_path)])
    out = tmp_path / "compare-best-vs-base"
    text = (out / "report.md").read_text()
    assert "**Verdict: `best` is better than `base` at the 5% level.**" in text
    assert "McNemar" in text and "| optimizer.lr | 0.003 | 0.0100 |" in text
    assert "| A: `best` | `best_0` | 3 | 1.0000 [1.0000, 1.0000] |" in text
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["comparison"]["verdict"] == "better than `base` at the 5% level"
    assert numbers["comparison"]["mcnemar"]["only_b"] == 0 and numbers["comparison"]["mcnemar"]["pvalue"] < 0.05
    low, high = numbers["b"]["test"]["low"], numbers["b"]["test"]["high"]
    assert low < baseline.mean() < high and high - low > 0.1  # 60 clips: a wide interval
    assert (
        numbers["per_class"]["difference"]
        == pytest.approx(  # clip i is of class i % 3
            [1.0 - baseline[:, k::3].mean() for k in range(3)]
        )
    )
    assert matplotlib.image.imread(out / "comparison.png").shape[0] > 100


def test_compare_of_identical_results_is_not_distinguishable(tmp_path: Path) -> None:
    correct = np.random.default_rng(1).random((2, 60)) < 0.7
    _reported(tmp_path, "one", correct)
    _reported(tmp_path, "two", correct)
    out = tmp_path / "side"
    report.main(["--compare", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(out)])
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["comparison"]["verdict"] == "not distinguishable from `two` on 60 test clips"
    assert "The two configs are identical." in (out / "report.md").read_text()


def test_compare_refuses_different_data_or_clips(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    correct = np.ones((1, 60), dtype=bool)
    a = _reported(tmp_path, "a", correct)
    b = _reported(tmp_path, "b", correct, fingerprint="fp2")
    _one_line_exit_2(capsys, ["--compare", str(a), str(b)], a, b, "fp1", "fp2")
    c = _reported(tmp_path, "c", correct)
    table = (c / "report" / clips.PREDICTIONS_CSV).read_text().replace("a/a.00000", "a/a.99999")
    (c / "report" / clips.PREDICTIONS_CSV).write_text(table)
    _one_line_exit_2(capsys, ["--compare", str(a), str(c)], a, c, "different test clips")
    assert not list(tmp_path.glob("compare-*"))


def test_config_differences_name_dotted_keys() -> None:
    a = {"model": {"arch": "cnn2d", "cnn2d": {"depth": 3}}, "optimizer": {"lr": 0.01}}
    b = {"model": {"arch": "resnet", "resnet": {"blocks": 2}}, "optimizer": {"lr": 0.01}}
    rows = config_differences(a, b).values.tolist()
    expected = [["model.arch", "cnn2d", "resnet"], ["model.cnn2d.depth", 3, "n/a"], ["model.resnet.blocks", "n/a", 2]]
    assert rows == expected
