"""An experiment at a URI (common.remote), through pyarrow's filesystems as with S3: here a
file:// URI, so no server is needed (tests/cluster/test_bucket.py runs a real S3-compatible one)."""

from __future__ import annotations

from pathlib import Path

from common import experiment as experiments
from common import remote


def test_own_files_go_up_and_what_the_report_reads_comes_down(tmp_path: Path) -> None:
    bucket, driver, elsewhere = tmp_path / "bucket", tmp_path / "driver", tmp_path / "elsewhere"
    storage = f"file://{bucket}"
    (bucket / "e" / "trial_1" / "checkpoint_000000").mkdir(parents=True)  # as Ray Tune writes them
    (bucket / "e" / "trial_1" / "checkpoint_000000" / "state.pt").write_bytes(b"weights")
    (bucket / "e" / "trial_1" / "result.json").write_text('{"training_iteration": 1}\n')
    (bucket / "e" / "searcher-state-x.pkl").write_bytes(b"pickle")
    (bucket / "e" / "experiment_state-x.json").write_text("{}")
    driver.mkdir()
    (driver / experiments.METADATA_FILE).write_text('{"name": "e"}')
    (driver / experiments.LEADERBOARD_FILE).write_text("trial\ntrial_1\n")

    remote.upload(experiments.Experiment(storage, "e", driver))
    assert (bucket / "e" / experiments.METADATA_FILE).read_text() == '{"name": "e"}'
    assert (bucket / "e" / experiments.LEADERBOARD_FILE).is_file()

    (elsewhere / experiments.LEADERBOARD_FILE).parent.mkdir()
    (elsewhere / experiments.LEADERBOARD_FILE).write_text("newer, kept\n")  # a local copy is the newer
    remote.download(experiments.Experiment(storage, "e", elsewhere))
    fetched = sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*") if p.is_file())
    assert fetched == ["experiment.json", "experiment_state-x.json", "leaderboard.csv", "trial_1/result.json"]
    assert (elsewhere / experiments.LEADERBOARD_FILE).read_text() == "newer, kept\n"


def test_a_folder_storage_uploads_nothing(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / experiments.METADATA_FILE).write_text("{}")
    remote.upload(experiments.Experiment(str(tmp_path), "e", tmp_path / "e"))
    assert [p.name for p in tmp_path.rglob("*")] == ["e", experiments.METADATA_FILE]
