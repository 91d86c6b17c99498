"""report.py reuses a baseline.yaml experiment's finished report when its data and code match, and
`--no-baseline` leaves the baseline out (issue 30, item 5): on fake reports, no training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import report
from reporting import baselines
from reporting.build import ReportRequest
from reporting.clips import PREDICTIONS_CSV

FINGERPRINT = "f" * 64


def fake_report(folder: Path, fingerprint: str = FINGERPRINT, code: dict | None = None) -> Path:
    """An experiment folder whose report/ holds a complete report of `fingerprint`'s data."""
    report_dir = folder / "report"
    report_dir.mkdir(parents=True)
    (report_dir / PREDICTIONS_CSV).write_text("clip_id,split,seed,label,predicted\n")
    numbers = {"dataset": {"fingerprint": fingerprint}, "code": baselines.code_stamp() if code is None else code}
    (report_dir / baselines.REPORT_JSON).write_text(json.dumps(numbers))
    return folder


def reported(folder: Path) -> list[Path]:
    redone: list[Path] = []
    baselines.report_if_needed({"folder": str(folder)}, 3, lambda path, seeds: redone.append(path), FINGERPRINT)
    return redone


def test_a_report_of_the_same_data_and_code_is_reused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = fake_report(tmp_path / "base")
    assert baselines.why_not_reused(folder / "report", FINGERPRINT) is None
    assert reported(folder) == []
    assert "reusing its report" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("made", "why"),
    [
        ({"fingerprint": "0" * 64}, "other data"),
        ({"code": {"source_sha256": "0" * 64, "versions": {}}}, "other code"),
        ({"code": {}}, "other code"),  # a report from before reports recorded their code
    ],
)
def test_a_report_of_other_data_or_code_is_made_again(tmp_path: Path, made: dict, why: str) -> None:
    folder = fake_report(tmp_path / "base", **made)
    assert why in baselines.why_not_reused(folder / "report", FINGERPRINT)
    assert reported(folder) == [folder]


def test_an_incomplete_report_is_made_again(tmp_path: Path) -> None:
    folder = fake_report(tmp_path / "base")
    (folder / "report" / PREDICTIONS_CSV).unlink()
    assert reported(folder) == [folder]


def test_the_code_stamp_follows_the_sources_training_depends_on(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    stamp = baselines.code_stamp()
    assert set(stamp["versions"]) == set(baselines.CODE_PACKAGES) and len(stamp["source_sha256"]) == 64
    copy = tmp_path / "project"
    for name in ("training/fit.py", "models/cnn2d.py", "features/arrays.py", *baselines.CODE_FILES):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((baselines.PROJECT / name).read_bytes())
    monkeypatch.setattr(baselines, "PROJECT", copy)
    before = baselines.code_stamp()
    (copy / "training" / "fit.py").write_text((copy / "training" / "fit.py").read_text() + "\n# edited\n")
    assert baselines.code_stamp()["source_sha256"] != before["source_sha256"]


def test_no_baseline_flag() -> None:
    assert report.parse_args([]).baseline is True
    assert report.parse_args(["--no-baseline"]) == ReportRequest(baseline=False)
    with pytest.raises(SystemExit):
        report.parse_args(["--compare", "a", "b", "--no-baseline"])
