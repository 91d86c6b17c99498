"""Feature stores: contents, naming and reuse, skipped files, interrupted builds, rebuilds; and
`common.partials.atomic_write`, the partial-file-then-rename every output of the project goes through."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import h5py
import librosa
import numpy as np
import pytest
import torch

from common.errors import UserError
from common.partials import PARTIAL_MARK, atomic_write
from features import extract
from features.augment import AudioAugment
from features.compute import DecodeError, compute_clip, compute_features, features_of_file, plan_stfts
from features.dataset import load_dataset
from features.extract import build_stores
from features.settings import FeatureSetting
from features.store import FeatureStore
from features.writer import CHUNK_FRAMES, store_path
from reporting.retrain import open_store
from search.space import parse_space
from tests.conftest import make_layout, write_tone_clip
from training.segments import prepare_split

REPO = Path(__file__).resolve().parent.parent
MEL = FeatureSetting()  # the homework's log-mel


def build(root: Path, stores: Path, settings: list[FeatureSetting], workers: int = 1) -> dict:
    return build_stores(load_dataset(root), settings, stores, workers=workers)


def test_store_is_self_describing(tiny_root: Path, tmp_path: Path) -> None:
    path = build(tiny_root, tmp_path / "stores", [MEL])[MEL]
    store = FeatureStore(path)
    assert path.name == "mel-sr22050-fft1024-hop512-bins128-log10_1p.h5"
    assert store.setting == MEL and store.classes == ("blues", "rock", "ska")
    assert store.dataset["fingerprint"] == load_dataset(tiny_root).fingerprint()
    assert set(store.meta["versions"]) >= {"librosa", "numpy", "h5py"}
    train = store.load_split("train")
    assert train.features.shape == (9 * (1 + 2 * 22050 // 512), 128) and train.features.dtype == np.float16
    assert train.clip_ids[0] == "blues/blues.00000" and list(train.labels[:3]) == [0, 0, 0]
    audio, _ = librosa.load(tiny_root / "blues/blues.00000.wav", sr=22050)
    expected = np.log10(1 + 10 * librosa.feature.melspectrogram(y=audio, sr=22050, n_fft=1024, hop_length=512))
    np.testing.assert_allclose(train.clip(0).astype(np.float32), expected, atol=2e-3, rtol=2e-3)


def test_normalisation_statistics_from_train_only(tiny_root: Path, tmp_path: Path) -> None:
    store = FeatureStore(build(tiny_root, tmp_path / "stores", [MEL])[MEL])
    train = store.load_split("train")
    frames = train.features.astype(np.float64)
    mean, std = store.load_stats()
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std, np.maximum(frames.std(axis=0), 1e-5), rtol=1e-3, atol=1e-5)
    # Louder valid and test clips must not move the statistics.
    for name in (tiny_root / "valid_filtered.txt").read_text().split():
        write_tone_clip(tiny_root / name, 2.0, 3000.0, seed=99)
    np.testing.assert_array_equal(FeatureStore(build(tiny_root, tmp_path / "s2", [MEL])[MEL]).load_stats()[0], mean)


def test_parallel_build_equals_serial(tiny_root: Path, tmp_path: Path) -> None:
    serial = FeatureStore(build(tiny_root, tmp_path / "a", [MEL], workers=1)[MEL]).load_split("train")
    parallel = FeatureStore(build(tiny_root, tmp_path / "b", [MEL], workers=2)[MEL]).load_split("train")
    np.testing.assert_array_equal(serial.features, parallel.features)
    assert serial.clip_ids == parallel.clip_ids


@pytest.mark.parametrize("workers", [1, 2])
def test_clips_of_different_lengths_are_stored_exactly(tiny_root: Path, tmp_path: Path, workers: int) -> None:
    """GTZAN's clips differ in length: shorter and longer ones than the first, each stored as
    computed, with its own frames only, whether computed in this process or in workers."""
    train = (tiny_root / "train_filtered.txt").read_text().split()
    for name, seconds in zip(train[1:4], (1.5, 2.6, 1.9)):
        write_tone_clip(tiny_root / name, seconds, 440.0, seed=7)
    split = FeatureStore(build(tiny_root, tmp_path / "stores", [MEL], workers)[MEL]).load_split("train")
    for row, name in enumerate(train):
        expected = features_of_file(tiny_root / name, MEL)
        np.testing.assert_array_equal(split.clip(row), expected)
    assert split.lengths[2] == 1 + int(2.6 * 22050) // 512 and len(split.features) == split.lengths.sum()


def test_a_long_clip_costs_its_own_frames_only(tiny_root: Path, tmp_path: Path, caplog) -> None:
    """One clip 20x longer than the others adds its frames to its split, in the store and in
    memory, instead of padding every clip to its length; the build warns about it."""
    short = FeatureStore(build(tiny_root, tmp_path / "short", [MEL])[MEL])
    write_tone_clip(tiny_root / "rock/rock.00007.wav", 40.0, 440.0, seed=7)  # a train clip, 2 s before
    long = FeatureStore(build(tiny_root, tmp_path / "long", [MEL])[MEL])
    added = (1 + 40 * 22050 // 512) - (1 + 2 * 22050 // 512)  # frames
    assert len(long.load_split("train").features) == len(short.load_split("train").features) + added
    assert len(long.load_split("valid").features) == len(short.load_split("valid").features)
    added_bytes = added * MEL.n_bins * 2  # float16
    grown = long.path.stat().st_size - short.path.stat().st_size
    assert abs(grown - added_bytes) <= CHUNK_FRAMES * MEL.n_bins * 2  # stored in whole chunks
    segment = 87
    in_memory = [
        prepare_split(s.load_split("train"), *s.load_stats(), torch.device("cpu"), segment) for s in (short, long)
    ]
    assert in_memory[1].frames.shape[0] == in_memory[0].frames.shape[0] + added
    warned = [r.message for r in caplog.records if "far longer" in r.message]
    assert len(warned) == 1 and "rock/rock.00007 40.0 s" in warned[0] and "median clip (2.0 s)" in warned[0]


def test_names_differ_and_stores_are_reused(tiny_root: Path, tmp_path: Path) -> None:
    section = {"hop_length": {"choice": [256, 512]}, "kind": {"choice": ["mel", "mfcc", "chroma"]}}
    model = {"arch": "cnn2d", "cnn2d": {"depth": 2}}  # chroma's 12 bins allow 3 poolings at most
    settings = parse_space({"features": section, "model": model}, Path("space.yaml")).feature_settings()
    paths = build(tiny_root, tmp_path / "stores", settings)
    assert len({p.name for p in paths.values()}) == len(settings) == 6
    stamps = {p: p.stat().st_mtime_ns for p in paths.values()}
    again = build(tiny_root, tmp_path / "stores", settings[:2])
    assert all(p.stat().st_mtime_ns == stamps[p] for p in again.values())
    assert FeatureStore(paths[settings[4]]).load_split("valid").features.shape[1] == 12  # chroma bins


def test_hop_multiple_taken_from_finer_stft_is_exact() -> None:
    fine, coarse = FeatureSetting(hop_length=256), FeatureSetting(hop_length=1024)
    assert len(plan_stfts([fine, coarse])) == 1
    audio = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32)
    shared = compute_features({22050: audio}, plan_stfts([fine, coarse]))[coarse.name]
    alone = compute_features({22050: audio}, plan_stfts([coarse]))[coarse.name]
    np.testing.assert_array_equal(shared, alone)


def _librosa_mel(y: np.ndarray, n_fft: int = 1024, n_mels: int = 128) -> np.ndarray:
    return librosa.feature.melspectrogram(y=y, sr=22050, n_fft=n_fft, hop_length=512, n_mels=n_mels)


LIBROSA_FEATURES = {  # each kind's setting, and the same features as librosa computes them from audio
    "log10_1p": (FeatureSetting(), lambda y: np.log10(1 + 10 * _librosa_mel(y))),
    "log10_1p, n_fft 2048, 40 mels": (
        FeatureSetting(n_fft=2048, n_bins=40),
        lambda y: np.log10(1 + 10 * _librosa_mel(y, n_fft=2048, n_mels=40)),
    ),
    "log10_1p, n_fft 512, 256 mels (some empty)": (
        FeatureSetting(n_fft=512, n_bins=256),
        lambda y: np.log10(1 + 10 * _librosa_mel(y, n_fft=512, n_mels=256)),
    ),
    "db": (
        FeatureSetting(compression="db"),
        lambda y: librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050, n_fft=1024, hop_length=512)),
    ),
    "mfcc": (
        FeatureSetting(kind="mfcc", n_bins=20),
        lambda y: librosa.feature.mfcc(y=y, sr=22050, n_mfcc=20, n_fft=1024, hop_length=512, n_mels=128),
    ),
    "chroma": (
        FeatureSetting(kind="chroma", n_bins=12),
        lambda y: librosa.feature.chroma_stft(y=y, sr=22050, n_fft=1024, hop_length=512, tuning=0.0),
    ),
}


@pytest.mark.filterwarnings("ignore:Empty filters detected")
@pytest.mark.parametrize("case", sorted(LIBROSA_FEATURES))
def test_each_kind_equals_librosa_feature(case: str) -> None:
    setting, librosa_features = LIBROSA_FEATURES[case]
    audio = np.random.default_rng(2).standard_normal(22050 * 2).astype(np.float32)
    ours = compute_features({22050: audio}, plan_stfts([setting]))[setting.name].astype(np.float32)
    expected = librosa_features(audio)
    np.testing.assert_allclose(ours, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())  # float16 stores


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_empty_and_short_files(tiny_root: Path, tmp_path: Path, workers: int) -> None:
    (tiny_root / "blues/blues.00001.wav").write_bytes(b"")
    (tiny_root / "rock/rock.00008.wav").write_text("this is not audio")
    write_tone_clip(tiny_root / "ska/ska.00015.wav", 0.3, 440.0, seed=1)  # shorter than any segment
    store = FeatureStore(build(tiny_root, tmp_path / "stores", [MEL], workers)[MEL])
    reasons = {s["clip"]: s["reason"] for s in store.skipped}
    assert set(reasons) == {"blues/blues.00001", "rock/rock.00008"}
    assert "empty" in reasons["blues/blues.00001"] and "not readable" in reasons["rock/rock.00008"]
    train = store.load_split("train")
    assert "blues/blues.00001" not in train.clip_ids and len(train) == 9 - 2  # both were train clips
    short = train.clip_ids.index("ska/ska.00015")
    assert train.lengths[short] == 1 + int(0.3 * 22050) // 512


def test_rebuilt_when_dataset_changes(tiny_root: Path, tmp_path: Path) -> None:
    path = build(tiny_root, tmp_path / "stores", [MEL])[MEL]
    before = FeatureStore(path).dataset["fingerprint"]
    write_tone_clip(tiny_root / "blues/blues.00000.wav", 2.5, 330.0, seed=5)
    FeatureStore(build(tiny_root, tmp_path / "stores", [MEL])[MEL])
    assert FeatureStore(path).dataset["fingerprint"] != before
    assert FeatureStore(path).load_split("train").lengths[0] == 1 + int(2.5 * 22050) // 512


def test_interrupted_build_leaves_no_store(tiny_root: Path, tmp_path: Path, monkeypatch) -> None:
    from features import writer

    stores = tmp_path / "stores"
    calls = {"n": 0}
    original_add = writer.StoreWriter.add

    def add_then_interrupt(self, *args):  # the fifth clip never arrives
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        original_add(self, *args)

    monkeypatch.setattr(writer.StoreWriter, "add", add_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        build(tiny_root, stores, [MEL])
    assert list(stores.iterdir()) == []  # neither the store nor its partial file
    monkeypatch.undo()
    assert len(FeatureStore(build(tiny_root, stores, [MEL])[MEL]).load_split("train")) == 9


BUILD_IN_A_PROCESS = """
import sys
from features.dataset import load_dataset
from features.extract import build_stores
from features.settings import FeatureSetting
build_stores(load_dataset(sys.argv[1]), [FeatureSetting()], sys.argv[2], workers=1)
"""


def test_a_full_disk_is_one_line_naming_the_folder_and_the_space_needed(
    tiny_root: Path, tmp_path: Path, monkeypatch
) -> None:
    writes = {"n": 0}
    original_setitem = h5py.Dataset.__setitem__

    def fill_the_disk_at_the_fifth_row(self, *args):
        writes["n"] += 1
        if writes["n"] == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original_setitem(self, *args)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", fill_the_disk_at_the_fifth_row)
    stores = tmp_path / "stores"
    with pytest.raises(UserError) as raised:
        build(tiny_root, stores, [MEL, FeatureSetting(n_bins=64)])
    needed = 21 * (1 + 2 * 22050 // 512) * (128 + 64) * 2  # clips x frames x bins x 2 bytes
    assert str(raised.value).startswith(f"{stores}: no space left") and "\n" not in str(raised.value)
    assert f"{needed / 2**20:.1f} MiB" in str(raised.value)
    assert list(stores.iterdir()) == []  # no partial file left


def test_killed_build_is_completed_by_rerun(tmp_path: Path) -> None:
    root, stores = tmp_path / "data", tmp_path / "stores"
    make_layout(root, per_split=(12, 4, 4), seconds=3.0)
    command = [sys.executable, "-c", BUILD_IN_A_PROCESS, str(root), str(stores)]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list(stores.glob("*.partial-*")) and time.time() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)  # kill -9: no cleanup runs
    process.wait()
    assert list(stores.glob("*.partial-*")), "the build should have been caught mid-way"
    assert not list(stores.glob("*.h5"))  # nothing a later run could take for finished
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in stores.iterdir()] == [store_path(stores, MEL).name]  # partial file cleaned up
    with h5py.File(store_path(stores, MEL)) as f:
        assert json.loads(f.attrs["counts"]) == {"train": 36, "valid": 12, "test": 12}


def test_atomic_write_keeps_the_previous_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = tmp_path / "experiment.json"
    path.write_text("previous")
    with pytest.raises(KeyboardInterrupt), atomic_write(path) as file:
        file.write("the first half of the new")
        raise KeyboardInterrupt  # Ctrl-C mid-write
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left


def test_atomic_write_keeps_the_previous_file_when_the_disk_fills_at_the_end(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "report.md"
    path.write_text("previous")

    def full_disk(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match=os.strerror(errno.ENOSPC)), atomic_write(path) as file:
        file.write("new")
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_atomic_write_puts_the_whole_file_in_place_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    path.write_bytes(b"previous")
    weights = torch.arange(300_000, dtype=torch.float32)  # more than one write's buffer
    with atomic_write(path, "wb") as file:
        torch.save({"weights": weights}, file)
        (partial,) = tmp_path.glob(f"*{PARTIAL_MARK}*")
        # Named as remove_stale_partials expects: a dead process's leftover is removed by a later run.
        assert partial.name.startswith(f".{path.name}{PARTIAL_MARK}{os.getpid()}-")
        assert path.read_bytes() == b"previous"  # until the block ends
    assert torch.equal(torch.load(path, weights_only=True)["weights"], weights)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def _fail_on_rock_00008(audio: dict, clip_id: str, augment: bool, plan: object) -> object:
    if clip_id == "rock/rock.00008":
        raise ValueError(f"no features for {clip_id}")
    return compute_clip(audio, clip_id, augment, plan)


def test_an_error_in_a_worker_stops_the_build(tiny_root: Path, tmp_path: Path, monkeypatch) -> None:
    """A bug in a worker (not a corrupt clip) is raised in the parent, and leaves no store."""
    monkeypatch.setattr(extract, "compute_clip", _fail_on_rock_00008)  # forked workers inherit it
    with pytest.raises(ValueError, match="no features for rock/rock.00008"):
        build(tiny_root, tmp_path / "stores", [MEL], workers=2)
    assert list((tmp_path / "stores").iterdir()) == []


def _die_on_rock_00008(audio: dict, clip_id: str, augment: bool, plan: object) -> object:
    if clip_id == "rock/rock.00008":
        os._exit(9)  # killed, as by the out-of-memory killer
    return compute_clip(audio, clip_id, augment, plan)


def test_a_worker_that_dies_stops_the_build_instead_of_hanging(tiny_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(extract, "compute_clip", _die_on_rock_00008)
    # The parent has a SIGTERM handler, as after `ray.init`: the surviving worker must still end.
    previous = signal.signal(signal.SIGTERM, lambda *args: None)
    try:
        with pytest.raises(BrokenProcessPool):
            build(tiny_root, tmp_path / "stores", [MEL], workers=2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert list((tmp_path / "stores").iterdir()) == []


def test_features_of_file_are_the_stored_features(tiny_root: Path, tmp_path: Path) -> None:
    setting = FeatureSetting(kind="mfcc", hop_length=256, audio_augment=AudioAugment(copies=1, gain_db=(-3.0, 3.0)))
    train = FeatureStore(build(tiny_root, tmp_path / "stores", [setting])[setting]).load_split("train")
    ours = features_of_file(tiny_root / "blues/blues.00000.wav", setting)
    np.testing.assert_array_equal(ours, train.clip(0))
    (tiny_root / "junk.wav").write_text("not audio")
    with pytest.raises(DecodeError, match="not readable"):
        features_of_file(tiny_root / "junk.wav", setting)


def _contents(path: Path) -> dict[str, object]:
    """Everything a store gives its readers: metadata, every split, statistics, copies."""
    store = FeatureStore(path)
    contents: dict[str, object] = {"meta": store.meta, "params": store.copy_params()}
    copies = store.load_train_copies()
    contents["stats"], contents["copies/source"] = store.load_stats(), copies.source
    for name, split in [*((s, store.load_split(s)) for s in ("train", "valid", "test")), ("copies", copies.arrays)]:
        contents.update({f"{name}/{field}": getattr(split, field) for field in ("features", "lengths", "labels")})
        contents[f"{name}/clip_ids"] = split.clip_ids
    return contents


def _assert_same(contents: dict[str, object], expected: dict[str, object]) -> None:
    assert contents.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, np.ndarray | tuple) and key != "params":
            np.testing.assert_array_equal(contents[key], value, err_msg=key)
        else:
            assert contents[key] == value, key


DAMAGE_BYTES, DAMAGED_PLACES = 512, 32


def test_a_damaged_store_is_rebuilt_or_refused_never_trusted(tmp_path: Path, caplog) -> None:
    """512 random bytes written at places spread over a complete store, each on a fresh copy:
    opened directly, it is refused in one line naming the file (or reads as before: bytes no
    array uses); build_stores rebuilds it, or reuses it only when it reads as before."""
    make_layout(tmp_path / "data", genres=("blues", "rock"), per_split=(2, 1, 1), seconds=1.0)
    dataset = load_dataset(tmp_path / "data")
    setting = FeatureSetting(n_bins=16, audio_augment=AudioAugment(copies=1, gain_db=(-3.0, 3.0)))
    intact = build_stores(dataset, [setting], tmp_path / "intact", workers=1)[setting]
    expected = _contents(intact)
    rng = np.random.default_rng(0)
    refused, test_only = [], []
    offsets = np.linspace(0, intact.stat().st_size - DAMAGE_BYTES, DAMAGED_PLACES).astype(int).tolist()
    for offset in offsets:
        damaged = tmp_path / f"at{offset}" / intact.name
        damaged.parent.mkdir()
        damaged.write_bytes(intact.read_bytes())
        with damaged.open("r+b") as f:
            f.seek(offset)
            f.write(rng.bytes(DAMAGE_BYTES))
        try:
            _assert_same(_contents(damaged), expected)
        except UserError as err:
            assert str(err).startswith(f"{damaged}: ") and "\n" not in str(err)
            refused.append(offset)
        caplog.clear()
        path = build_stores(dataset, [setting], damaged.parent, workers=1)[setting]
        rebuilt = [r.message for r in caplog.records if "rebuilding" in r.message]
        if not rebuilt and offset in refused:
            # Only the test split was hit: the search leaves it alone (it never reads test data);
            # the report checks the whole store and rebuilds it.
            with pytest.raises(UserError, match="checksum mismatch: test/"):
                _contents(path)
            metadata = {"stores": {setting.name: str(path)}, "dataset": {"root": str(dataset.root)}}
            path = open_store(tmp_path, metadata, setting).path
            test_only.append(offset)
        _assert_same(_contents(path), expected)
        assert bool(rebuilt) <= (offset in refused), rebuilt  # an intact store is never rebuilt
    assert len(refused) >= len(offsets) / 4  # the rest fell on bytes no array uses (chunks' unused ends)
    assert 0 < len(test_only) < len(refused)
