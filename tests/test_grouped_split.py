"""Grouped splits of class folders (issue 33, item 3): whole groups per split, the clip fractions as
near the requested ones as the groups allow, two groups in valid and test where the rule asks for
them, a one-line warning naming the fractions reached, the pattern printed as typed, seeded."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from common.errors import UserError
from features.dataset import SPLIT_NAMES, Dataset
from features.layouts import DataOptions, open_dataset
from features.locate import cache_dir
from features.split_maker import (
    SplitSettings,
    _data_digest,
    assign_groups,
    audio_files_by_class,
    group_minimums,
    split_indices,
)
from tests.conftest import write_tone_clip

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SPEAKER = r"_([a-z]+)_\d"  # a backslash in it: printed as typed, never doubled


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_SEARCH_CACHE", str(tmp_path / "cache"))


def spoken_digits(root: Path, speakers: tuple[str, ...] = SPEAKERS, digits: int = 4, takes: int = 2) -> Path:
    """Tiny clips named as the free spoken digit dataset names them: <digit>/<digit>_<speaker>_<take>.wav."""
    for digit in range(digits):
        for number, speaker in enumerate(speakers):
            for take in range(takes):
                seed = (digit * len(speakers) + number) * takes + take
                write_tone_clip(root / str(digit) / f"{digit}_{speaker}_{take}.wav", 0.05, 220.0 * (digit + 1), seed)
    return root


def speakers_per_split(dataset: Dataset) -> dict[str, set[str]]:
    return {split: {re.search(SPEAKER, c.path.name)[1] for c in dataset.splits[split]} for split in SPLIT_NAMES}


def digit_names(speakers: int, digits: int = 5, takes: int = 3) -> tuple[list[str], np.ndarray]:
    """Clip names and labels alone (`split_indices` reads no files): every speaker says every digit."""
    names = [f"{d}/{d}_s{s:03d}_{t}.wav" for d in range(digits) for s in range(speakers) for t in range(takes)]
    return names, np.array([name.split("/")[0] for name in names])


def groups_of(names: list[str], chosen: dict[str, list[int]]) -> dict[str, set[str]]:
    return {split: {re.search(r"_(s\d+)_", names[i])[1] for i in ids} for split, ids in chosen.items()}


def equal_groups(groups: int, classes: int = 5, clips: int = 3) -> np.ndarray:
    return np.full((groups, classes), float(clips))


def test_six_speakers_split_2_2_2_with_a_warning_naming_the_fractions(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    root = spoken_digits(tmp_path / "digits")
    with caplog.at_level(logging.WARNING, logger="features.split_maker"):
        dataset = open_dataset(root, DataOptions(group=SPEAKER))
    speakers = speakers_per_split(dataset)
    assert [len(speakers[split]) for split in SPLIT_NAMES] == [2, 2, 2]  # not 3/1/2: one speaker validating
    assert set().union(*speakers.values()) == set(SPEAKERS)
    assert "grouped by '_([a-z]+)_\\d'" in capsys.readouterr().out  # one backslash, as typed
    assert caplog.messages == [
        "grouped split by '_([a-z]+)_\\d': 6 groups as 2/2/2, clips 0.33/0.33/0.33 against 0.6/0.2/0.2 requested"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="features.split_maker"):
        again = open_dataset(root, DataOptions(group=SPEAKER))
    assert "-> reused a stratified 0.6/0.2/0.2 split (seed 0, grouped by '_([a-z]+)_\\d')" in capsys.readouterr().out
    assert speakers_per_split(again) == speakers and len(caplog.messages) == 1  # reused, and warned about again


def test_a_split_near_the_fractions_on_two_groups_or_more_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    names, labels = digit_names(speakers=10)
    with caplog.at_level(logging.WARNING, logger="features.split_maker"):
        chosen, warning = split_indices(names, labels, SplitSettings(group=r"_(s\d+)_"))
    assert warning is None and caplog.messages == []
    assert [len(groups_of(names, chosen)[split]) for split in SPLIT_NAMES] == [6, 2, 2]


def test_the_warning_names_fractions_far_from_those_requested() -> None:
    names, labels = digit_names(speakers=4)
    chosen, warning = split_indices(names, labels, SplitSettings((0.8, 0.1, 0.1), group=r"_(s\d+)_"))
    assert [len(groups_of(names, chosen)[split]) for split in SPLIT_NAMES] == [2, 1, 1]
    assert warning == (
        r"grouped split by '_(s\d+)_': 4 groups as 2/1/1, clips 0.50/0.25/0.25 against 0.8/0.1/0.1 requested; "
        "valid and test rest on a single group each"
    )


@pytest.mark.parametrize(
    ("groups", "fractions", "minimums"),
    [
        (3, (0.6, 0.2, 0.2), (1, 1, 1)),
        (4, (0.2, 0.4, 0.4), (1, 1, 1)),  # two and two would leave train none
        (5, (0.6, 0.2, 0.2), (1, 2, 2)),  # valid and test ask for one group each: two, far from the fractions
        (5, (0.4, 0.3, 0.3), (1, 2, 2)),
        (6, (0.6, 0.2, 0.2), (1, 2, 2)),  # 2/2/2, a third each, and a warning: not one speaker validating
        (8, (0.6, 0.2, 0.2), (1, 2, 2)),
        (10, (0.6, 0.2, 0.2), (1, 2, 2)),
        (10, (0.8, 0.15, 0.05), (1, 2, 2)),
    ],
)
def test_group_minimums(groups: int, fractions: tuple[float, float, float], minimums: tuple[int, int, int]) -> None:
    assert group_minimums(groups, fractions) == minimums


@pytest.mark.parametrize("groups", [10, 20])  # every assignment scored; the climbs
def test_valid_and_test_get_two_groups_where_one_would_reach_the_fraction(groups: int) -> None:
    # Two big groups, each a fifth of the clips (a third of the small ones'): alone in valid and
    # test they would reach 0.6/0.2/0.2 exactly.
    counts = equal_groups(groups, clips=1)
    counts[:2] = (groups - 2) / 3
    for seed in range(3):
        per_split = np.bincount(assign_groups(counts, (0.6, 0.2, 0.2), seed), minlength=3)
        assert per_split[1] >= 2 and per_split[2] >= 2, per_split


@pytest.mark.parametrize("groups", [10, 23, 40, 300])
@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.7, 0.15, 0.15), (0.5, 0.25, 0.25)])
def test_many_equal_groups_reach_the_fractions(groups: int, fractions: tuple[float, float, float]) -> None:
    counts = equal_groups(groups)
    assignment = assign_groups(counts, fractions, seed=0)
    reached = np.bincount(assignment, weights=counts.sum(axis=1), minlength=3) / counts.sum()
    assert np.abs(reached - fractions).max() <= 1 / groups  # at most one group's share off


@pytest.mark.parametrize("speakers", [6, 10, 40])
def test_groups_never_straddle_splits_and_every_class_trains(speakers: int) -> None:
    names, labels = digit_names(speakers)
    chosen, _ = split_indices(names, labels, SplitSettings(group=r"_(s\d+)_", seed=3))
    assert sorted(i for ids in chosen.values() for i in ids) == list(range(len(names)))
    groups = groups_of(names, chosen)
    assert not (
        groups["train"] & groups["valid"] or groups["train"] & groups["test"] or groups["valid"] & groups["test"]
    )
    assert {labels[i] for i in chosen["train"]} == set(labels)


def test_a_class_only_one_speaker_says_goes_to_train_with_that_speaker() -> None:
    names, labels = digit_names(speakers=6, digits=4)
    names += [f"9/9_s005_{take}.wav" for take in range(3)]
    labels = np.append(labels, ["9"] * 3)
    for seed in range(6):
        chosen, _ = split_indices(names, labels, SplitSettings(group=r"_(s\d+)_", seed=seed))
        assert "s005" in groups_of(names, chosen)["train"]


@pytest.mark.parametrize("speakers", [6, 40])  # every assignment scored; the climbs
def test_the_seed_chooses_the_split_and_repeats_it(speakers: int) -> None:
    names, labels = digit_names(speakers)

    def split(seed: int) -> dict[str, list[int]]:
        return split_indices(names, labels, SplitSettings(group=r"_(s\d+)_", seed=seed))[0]

    assert split(1) == split(1)
    assert len({json.dumps(split(seed)) for seed in range(5)}) > 1


def test_fewer_than_three_groups_are_refused(tmp_path: Path) -> None:
    root = spoken_digits(tmp_path / "digits", speakers=("george", "jackson"))
    with pytest.raises(UserError) as error:
        open_dataset(root, DataOptions(group=SPEAKER))
    assert str(error.value) == (
        "--group: '_([a-z]+)_\\d' finds 2 group(s) in 16 clips ('george', 'jackson'): "
        "a grouped split needs at least 3, one per split"
    )


def test_the_pattern_is_printed_as_typed_when_it_does_not_match(tmp_path: Path) -> None:
    root = spoken_digits(tmp_path / "digits")
    with pytest.raises(
        UserError, match=re.escape(r"--group: '_(\d+)x' does not match the file name '0/0_george_0.wav'")
    ):
        open_dataset(root, DataOptions(group=r"_(\d+)x"))


def test_a_split_the_older_algorithm_cached_is_not_reused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = spoken_digits(tmp_path / "digits")
    settings = SplitSettings(group=SPEAKER)
    # Where the first version kept the split, keyed without the algorithm: 3/1/2 speakers.
    files = audio_files_by_class(root)
    old_key = hashlib.sha256(json.dumps([_data_digest(root, files), asdict(settings)]).encode()).hexdigest()[:16]
    old = cache_dir() / "splits" / f"{root.name}-{old_key}"
    old.mkdir(parents=True)
    for split, speakers in zip(SPLIT_NAMES, (SPEAKERS[:3], SPEAKERS[3:4], SPEAKERS[4:])):
        listed = [f"{d}/{name}" for d, names in files.items() for name in names if name.split("_")[1] in speakers]
        (old / f"{split}_filtered.txt").write_text("".join(f"{name}\n" for name in listed))
    (old / "split.json").write_text(json.dumps({"data": str(root), **asdict(settings)}))
    dataset = open_dataset(root, DataOptions(group=SPEAKER))
    assert "-> made a stratified" in capsys.readouterr().out and dataset.split_lists != old
    assert Counter(len(speakers) for speakers in speakers_per_split(dataset).values()) == {2: 3}
    assert json.loads((dataset.split_lists / "split.json").read_text())["algorithm"] == 2


def test_scikit_learn_is_imported_only_to_make_a_split() -> None:
    code = "import sys, features.layouts, features.split_maker; print('sklearn' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
