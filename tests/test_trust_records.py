"""What a report and a saved model may do with records someone else wrote, and what a report says:
plugin records run no code (experiment.json, a baseline.yaml sibling, model.pt), a recorded store
path outside the cache and the experiment folder is never deleted, a report cut off before
report.json is redone, and the report's wording is true of the run (issue 29, items 5, 6, 11, 15).

Experiments are written by hand (experiment.json, one trial's params.json and result.json, Ray's
state as plain JSON) over one tiny feature store, so each report retrains for seconds, without Ray."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

import predict
import report
from features.dataset import load_dataset
from features.extract import build_stores
from features.settings import FeatureSetting
from models import architecture_names, build_model, plugins, registry
from models.plugins import file_sha256, recorded_among
from reporting import baselines, build, clips, figures
from reporting.baselines import HOMEWORK_TEST_FINGERPRINT, clip_list_fingerprint, homework_baseline, homework_genres
from reporting.build import ReportRequest, make_report
from reporting.compare import config_differences
from reporting.importance import MIN_TRIALS, param_importances
from reporting.markdown import plural, seed_values, segments_wording
from reporting.results import per_genre
from tests.conftest import make_layout
from training.config import TrialConfig
from training.saved_model import save_model

REPO = Path(__file__).resolve().parent.parent
SETTING = FeatureSetting(kind="mel", n_bins=16)
MODEL = {"arch": "cnn1d", "params": {"depth": 2, "channels": 4, "dropout": 0.0}}
PLANTED_ARCH = "planted_net"  # what a crafted record names: no shipped architecture has this name
# A plugin file as a hostile folder would plant it: importing it is running it.
PLANTED = "from pathlib import Path\nPath({marker!r}).write_text('this plugin ran')\n"


@pytest.fixture(autouse=True)
def forget_plugins() -> None:
    """A plugin wrongly imported must not stay registered for the next test."""
    shipped, loaded = set(architecture_names()), dict(plugins._LOADED)
    yield
    registry.forget(set(architecture_names()) - shipped)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The homework's 8 genre names with 4 test clips each (not the homework's 227): one store."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("trust")
    make_layout(base / "data", genres=homework_genres(), per_split=(2, 1, 1), seconds=1.5)
    dataset = load_dataset(base / "data")
    paths = build_stores(dataset, [SETTING], base / "cache" / "stores", workers=1)
    return {"path": paths[SETTING], "dataset": dataset.describe()}


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports here are read for their words and files, not their pictures (seconds per report)."""
    names = {"confusion": "confusion.png", "curves": "learning_curves.png", "history": "search_history.png"}
    monkeypatch.setattr(build, "draw_report", lambda data, out_dir: dict(names), raising=False)


def write_experiment(storage: Path, name: str, store: dict, model: dict = MODEL, **recorded) -> Path:
    """An experiment folder as a finished one-trial search leaves it, from plain files only."""
    folder = storage / name
    (folder / "trial_0").mkdir(parents=True)
    config = {
        "features": SETTING.to_dict(),
        "model": model,
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": {"name": "none"},
        "training": {"segment_seconds": 1.0, "segments_per_clip": 2, "batch_size": 8, "eval_overlap": 0.0},
    }
    (folder / "trial_0" / "params.json").write_text(json.dumps(config))
    epoch = {"training_iteration": 1, "valid_clip_acc": 0.5, "valid_loss": 1.0, "time_total_s": 1.0}
    (folder / "trial_0" / "result.json").write_text(json.dumps(epoch) + "\n")
    trial = json.dumps({"relative_logdir": "trial_0", "status": "TERMINATED", "trial_id": "0"})
    (folder / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": [[trial, "{}"]]}))
    (folder / "search_seconds.txt").write_text("10.0\n")
    metadata = {
        "name": name,
        "storage": str(storage),
        "space_file": str(REPO / "spaces" / "cnn1d.yaml"),
        "search": {"max_epochs": 1, "scheduler": "asha"},
        "dataset": store["dataset"],
        "stores": {SETTING.name: str(store["path"])},
        "plugins": [],
        "started": "2026-01-01T00:00:00+0000",
        **recorded,
    }
    (folder / "experiment.json").write_text(json.dumps(metadata))
    return folder


def planted_plugin(tmp_path: Path) -> tuple[Path, Path, dict]:
    """A plugin file whose import leaves a marker, the marker's path, and the record naming it."""
    marker, plugin = tmp_path / "marker", tmp_path / "planted.py"
    plugin.write_text(PLANTED.format(marker=str(marker)))
    return plugin, marker, {"file": str(plugin), "sha256": file_sha256(plugin)}


def one_line_exit_2(capsys: pytest.CaptureFixture, main, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stopped.value.code == 2 and len(lines) == 1, lines
    return lines[0]


# --- item 5: records say what was used, they do not choose what runs ---------------------------


def test_experiment_json_plugin_record_runs_nothing(tmp_path: Path, store: dict, capsys) -> None:
    plugin, marker, record = planted_plugin(tmp_path)
    planted = {"arch": PLANTED_ARCH, "params": {}}
    folder = write_experiment(tmp_path / "runs", "crafted", store, model=planted, plugins=[record])
    line = one_line_exit_2(capsys, report.main, ["--experiment", str(folder), "--seeds", "1"])
    assert not marker.exists(), "the record's plugin ran"
    assert f"{folder / 'experiment.json'}: architecture '{PLANTED_ARCH}'" in line and str(plugin) in line
    assert "--plugin" in line
    # Named by the user, a file of other content is refused before it runs, naming both files.
    other = tmp_path / "other.py"
    other.write_text(plugin.read_text() + "# not the recorded file\n")
    argv = ["--experiment", str(folder), "--seeds", "1", "--plugin", str(other)]
    line = one_line_exit_2(capsys, report.main, argv)
    assert line.startswith(f"error: {other}: plugin file has sha256 {file_sha256(other)[:12]}")
    assert f"records {plugin} (sha256 {record['sha256'][:12]}" in line and not marker.exists()
    # What a baseline or a compared experiment is handed of the user's files: those it records.
    assert recorded_among([other, plugin], [record]) == (str(plugin),) and not marker.exists()


def test_sibling_baseline_plugin_record_runs_nothing(tmp_path: Path, store: dict, no_figures: None) -> None:
    """Our own experiment is reported; the baseline.yaml experiment beside it is reported without
    its plugin, i.e. not at all, and says so in one line."""
    _, marker, record = planted_plugin(tmp_path)
    storage = tmp_path / "runs"
    ours = write_experiment(storage, "mine", store)
    baseline_space = str(REPO / "spaces" / "baseline.yaml")
    planted = {"arch": PLANTED_ARCH, "params": {}}
    write_experiment(storage, "base", store, model=planted, plugins=[record], space_file=baseline_space)
    text = make_report(ReportRequest(experiment=str(ours), seeds=1)).read_text()
    assert not marker.exists()
    (row,) = [line for line in text.splitlines() if line.startswith("| baseline.yaml, experiment `base`")]
    assert f"reporting it failed: {storage / 'base' / 'experiment.json'}: architecture '{PLANTED_ARCH}'" in row


def test_model_file_plugin_record_runs_nothing(tmp_path: Path, capsys) -> None:
    plugin, marker, record = planted_plugin(tmp_path)
    config = TrialConfig.from_dict({"features": SETTING.to_dict(), "model": MODEL})
    network = build_model("cnn1d", MODEL["params"], 16, 3)
    model = tmp_path / "received.pt"
    save_model(model, network.state_dict(), config, ("a", "b", "c"), (np.zeros(16), np.ones(16)), {})
    payload = torch.load(model, weights_only=True)
    payload["plugin"], payload["config"]["model"]["arch"] = record, PLANTED_ARCH
    torch.save(payload, model)
    line = one_line_exit_2(capsys, predict.main, [str(model), "song.wav"])
    assert not marker.exists(), "the model's plugin record ran"
    assert f"{model}: architecture '{PLANTED_ARCH}' comes from a plugin file" in line and str(plugin) in line
    other = tmp_path / "other.py"
    other.write_text("# another file\n")
    line = one_line_exit_2(capsys, predict.main, [str(model), "song.wav", "--plugin", str(other)])
    assert str(other) in line and f"records {plugin} (sha256 {record['sha256'][:12]}" in line
    assert not marker.exists()


# --- item 6: nothing outside the cache and the experiment folder is deleted or rebuilt -----------


def test_crafted_store_path_outside_cache_is_not_deleted(tmp_path: Path, store: dict, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path / "cache"))
    victim = tmp_path / "precious.txt"
    victim.write_text("someone's file")
    folder = write_experiment(tmp_path / "runs", "crafted", store, stores={SETTING.name: str(victim)})
    with pytest.raises(SystemExit) as stopped:
        report.main(["--experiment", str(folder), "--seeds", "1"])
    assert victim.is_file() and victim.read_text() == "someone's file"
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stopped.value.code == 2 and len(lines) == 1, lines
    assert f"stores.{SETTING.name} = {victim}" in lines[0] and "nothing deleted" in lines[0]


# --- item 11: a report cut off before report.json is redone, not half-read -------------------------


def test_report_killed_before_report_json_is_redone_as_a_baseline(
    tmp_path: Path, store: dict, monkeypatch: pytest.MonkeyPatch, no_figures: None
) -> None:
    storage = tmp_path / "runs"
    base = write_experiment(storage, "base", store, space_file=str(REPO / "spaces" / "baseline.yaml"))
    ours = write_experiment(storage, "mine", store)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill after predictions.csv, before report.md and report.json

    with monkeypatch.context() as patch:
        patch.setattr(build, "render", killed)
        with pytest.raises(KeyboardInterrupt):
            make_report(ReportRequest(experiment=str(base), seeds=1))
    text = make_report(ReportRequest(experiment=str(ours), seeds=1)).read_text()  # reports the baseline again
    assert "| baseline.yaml, experiment `base` (its report) |" in text and "Paired on the same 8 test clips" in text
    assert baselines.report_complete(base / "report") and baselines.report_complete(ours / "report")
    assert not list(storage.glob("*/.report.partial-*"))  # the killed report's staging folder went with it
    # A folder with predictions.csv but no report.json (a kill while the files moved in) is redone too.
    (base / "report" / "report.json").unlink()
    redone: list[Path] = []
    baselines.report_if_needed({"folder": str(base)}, 1, lambda folder, seeds: redone.append(folder))
    assert redone == [base]
    # item 15, on the same report: the wording is true of this run.
    assert "do not overlap" in text and "overlapping segments" not in text  # training.eval_overlap 0
    assert "training.seed = 0 for" in text and "0..0" not in text and "(1 seed)" in text and "1 seeds" not in text
    assert "homework baseline, published" not in text and "not shown" in text  # 8 genres, 8 test clips


# --- item 15: what the report says is true of the run ---------------------------------------------


def test_homework_figure_only_for_its_own_test_list() -> None:
    names = [line for line in (REPO / "features" / "splits" / "test_filtered.txt").read_text().split()]
    clip_ids = [name.rsplit(".", 1)[0] for name in names]  # `genre/genre.00042`, as stores hold them
    assert len(clip_ids) == 227 and clip_list_fingerprint(clip_ids) == HOMEWORK_TEST_FINGERPRINT
    shared = REPO.parent / "shared" / "gtzan-splits" / "test_filtered.txt"
    if shared.is_file():  # where the constant was computed from
        assert sorted(shared.read_text().split()) == sorted(names)
    gtzan = {"synthetic": False, "classes": list(homework_genres())}
    assert homework_baseline(gtzan, clip_ids) == 0.6344
    assert homework_baseline(gtzan, clip_ids[:28]) is None  # the same 8 genres, another test split


def _add_trials(study: optuna.Study, count: int) -> None:
    """`count` completed trials that varied one parameter (no forest to fit: the note is the same)."""
    lr = {"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    for i in range(len(study.trials), len(study.trials) + count):
        study.add_trial(
            optuna.trial.create_trial(params={"optimizer.lr": 0.001 * (i + 1)}, distributions=lr, value=0.05 * i)
        )


def test_importance_withheld_below_its_minimum_and_says_what_it_rests_on(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.sqlite'}", direction="maximize")
    _add_trials(study, 6)
    few = param_importances(tmp_path, "s")
    assert few.values == {} and "withheld" in few.note and "6 completed trial(s)" in few.note
    assert f"below {MIN_TRIALS}" in few.note
    _add_trials(study, MIN_TRIALS - 6)
    enough = param_importances(tmp_path, "s")
    assert enough.values == {"optimizer.lr": 1.0} and enough.trials == MIN_TRIALS
    assert f"resting on {MIN_TRIALS} completed trials" in enough.note


def test_wording_of_seeds_overlap_and_classes() -> None:
    assert (plural(1, "seed"), plural(3, "seed")) == ("1 seed", "3 seeds")
    assert (seed_values(1), seed_values(3)) == ("training.seed = 0", "training.seed = 0..2")
    assert "overlap" not in segments_wording(0.0).replace("do not overlap", "")
    assert segments_wording(0.5) == "cut into segments that overlap by 50%"
    digits = per_genre(np.array([0, 1]), np.array([0, 0]), ("zero", "one"))
    assert digits.columns[0] == "class"
    assert per_genre(np.array([0, 1]), np.array([0, 1]), ("jazz", "blues")).columns[0] == "genre"


def test_compare_lists_only_settings_a_model_uses() -> None:
    a = {"augment": {"time_masks": 0, "time_mask_frames": 8}, "optimizer": {"name": "adam", "momentum": 0.9}}
    b = {"augment": {"time_masks": 0, "time_mask_frames": 20}, "optimizer": {"name": "adam", "momentum": 0.5}}
    assert config_differences(a, b).empty  # mask sizes with no masks, momentum for adam: neither uses them
    b["augment"]["time_masks"] = 2
    assert config_differences(a, b)["key"].tolist() == ["augment.time_mask_frames", "augment.time_masks"]


def test_search_history_draws_no_accuracy_for_a_trial_without_an_epoch(tmp_path: Path, monkeypatch) -> None:
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    table = pd.DataFrame(
        {
            "trial": ["t1", "t2", "t3"],
            "status": ["finished", "error", "stopped early"],
            "start_order": [1, 2, 3],
            "valid_clip_acc": [0.6, math.nan, 0.4],
        }
    )
    figures.search_history_png(table, tmp_path / "history.png")
    (axes,) = drawn[0].axes
    points = np.concatenate([collection.get_offsets() for collection in axes.collections])
    assert not np.any(points[:, 0] == 2), points  # no marker at all for trial 2, at 0.0 or elsewhere
    assert any(list(line.get_xdata()) == [2, 2] for line in axes.lines)  # a vertical mark where it started
    drawn[0].clf()


def test_staging_folder_of_a_dead_report_is_removed(tmp_path: Path) -> None:
    from reporting import outputs

    out = tmp_path / "exp" / "report"
    dead = tmp_path / "exp" / ".report.partial-999999999-abcd1234"
    dead.mkdir(parents=True)
    (dead / clips.PREDICTIONS_CSV).write_text("half")
    unrelated = tmp_path / "exp" / ".other.partial-999999999-abcd1234"
    unrelated.mkdir()
    staging = outputs.start(out)
    assert not dead.exists() and unrelated.exists() and staging.is_dir()
    (staging / "report.md").write_text("new")
    (staging / "report.json").write_text("{}")
    outputs.commit(staging, out, "report.json")
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"] and not staging.exists()
