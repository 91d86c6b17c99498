"""`--data` beyond split lists: class folders without lists (a split made, stratified, seeded,
grouped when asked, kept in the cache, never in the data folder), manifests with a split column or
folds, the layout detected and printed, the split reopened from an experiment's record, mixed
audio formats, clips shorter than every segment, and every bad input as one line."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import stat
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from common.errors import UserError
from features.dataset import PROJECT_SPLITS_DIR, SPLIT_NAMES, Dataset
from features.durations import check_segment_seconds
from features.extract import build_stores
from features.layouts import DataOptions, open_dataset, open_recorded, stores_variant
from features.locate import cache_dir, default_stores_dir
from features.settings import FeatureSetting
from features.store import FeatureStore
from search.runner import SearchRequest, run_search
from tests.conftest import make_class_folders, make_manifest, write_tone_clip

CLASSES = ("bird", "cat", "dog")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    root = tmp_path / "sounds"
    make_class_folders(root, CLASSES, per_class=10)
    return root


def ids(dataset: Dataset) -> dict[str, list[str]]:
    return {split: [clip.clip_id for clip in dataset.splits[split]] for split in SPLIT_NAMES}


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under `root` with its size, modification time and mode."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_mode) for p in root.rglob("*")
    }


# Class folders without split lists


def test_class_folders_get_a_stratified_split_made_once(folders: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = open_dataset(folders)
    first = capsys.readouterr().out
    assert "data: class folders without split lists -> made a stratified 0.6/0.2/0.2 split (seed 0)" in first
    assert "6/2/2" not in first and "18/6/6 train/valid/test clips of 3 classes" in first
    assert dataset.classes == CLASSES
    per_class = {split: Counter(dataset.classes[c.label] for c in dataset.splits[split]) for split in SPLIT_NAMES}
    assert per_class == {
        "train": dict.fromkeys(CLASSES, 6),
        "valid": dict.fromkeys(CLASSES, 2),
        "test": dict.fromkeys(CLASSES, 2),
    }
    every = [clip_id for split in ids(dataset).values() for clip_id in split]
    assert len(every) == len(set(every)) == 30
    assert dataset.split_lists.parent == cache_dir() / "splits"
    assert (dataset.split_lists / "test_filtered.txt").read_text().split() == [
        f"{clip_id}.wav" for clip_id in ids(dataset)["test"]
    ]
    again = open_dataset(folders)
    assert "-> reused a stratified 0.6/0.2/0.2 split (seed 0)" in capsys.readouterr().out
    assert ids(again) == ids(dataset) and again.fingerprint() == dataset.fingerprint()


def test_the_same_split_is_made_again_from_scratch(folders: Path) -> None:
    dataset = open_dataset(folders)
    shutil.rmtree(cache_dir() / "splits")
    assert ids(open_dataset(folders)) == ids(dataset)


def test_split_settings_choose_the_split_and_its_cache_entry(folders: Path) -> None:
    default = open_dataset(folders)
    reseeded = open_dataset(folders, DataOptions(split_seed=1))
    halves = open_dataset(folders, DataOptions(split="0.5,0.3,0.2"))
    assert ids(reseeded) != ids(default) and reseeded.split_lists != default.split_lists
    assert [len(halves.splits[s]) for s in SPLIT_NAMES] == [15, 9, 6]
    assert default_stores_dir(default.root, stores_variant(default)) != default_stores_dir(
        reseeded.root, stores_variant(reseeded)
    )


def test_grouped_split_keeps_each_group_in_one_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "speech"
    # Ten speakers, each saying every class twice: files such as "3_jackson_12.wav".
    name = "{label}_speaker{number:02d}_{index}.wav"
    for index, label in enumerate(CLASSES):
        for clip in range(20):
            write_tone_clip(
                root / label / name.format(label=label, number=clip // 2, index=clip), 0.5, 220.0 * (index + 1), clip
            )
    speaker = r"_(speaker\d+)_"
    dataset = open_dataset(root, DataOptions(group=speaker))
    assert "grouped by '_(speaker\\d+)_'" in capsys.readouterr().out
    speakers = {split: {re.search(speaker, c.clip_id)[1] for c in dataset.splits[split]} for split in SPLIT_NAMES}
    assert not (
        speakers["train"] & speakers["valid"]
        or speakers["train"] & speakers["test"]
        or speakers["valid"] & speakers["test"]
    )
    assert all(Counter(c.label for c in dataset.splits[split]).keys() == {0, 1, 2} for split in SPLIT_NAMES)
    ungrouped = open_dataset(root)
    ungrouped_speakers = {
        split: {re.search(speaker, c.clip_id)[1] for c in ungrouped.splits[split]} for split in SPLIT_NAMES
    }
    assert ungrouped_speakers["train"] & ungrouped_speakers["test"]  # what grouping prevents


def test_the_data_folder_is_never_written_to(folders: Path) -> None:
    for path in [folders, *folders.iterdir()]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = tree(folders)
    try:
        dataset = open_dataset(folders)
        setting = FeatureSetting.from_dict({"kind": "mel", "n_bins": 16})
        build_stores(dataset, [setting], default_stores_dir(dataset.root, stores_variant(dataset)), workers=1)
        assert tree(folders) == before
    finally:
        for path in [folders, *folders.iterdir()]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_gtzan_genre_folders_without_lists_get_the_project_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "gtzan"
    listed = [name for s in SPLIT_NAMES for name in (PROJECT_SPLITS_DIR / f"{s}_filtered.txt").read_text().split()]
    for name in listed[::2]:  # half the listed clips (copies of GTZAN differ), as .au, GTZAN's own format
        write_tone_clip(root / Path(name).with_suffix(".au"), seconds=0.1, pitch_hz=440.0, seed=0)
    dataset = open_dataset(root)
    assert dataset.split_lists == PROJECT_SPLITS_DIR and len(dataset.classes) == 8
    line = "GTZAN's genre folders without split lists -> the project's fault-filtered 8-genre split"
    assert line in capsys.readouterr().out
    for name in listed[::2][: len(listed) // 8]:  # most listed clips missing: other files in genre folders
        (root / Path(name).with_suffix(".au")).unlink()
    assert open_dataset(root).source["layout"] == "made split"


def test_genre_named_folders_with_a_made_split_are_not_compared_with_the_homework(tmp_path: Path) -> None:
    from reporting.baselines import homework_baseline, homework_genres

    make_class_folders(tmp_path / "copy", homework_genres(), per_class=5, seconds=0.1)  # not GTZAN's files
    dataset = open_dataset(tmp_path / "copy")
    assert dataset.source["layout"] == "made split" and dataset.classes == homework_genres()
    assert homework_baseline(dataset.describe()) is None


def test_an_experiment_reopens_its_made_split(folders: Path) -> None:
    dataset = open_dataset(folders, DataOptions(split="0.4,0.3,0.3", split_seed=5))
    described = dataset.describe()
    shutil.rmtree(cache_dir() / "splits")  # a cleaned cache: the recorded settings make it again
    reopened = open_recorded(described)
    assert ids(reopened) == ids(dataset) and reopened.fingerprint() == dataset.fingerprint()


def test_resume_reopens_the_recorded_split_and_refuses_changed_data(folders: Path, tmp_path: Path) -> None:
    from common import experiment as experiments
    from search import lifecycle

    dataset = open_dataset(folders, DataOptions(split_seed=2))
    experiment = experiments.Experiment(str(tmp_path / "runs"), "resumed", tmp_path / "runs" / "resumed")
    experiment.local_dir.mkdir(parents=True)
    (experiment.local_dir / experiments.METADATA_FILE).write_text(json.dumps({"dataset": dataset.describe()}))
    shutil.rmtree(cache_dir() / "splits")
    assert ids(lifecycle.recorded_dataset(experiment, None)) == ids(dataset)
    write_tone_clip(folders / "cat" / "new.wav", 1.0, 440.0, seed=99)  # another clip: another split
    with pytest.raises(UserError, match=r"it has changed since .*: resuming would score trials on other data"):
        lifecycle.recorded_dataset(experiment, None)
    request = SearchRequest(space=None, resume=True, name="resumed", storage=experiment.storage)
    with pytest.raises(UserError, match=r"^the split is recorded in the experiment: resume without --split"):
        run_search(dataclasses.replace(request, data_options=DataOptions(split="0.5,0.25,0.25")))


# Manifests


def esc50_like(root: Path, folds: int = 4, per_fold: int = 3) -> Path:
    """ESC-50's shape: meta/esc50.csv (filename, fold, target, category), audio in audio/."""
    rows = []
    for fold in range(1, folds + 1):
        for index, label in enumerate(CLASSES[:per_fold]):
            name = f"{fold}-{index}-A-{index}.wav"
            write_tone_clip(root / "audio" / name, 0.5, 220.0 * (index + 1), seed=fold * 10 + index)
            rows.append({"filename": name, "fold": fold, "target": index, "category": label, "esc10": False})
    return make_manifest(root / "meta" / "esc50.csv", rows)


def test_manifest_with_a_split_column(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spellings = {"Train": "train", "validation": "valid", "TEST": "test"}
    rows = []
    for number, (written, split) in enumerate([*spellings.items()] * 2):
        path = f"clips/{split}/{number}.flac"
        write_tone_clip(tmp_path / path, 0.5, 440.0, seed=number)
        rows.append({"Path": path, "label": CLASSES[number % 2], "split": written})
    manifest = make_manifest(tmp_path / "labels.csv", rows)
    dataset = open_dataset(manifest)
    assert (
        f"data: manifest {manifest} -> its split column: 2/2/2 train/valid/test clips of 2 classes"
        in capsys.readouterr().out
    )
    assert ids(dataset) == {
        "train": ["clips/train/0", "clips/train/3"],
        "valid": ["clips/valid/1", "clips/valid/4"],
        "test": ["clips/test/2", "clips/test/5"],
    }
    assert [clip.label for clip in dataset.splits["train"]] == [0, 1] and dataset.classes == CLASSES[:2]
    assert open_recorded(dataset.describe()).fingerprint() == dataset.fingerprint()


def test_manifest_with_folds_esc50_shape(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = esc50_like(tmp_path)
    audio = tmp_path / "audio"
    dataset = open_dataset(manifest, DataOptions(audio_dir=str(audio)))
    assert (
        "-> folds: test 4, valid 3, the rest train: 6/3/3 train/valid/test clips of 3 classes"
        in capsys.readouterr().out
    )
    assert {c.clip_id[0] for c in dataset.splits["test"]} == {"4"} and {
        c.clip_id[0] for c in dataset.splits["train"]
    } == {"1", "2"}
    chosen = open_dataset(manifest, DataOptions(audio_dir=str(audio), test_fold=1, valid_fold=2))
    assert {c.clip_id[0] for c in chosen.splits["test"]} == {"1"} and {
        c.clip_id[0] for c in chosen.splits["valid"]
    } == {"2"}
    assert chosen.fingerprint() != dataset.fingerprint()  # another split is another dataset
    assert default_stores_dir(chosen.root, stores_variant(chosen)) != default_stores_dir(
        dataset.root, stores_variant(dataset)
    )
    reopened = open_recorded(chosen.describe())
    assert ids(reopened) == ids(chosen) and reopened.fingerprint() == chosen.fingerprint()


def test_manifest_urbansound8k_shape_finds_fold_folders(tmp_path: Path) -> None:
    rows = []
    for fold in (1, 2, 3):
        for index, label in enumerate(CLASSES):
            name = f"{fold}{index}-0-0-0.wav"
            write_tone_clip(tmp_path / "audio" / f"fold{fold}" / name, 0.5, 440.0, seed=index)
            rows.append({"slice_file_name": name, "fsID": 1, "fold": fold, "classID": index, "class": label})
    manifest = make_manifest(tmp_path / "metadata" / "UrbanSound8K.csv", rows)
    dataset = open_dataset(manifest, DataOptions(audio_dir=str(tmp_path / "audio")))
    assert ids(dataset)["test"] == ["fold3/30-0-0-0", "fold3/31-0-0-0", "fold3/32-0-0-0"]
    assert dataset.classes == CLASSES


# Formats and lengths


def test_mixed_formats_rates_and_channels_decode(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    formats = [
        ("a.flac", {}),
        ("b.wav", {"rate": 8000}),
        ("c.wav", {"rate": 48000, "channels": 2, "subtype": "PCM_24"}),
        ("d.ogg", {"subtype": "VORBIS"}),
    ]
    for index, label in enumerate(CLASSES):
        for name, options in formats:
            for copy in range(3):
                write_tone_clip(root / label / f"{copy}{name}", 1.0, 220.0 * (index + 1), seed=copy, **options)
    assert (
        soundfile.info(root / "bird/0c.wav").channels == 2 and soundfile.info(root / "bird/0c.wav").subtype == "PCM_24"
    )
    dataset = open_dataset(root, DataOptions(split="0.5,0.25,0.25"))
    setting = FeatureSetting.from_dict({"kind": "mel", "n_bins": 16})
    (path,) = build_stores(dataset, [setting], tmp_path / "stores", workers=1).values()
    store = FeatureStore(path)
    assert store.skipped == []
    train = store.load_split("train")
    one_second = setting.sample_rate / setting.hop_length
    assert np.all(np.abs(train.lengths - one_second) <= 2)  # every file resampled to the same length
    assert len(train) == 18 and {Path(clip_id).name[1] for clip_id in train.clip_ids} == set("abcd")


def test_segment_choices_longer_than_every_clip_are_said_to_change_nothing(
    folders: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset = open_dataset(folders)  # clips of 1 s
    capsys.readouterr()
    check_segment_seconds(dataset, [3.0, 5.0])
    counted = len(dataset.splits["train"]) + len(dataset.splits["valid"])
    assert capsys.readouterr().out == (
        f"data: of {counted} train and valid clips, {counted} shorter than 3 s, {counted} shorter than 5 s "
        "(median 1.00 s, shortest 1.00 s): a clip shorter than a segment is one segment, taken whole; every "
        "training.segment_seconds choice is longer than every clip (the longest lasts 1.00 s), so it changes "
        "nothing here: to crop, choose at most 1.00 (9 clips in 10 are longer)\n"
    )


def test_clips_shorter_than_some_segments_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "words"
    for index, label in enumerate(CLASSES):
        for clip in range(10):
            write_tone_clip(root / label / f"{clip}.wav", 0.5 if clip % 2 else 2.5, 220.0 * (index + 1), seed=clip)
    dataset = open_dataset(root, DataOptions(split="0.5,0.25,0.25"))
    capsys.readouterr()
    check_segment_seconds(dataset, [1.0, 3.0])
    short = sum(clip.path.stem in "13579" for split in ("train", "valid") for clip in dataset.splits[split])
    counted = len(dataset.splits["train"]) + len(dataset.splits["valid"])
    median = np.median(
        [0.5 if clip.path.stem in "13579" else 2.5 for s in ("train", "valid") for clip in dataset.splits[s]]
    )
    assert capsys.readouterr().out == (
        f"data: of {counted} train and valid clips, {short} shorter than 1 s, {counted} shorter than 3 s "
        f"(median {median:.2f} s, shortest 0.50 s): a clip shorter than a segment is one segment, taken whole\n"
    )


# Bad input: one line each, naming the value, file or row at fault


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DataOptions(split="0.6,0.4"), "--split: '0.6,0.4' must be three fractions: train,valid,test"),
        (DataOptions(split="0.6,0.3,0.3"), "--split: '0.6,0.3,0.3' must add up to 1"),
        (DataOptions(split="0.8,0.2,0"), "--split: '0.8,0.2,0' must be three fractions above 0"),
        (DataOptions(split="a,b,c"), "--split: 'a,b,c' must be three fractions: train,valid,test (e.g. 0.6,0.2,0.2)"),
        (
            DataOptions(group="(unclosed"),
            "--group: '(unclosed' is not a regular expression (missing ), unterminated subpattern at position 0)",
        ),
        (
            DataOptions(group="speaker"),
            "--group: 'speaker' does not match the file name 'bird/bird.000.wav': every file needs a group",
        ),
        (
            DataOptions(split="0.98,0.01,0.01"),
            "--split: cannot make a stratified 0.98/0.01/0.01 split (seed 0) of 30 clips: ",
        ),
        (
            DataOptions(test_fold=2),
            "--test-fold: 2 applies only to a manifest, and {data} is class folders without split lists",
        ),
        (
            DataOptions(audio_dir="x"),
            "--audio-dir: 'x' applies only to a manifest, and {data} is class folders without split lists",
        ),
    ],
)
def test_bad_split_options(folders: Path, options: DataOptions, message: str) -> None:
    with pytest.raises(UserError) as error:
        open_dataset(folders, options)
    assert str(error.value).startswith(message.format(data=folders)) and "\n" not in str(error.value)


def test_folder_without_classes_or_lists(tmp_path: Path) -> None:
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    (tmp_path / "empty" / "notes" / "README.txt").write_text("no audio here")
    with pytest.raises(UserError, match=r"no split lists and no class sub-folders of audio files"):
        open_dataset(tmp_path / "empty")


def test_split_options_refused_for_data_with_split_lists(tiny_root: Path) -> None:
    with pytest.raises(
        UserError,
        match=r"^--split: '0.5,0.25,0.25' applies only to class folders without split lists, and .* is a folder with",
    ):
        open_dataset(tiny_root, DataOptions(split="0.5,0.25,0.25"))


GOOD_ROWS = [
    {"path": "a.wav", "label": "bird", "split": "train"},
    {"path": "b.wav", "label": "cat", "split": "valid"},
    {"path": "c.wav", "label": "dog", "split": "test"},
]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda rows: [{k: v for k, v in r.items() if k != "path"} for r in rows],
            "{m}:1: no audio path column: name one path/file/filename/file_name/slice_file_name/audio "
            "(it has label, split)",
        ),
        (
            lambda rows: [{k: v for k, v in r.items() if k != "label"} for r in rows],
            "{m}:1: no label column: name one label/class/category/genre (it has path, split)",
        ),
        (
            lambda rows: [{k: v for k, v in r.items() if k != "split"} for r in rows],
            "{m}:1: no split or fold column: name one split/set/subset/fold (it has path, label)",
        ),
        (
            lambda rows: [*rows, {"path": "a.wav", "label": "bird", "split": "holdout"}],
            "{m}:5: split 'holdout' is not one of train, training, valid, validation, val, dev, test, testing",
        ),
        (
            lambda rows: [*rows, {"path": "../outside.wav", "label": "bird", "split": "train"}],
            "{m}:5: '../outside.wav' is not a path inside {d} (relative, without '..')",
        ),
        (
            lambda rows: [*rows, {"path": "{outside}", "label": "bird", "split": "train"}],
            "{m}:5: '{outside}' is not a path inside {d} (relative, without '..')",
        ),
        (
            lambda rows: [*rows, {"path": "gone.wav", "label": "bird", "split": "train"}],
            "{m}:5: audio file 'gone.wav' not found under {d}",
        ),
        (
            lambda rows: [*rows, {"path": "a.wav", "label": "bird", "split": "train"}],
            "{m}:5: 'a.wav' is listed twice (first on line 2)",
        ),
        (lambda rows: [*rows, {"path": "d.wav", "label": "", "split": "train"}], "{m}:5: the 'label' column is empty"),
        (lambda rows: rows[:2], "{m}: no row is in split test (every split needs clips)"),
    ],
)
def test_bad_manifest_rows(tmp_path: Path, change, message: str) -> None:
    data = tmp_path / "data"
    for name in ("a", "b", "c", "d"):
        write_tone_clip(data / f"{name}.wav", 0.5, 440.0, seed=0)
    outside = tmp_path / "outside.wav"
    write_tone_clip(outside, 0.5, 440.0, seed=0)
    rows = [{k: str(v).format(outside=outside) for k, v in row.items()} for row in change([dict(r) for r in GOOD_ROWS])]
    manifest = make_manifest(data / "manifest.csv", rows)
    with pytest.raises(UserError) as error:
        open_dataset(manifest)
    assert str(error.value) == message.format(m=manifest, d=data, outside=outside)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DataOptions(test_fold=7), "--test-fold: 7 is not a fold of {m} (folds: 1, 2, 3, 4)"),
        (DataOptions(valid_fold=9), "--valid-fold: 9 is not a fold of {m} (folds: 1, 2, 3, 4)"),
        (DataOptions(test_fold=2, valid_fold=2), "--valid-fold: 2 is also the test fold: choose another"),
        (
            DataOptions(split="0.5,0.25,0.25"),
            "--split: '0.5,0.25,0.25' applies only to class folders without split lists, and {m} is a manifest",
        ),
    ],
)
def test_bad_fold_choices(tmp_path: Path, options: DataOptions, message: str) -> None:
    manifest = esc50_like(tmp_path)
    options = DataOptions(**{**options.__dict__, "audio_dir": str(tmp_path / "audio")})
    with pytest.raises(UserError) as error:
        open_dataset(manifest, options)
    assert str(error.value) == message.format(m=manifest)


def test_fold_that_is_not_a_number_names_its_row(tmp_path: Path) -> None:
    write_tone_clip(tmp_path / "a.wav", 0.5, 440.0, seed=0)
    manifest = make_manifest(
        tmp_path / "m.csv", [{"file": "a.wav", "class": "x", "fold": f} for f in ("1", "2", "3", "three")]
    )
    with pytest.raises(UserError, match=rf"^{re.escape(str(manifest))}:5: fold 'three' is not a whole number$"):
        open_dataset(manifest)


def test_missing_data_path(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no such folder or manifest file"):
        open_dataset(tmp_path / "nowhere")


# End to end: a search and its report on a class-folder copy


@pytest.mark.slow
def test_search_and_report_use_the_made_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import report
    from features.store import FeatureStore as Store

    root = tmp_path / "sounds"
    make_class_folders(root, CLASSES, per_class=4, seconds=2.0)
    space = tmp_path / "tiny.yaml"
    # One trial of one epoch: what is checked is which split the search and the report use.
    space.write_text(
        "features: {kind: mel, mel: {n_bins: 32}}\n"
        "model: {arch: cnn1d, cnn1d: {depth: 2, channels: 4, dropout: 0.0}}\n"
        "optimizer: {name: adam, lr: {loguniform: [3.0e-3, 3.0e-2]}}\nschedule: {name: none}\n"
        "training: {segment_seconds: 1.0, segments_per_clip: 2, batch_size: 4}\n"
        "search: {num_samples: 1, max_epochs: 1, grace_period: 1, reduction_factor: 2}\n"
    )
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    options = DataOptions(split="0.5,0.25,0.25", split_seed=3)
    runs = tmp_path / "runs"
    outcome = run_search(
        SearchRequest(space=str(space), data=str(root), storage=str(runs), name="e2e", data_options=options)
    )
    recorded = (outcome.local_dir / "experiment.json").read_text()
    expected = ids(open_dataset(root, options))["test"]
    assert '"layout": "made split"' in recorded and '"seed": 3' in recorded
    # A cleaned cache: the report rebuilds the split and the store from the experiment's record.
    shutil.rmtree(cache_dir())
    report.main(["--experiment", "e2e", "--storage", str(runs), "--seeds", "1"])
    (store_path,) = json.loads(recorded)["stores"].values()
    assert sorted(Store(store_path).load_split("test").clip_ids) == sorted(expected)
    assert os.path.isfile(outcome.local_dir / "report" / "report.md")
