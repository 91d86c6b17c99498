"""Layout parsing: split lists, classes, the .au fallback, missing files, bad roots."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import soundfile

from common.errors import UserError
from features.dataset import PROJECT_SPLITS_DIR, load_dataset
from tests.conftest import make_layout, write_tone_clip


def test_classes_come_from_split_lists_sorted(tiny_root: Path) -> None:
    dataset = load_dataset(tiny_root)
    assert dataset.classes == ("blues", "rock", "ska")
    assert [len(dataset.splits[s]) for s in ("train", "valid", "test")] == [9, 6, 6]
    clip = dataset.splits["train"][0]
    assert clip.clip_id == "blues/blues.00000" and clip.label == 0
    assert dataset.split_lists == tiny_root.resolve()


def test_listed_wav_resolves_to_au(tiny_root: Path) -> None:
    wav = tiny_root / "rock/rock.00007.wav"
    audio, rate = soundfile.read(wav)
    soundfile.write(wav.with_suffix(".au"), audio, rate, format="AU", subtype="PCM_16")
    wav.unlink()
    dataset = load_dataset(tiny_root)
    paths = {c.clip_id: c.path for c in dataset.all_clips()}
    assert paths["rock/rock.00007"].suffix == ".au"
    assert not dataset.missing


def test_missing_files_warned_and_left_out(tiny_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tiny_root / "ska/ska.00014.wav").unlink()
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(tiny_root)
    assert dataset.missing == ("ska/ska.00014.wav",)
    assert "1 listed clips are missing" in caplog.text and "ska/ska.00014.wav" in caplog.text
    assert "ska/ska.00014" not in {c.clip_id for c in dataset.all_clips()}


def test_missing_root_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"does not exist.*expected"):
        load_dataset(tmp_path / "nowhere")


def test_root_without_listed_audio(tmp_path: Path) -> None:
    make_layout(tmp_path / "data")
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("train", "valid", "test"):
        (empty / f"{name}_filtered.txt").write_text((tmp_path / "data" / f"{name}_filtered.txt").read_text())
    with pytest.raises(UserError, match="holds none of the"):
        load_dataset(empty)


def test_split_that_ends_up_empty(tiny_root: Path) -> None:
    for name in (tiny_root / "valid_filtered.txt").read_text().split():
        (tiny_root / name).unlink()
    with pytest.raises(UserError, match="split valid .* is empty"):
        load_dataset(tiny_root)


def test_partial_split_lists_rejected(tiny_root: Path) -> None:
    (tiny_root / "test_filtered.txt").unlink()
    with pytest.raises(UserError, match="test_filtered.txt"):
        load_dataset(tiny_root)


def test_bad_split_line_names_file_and_line(tiny_root: Path) -> None:
    (tiny_root / "train_filtered.txt").write_text("blues/blues.00000.wav\nnot-a-path\n")
    with pytest.raises(UserError, match=r"train_filtered.txt:2"):
        load_dataset(tiny_root)


def test_root_without_lists_uses_project_split(tmp_path: Path) -> None:
    root = tmp_path / "gtzan"
    project_lists = {
        s: (PROJECT_SPLITS_DIR / f"{s}_filtered.txt").read_text().split() for s in ("train", "valid", "test")
    }
    present = project_lists["train"][:1] + project_lists["valid"][:3] + project_lists["test"][:1]
    for name in present:
        write_tone_clip(root / name, seconds=1.0, pitch_hz=440.0, seed=0)
    for name in project_lists["train"]:
        (root / name).parent.mkdir(exist_ok=True)  # the 8 genre folders: a listed class must have one
    dataset = load_dataset(root)
    assert dataset.split_lists == PROJECT_SPLITS_DIR
    assert dataset.classes == ("classical",)  # the classes of the clips found: the 5 are classical
    assert len(dataset.splits["valid"]) == 3 and len(dataset.missing) == 730 - 5


def test_fingerprint_changes_with_files(tiny_root: Path) -> None:
    before = load_dataset(tiny_root).fingerprint()
    assert load_dataset(tiny_root).fingerprint() == before
    (tiny_root / "blues/blues.00000.wav").write_bytes((tiny_root / "rock/rock.00007.wav").read_bytes() + b"\0\0")
    assert load_dataset(tiny_root).fingerprint() != before


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("../outside.wav", "has a '..' part, which leaves the data root"),
        ("{outside}", "is an absolute path"),
        ("blues/../outside.wav", "has a '..' part, which leaves the data root"),
        # Refused rather than normalised: the name as listed is the clip's id and names its class.
        ("./blues/blues.00000.wav", "has a '.' part"),
    ],
)
def test_listed_paths_stay_inside_the_root(tiny_root: Path, line: str, why: str) -> None:
    outside = tiny_root.parent / "outside.wav"  # a real clip, so nothing but the check can refuse it
    write_tone_clip(outside, seconds=1.0, pitch_hz=440.0, seed=0)
    line = line.format(outside=outside)
    train = tiny_root / "train_filtered.txt"
    first, *rest = train.read_text().splitlines()
    train.write_text("\n".join([first, line, *rest]) + "\n")
    with pytest.raises(UserError) as error:
        load_dataset(tiny_root)
    message = str(error.value)
    assert message.startswith(f"{train}:2: {line!r} {why}") and "\n" not in message


def test_symlinked_clip_inside_the_root_is_followed(tiny_root: Path, tmp_path: Path) -> None:
    clip = tiny_root / "blues/blues.00000.wav"
    elsewhere = tmp_path / "elsewhere.wav"
    clip.rename(elsewhere)
    clip.symlink_to(elsewhere)
    dataset = load_dataset(tiny_root)
    paths = {c.clip_id: c.path for c in dataset.all_clips()}
    assert paths["blues/blues.00000"] == clip and not dataset.missing
    assert dataset.classes == ("blues", "rock", "ska")
    assert soundfile.info(paths["blues/blues.00000"]).frames > 0
