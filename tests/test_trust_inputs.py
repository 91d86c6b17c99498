"""Inputs someone else wrote (issue 29, items 2, 3, 7 and 13): split lists and class folders give
the classes on disk, exactly as named; a YAML key given twice, a label only in the test split, and
files past the parse limits are refused in one line; `1e-3` is a number; a plugin that hangs at
import is refused; the disk-space estimate comes from every clip's length."""

from __future__ import annotations

import logging
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from common.errors import UserError
from common.experiment import read_metadata
from features.dataset import load_dataset
from features.layouts import open_dataset
from features.manifest import load_manifest
from features.settings import FeatureSetting
from features.writer import StoreWriter
from models.plugins import load_plugin
from search.space import load_space
from search.space_file import SPACES_DIR, read_space_file
from tests.conftest import make_class_folders, make_layout, make_manifest, write_tone_clip

# --- item 2: split lists and class folders give the classes on disk --------------------------------


def test_a_byte_order_mark_does_not_make_a_class(tiny_root: Path) -> None:
    train = tiny_root / "train_filtered.txt"
    train.write_text("\ufeff" + train.read_text(), encoding="utf-8")  # as Windows' Notepad saves it
    dataset = load_dataset(tiny_root)
    assert dataset.classes == ("blues", "rock", "ska") and not dataset.missing
    assert len(dataset.splits["train"]) == 9


def test_a_listed_class_without_a_folder_is_an_error_naming_the_line(tiny_root: Path) -> None:
    train = tiny_root / "train_filtered.txt"
    lines = train.read_text().splitlines()
    train.write_text("\n".join([*lines[:2], "jazz/jazz.00099.wav", *lines[2:]]) + "\n")
    with pytest.raises(UserError) as raised:
        load_dataset(tiny_root)  # before: a 4th class 'jazz' without clips, one more network output
    message = str(raised.value)
    assert message.startswith(f"{train}:3: 'jazz/jazz.00099.wav': class 'jazz' has no folder") and "\n" not in message


def test_a_class_folder_keeps_leading_spaces_in_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path / "cache"))
    make_class_folders(tmp_path / "data", classes=("  lead", "bass", "drum"), per_class=5, seconds=0.2)
    dataset = open_dataset(tmp_path / "data")  # the project's own split of class folders
    assert dataset.classes == ("  lead", "bass", "drum")  # before: 'lead', with 0 clips
    per_class = np.bincount([clip.label for clip in dataset.all_clips()], minlength=3)
    assert per_class.tolist() == [5, 5, 5] and not dataset.missing


def test_missing_listed_files_are_each_named_with_the_class_counts(
    tiny_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/data.md documents that missing listed files are left out: a warning names each one
    (`list:line`) and the clips per class that result."""
    for name in ("rock/rock.00011.wav", "ska/ska.00019.wav"):
        (tiny_root / name).unlink()
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(tiny_root)
    assert dataset.missing == ("rock/rock.00011.wav", "ska/ska.00019.wav")
    valid, test = tiny_root / "valid_filtered.txt", tiny_root / "test_filtered.txt"
    assert f"{valid}:4 rock/rock.00011.wav, {test}:5 ska/ska.00019.wav;" in caplog.text
    assert "clips per class (train/valid/test): 'blues' 3/2/2, 'rock' 3/1/2, 'ska' 3/2/1" in caplog.text


def test_spaces_around_a_listed_name_are_formatting_when_only_the_bare_name_exists(tiny_root: Path) -> None:
    train = tiny_root / "train_filtered.txt"
    train.write_text("".join(f"{line} \t\n" for line in train.read_text().splitlines()))
    dataset = load_dataset(tiny_root)
    assert dataset.classes == ("blues", "rock", "ska") and not dataset.missing


def test_a_class_left_without_train_clips_is_refused(tiny_root: Path) -> None:
    train = tiny_root / "train_filtered.txt"
    for name in [line for line in train.read_text().split() if line.startswith("ska/")]:
        (tiny_root / name).unlink()
    with pytest.raises(UserError, match=r"train_filtered.txt: class 'ska' has no train clip .*'ska' 0/2/2"):
        load_dataset(tiny_root)


# --- item 3: duplicate keys; a label only in the test split ----------------------------------------


def test_a_key_given_twice_in_a_space_file_names_both_lines(tmp_path: Path) -> None:
    space = tmp_path / "twice.yaml"
    space.write_text("optimizer:\n  lr: 0.1\n  name: sgd\n  lr: 0.001\n")
    with pytest.raises(UserError) as raised:
        read_space_file(space)  # before: lr 0.001, silently
    assert str(raised.value) == f"{space}:4: key 'lr' appears twice (lines 2 and 4): keep one"


def test_a_yaml_merge_may_override_a_merged_key(tmp_path: Path) -> None:
    space = tmp_path / "merge.yaml"
    space.write_text("base: &base {lr: 0.1, name: sgd}\noptimizer: {<<: *base, lr: 0.01}\n")
    assert read_space_file(space)["optimizer"] == {"lr": 0.01, "name": "sgd"}


def test_a_label_only_in_the_test_split_is_refused_before_any_store(tmp_path: Path) -> None:
    rows = []
    for index, (label, split) in enumerate([("cat", "train"), ("dog", "train"), ("cat", "valid"), ("dog", "test")]):
        rows.append({"file": f"clip{index}.wav", "label": label, "split": split})
    rows.append({"file": "clip9.wav", "label": "owl", "split": "test"})
    for row in rows:
        write_tone_clip(tmp_path / row["file"], 0.1, 440.0, seed=0)
    manifest = make_manifest(tmp_path / "meta.csv", rows)
    with pytest.raises(UserError) as raised:
        load_manifest(manifest)
    message = str(raised.value)
    assert message.startswith(f"{manifest}: class 'owl' has no train clip") and "'owl' 0/0/1" in message


# --- item 7: parse limits ------------------------------------------------------------------------

LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{name}: &{name} [{','.join([f'*{before}'] * 9)}]" for before, name in zip("abcdefgh", "bcdefghi")]
    + ["plugins: *i", ""]
)


def _load_timed(space: Path, answer) -> None:
    start = time.perf_counter()
    try:
        load_space(space)
        answer.send("loaded")
    except UserError as err:
        answer.send(f"{time.perf_counter() - start:.3f} {err}")


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    space = tmp_path / "laughs.yaml"
    space.write_text(LAUGHS)  # 9 levels of 9 aliases: 387 million strings once expanded
    context = multiprocessing.get_context("fork")  # a process of its own: a regression hangs it, not the suite
    answer, child_end = context.Pipe()
    child = context.Process(target=_load_timed, args=(space, child_end))
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("loading a 354-byte space file of nested aliases hangs")
    seconds, message = answer.recv().split(" ", 1)
    assert message == f"{space}: refused: more than 100,000 values once its aliases are expanded"
    assert float(seconds) < 0.5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: " + "[" * 200 + "]" * 200, ":1: refused: nested more than 50 deep"),
        ("a: &a [1, *a]\n", ":1: refused: an alias refers to a value that contains it"),
        ("# padding\n" * 100_001, ": refused: larger than 1,000,000 bytes, the limit for a space file"),
    ],
    ids=["deep", "recursive", "too-large"],
)
def test_space_files_past_the_limits_are_refused_in_one_line(tmp_path: Path, text: str, problem: str) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(text)
    with pytest.raises(UserError) as raised:
        read_space_file(space)
    assert str(raised.value) == f"{space}{problem}"


def test_an_experiment_record_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "experiment.json").write_text("[" * 100_000)
    with pytest.raises(UserError) as raised:
        read_metadata(tmp_path)  # before: a RecursionError traceback
    assert str(raised.value) == f"{tmp_path / 'experiment.json'}: refused: nested too deeply for an experiment record"


def test_an_oversized_experiment_record_or_manifest_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("common.safe_load.MAX_JSON_BYTES", 1000)
    (tmp_path / "experiment.json").write_text(" " * 1001)
    with pytest.raises(UserError, match=r"experiment.json: refused: larger than 1,000 bytes, the limit for an exp"):
        read_metadata(tmp_path)
    monkeypatch.setattr("features.manifest.MAX_MANIFEST_BYTES", 100)
    manifest = make_manifest(
        tmp_path / "meta.csv", [{"file": f"{i}.wav", "label": "a", "split": "train"} for i in range(9)]
    )
    with pytest.raises(UserError, match=r"meta.csv: refused: larger than 100 bytes, the limit for a manifest"):
        load_manifest(manifest)


# --- item 13: `1e-3`, a plugin that hangs, the disk-space estimate ---------------------------------


def _baseline_with(tmp_path: Path, lr: str) -> Path:
    space = tmp_path / "space.yaml"
    space.write_text((SPACES_DIR / "baseline.yaml").read_text().replace("lr: 0.01 ", f"lr: {lr} ", 1))
    return space


def test_lr_1e_3_is_the_number_1e_3(tmp_path: Path) -> None:
    """YAML 1.1 reads `1e-3` (no dot) as text; it is taken as the number, as YAML 1.2 does."""
    space = _baseline_with(tmp_path, "1e-3")
    assert read_space_file(space)["optimizer"]["lr"] == 1.0e-3
    assert load_space(space).first_trial_params() == load_space(_baseline_with(tmp_path, "1.0e-3")).first_trial_params()
    ranged = _baseline_with(tmp_path, "{loguniform: [1e-4, 1E-2]}")
    assert read_space_file(ranged)["optimizer"]["lr"] == {"loguniform": [1.0e-4, 1.0e-2]}
    load_space(ranged)
    with pytest.raises(UserError, match=r"optimizer.lr: expected float, got '1e-3x'"):
        load_space(_baseline_with(tmp_path, "1e-3x"))  # real garbage is still refused


def test_a_plugin_that_hangs_at_import_is_refused_naming_it(tmp_path: Path, monkeypatch) -> None:
    plugin = tmp_path / "hangs.py"
    plugin.write_text("import time\n\ntime.sleep(8)  # waits for a server that never answers, say\n")
    monkeypatch.setenv("GENRE_SEARCH_PLUGIN_TIMEOUT", "0.5")
    start = time.monotonic()
    with pytest.raises(UserError) as raised:
        load_plugin(plugin)
    assert time.monotonic() - start < 4  # before: blocked for the whole sleep, without a word
    assert str(raised.value) == (
        f"{plugin}: still importing after 0.5 s ($GENRE_SEARCH_PLUGIN_TIMEOUT sets the limit): refused"
    )


def test_the_disk_estimate_is_not_the_first_clips_length_times_every_clip(tmp_path: Path) -> None:
    root = tmp_path / "data"
    listed = make_layout(root, per_split=(3, 2, 2), seconds=1.0)
    first = root / listed["train"][0]
    write_tone_clip(first, 20.0, 220.0, seed=0)  # the first clip is the long one
    dataset = load_dataset(root)
    setting = FeatureSetting(n_bins=16)
    writer = StoreWriter(tmp_path / "store.h5", setting, dataset, {})
    try:
        frames = [1 + round(s * setting.sample_rate) // setting.hop_length for s in (20.0, *[1.0] * 20)]
        clip = dataset.splits["train"][0]
        writer.add(clip, np.zeros((16, frames[0]), dtype=np.float32), np.zeros((2, 16)))  # the disk fills up next
        assert writer.bytes_needed() == sum(frames) * 16 * 2  # before: 21 x the first clip's frames, 10x this
    finally:
        writer.abort()
