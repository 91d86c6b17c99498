"""Audio-effect augmentation: the effects themselves, augmented copies in the stores (train split
only, keyed by their settings, deterministic), training on them, and space files asking for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import UserError
from features.augment import AudioAugment, apply_effects
from features.dataset import load_dataset
from features.extract import build_stores
from features.settings import FeatureSetting
from features.store import FeatureStore
from search.space import parse_space
from tests.conftest import RATE, make_layout
from training import TrialConfig, fit
from training.augment import augment_batch, mixup, random_gain, random_masks
from training.config import AugmentConfig
from training.segments import DeviceSplit, random_crops, with_copies

ALL_EFFECTS = AudioAugment(
    copies=2,
    time_stretch=(0.8, 0.9),
    pitch_shift=(-2.0, 2.0),
    tilt_db_per_octave=(-2.0, 2.0),
    gain_db=(-6.0, 6.0),
    noise_snr_db=(20.0, 30.0),
)
PLAIN = FeatureSetting(n_bins=32)
AUGMENTED = FeatureSetting(n_bins=32, audio_augment=ALL_EFFECTS)


def tone(hz: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / RATE)[spectrum.argmax()])


def spectral_centroid(audio: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    return float((np.fft.rfftfreq(len(audio), 1 / RATE) * power).sum() / power.sum())


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[FeatureSetting, FeatureStore]:
    """One build of a store without and one with augmentation (all five effects, two copies)."""
    folder = tmp_path_factory.mktemp("augment")
    make_layout(folder / "data", per_split=(3, 2, 2), seconds=3.0)
    paths = build_stores(load_dataset(folder / "data"), [PLAIN, AUGMENTED], folder / "stores", workers=2)
    return {setting: FeatureStore(path) for setting, path in paths.items()}


# --- the effects --------------------------------------------------------------------------------


@pytest.mark.parametrize(("semitones", "expected_hz"), [(12.0, 880.0), (-12.0, 220.0), (2.0, 440 * 2 ** (2 / 12))])
def test_pitch_shift_moves_spectral_energy_as_asked(semitones: float, expected_hz: float) -> None:
    shifted = apply_effects(tone(440.0), RATE, {"pitch_shift": semitones})
    assert len(shifted) == len(tone(440.0))  # pitch alone keeps the duration
    assert peak_hz(shifted) == pytest.approx(expected_hz, rel=0.02)


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_changes_length_as_asked_and_keeps_pitch(rate: float) -> None:
    stretched = apply_effects(tone(440.0), RATE, {"time_stretch": rate})
    assert len(stretched) == round(len(tone(440.0)) / rate)
    assert peak_hz(stretched) == pytest.approx(440.0, rel=0.02)


def test_tilt_gain_and_noise_do_what_they_say() -> None:
    audio = np.random.default_rng(0).standard_normal(RATE).astype(np.float32) * 0.1
    assert spectral_centroid(apply_effects(audio, RATE, {"tilt_db_per_octave": 6.0})) > spectral_centroid(audio) * 1.2
    assert spectral_centroid(apply_effects(audio, RATE, {"tilt_db_per_octave": -6.0})) < spectral_centroid(audio) / 1.2
    louder = apply_effects(audio, RATE, {"gain_db": 6.0})
    assert np.sqrt(np.mean(louder**2)) / np.sqrt(np.mean(audio**2)) == pytest.approx(10 ** (6 / 20), rel=1e-4)
    clean = tone(440.0)
    noisy = apply_effects(clean, RATE, {"noise_snr_db": 20.0, "noise_seed": 1})
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert snr == pytest.approx(20.0, abs=0.2)


def test_copies_differ_from_the_original_and_from_each_other() -> None:
    audio = tone(330.0)
    first, second = (apply_effects(audio, RATE, ALL_EFFECTS.copy_params("jazz/jazz.00001", n)) for n in (0, 1))
    assert not np.allclose(first[: len(audio)], audio[: len(first)])
    assert len(first) != len(second) or not np.allclose(first, second)


def test_copy_values_are_deterministic_per_seed_and_clip() -> None:
    again = AudioAugment(**{**ALL_EFFECTS.__dict__})
    assert ALL_EFFECTS.copy_params("a/a.1", 0) == again.copy_params("a/a.1", 0)
    assert ALL_EFFECTS.copy_params("a/a.1", 0) != ALL_EFFECTS.copy_params("a/a.2", 0)
    assert ALL_EFFECTS.copy_params("a/a.1", 0) != ALL_EFFECTS.copy_params("a/a.1", 1)
    other_seed = AudioAugment(**{**ALL_EFFECTS.__dict__, "seed": 1})
    assert ALL_EFFECTS.copy_params("a/a.1", 0) != other_seed.copy_params("a/a.1", 0)
    params = ALL_EFFECTS.copy_params("a/a.1", 0)
    for name, (low, high) in ALL_EFFECTS.effects.items():
        assert low <= params[name] <= high


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"copies": 2}, "copies"),  # no effect to apply
        ({"copies": 1, "pitch_shift": (2.0, -2.0)}, "pitch_shift"),
        ({"copies": 1, "time_stretch": (0.1, 1.0)}, "time_stretch"),
        ({"copies": 1, "gain_db": (1.0,)}, "gain_db"),
        ({"copies": -1}, "copies"),
    ],
)
def test_bad_settings_are_named(values: dict, key: str) -> None:
    with pytest.raises(UserError, match=f"features.audio_augment.{key}"):
        AudioAugment(**values)


# --- stores ---------------------------------------------------------------------------------------


def test_store_keys_differ_with_the_settings() -> None:
    names = {
        PLAIN.name,
        AUGMENTED.name,
        FeatureSetting(n_bins=32, audio_augment=AudioAugment(copies=1, pitch_shift=(-2.0, 2.0))).name,
        FeatureSetting(n_bins=32, audio_augment=AudioAugment(copies=2, pitch_shift=(-2.0, 2.0))).name,
        FeatureSetting(n_bins=32, audio_augment=AudioAugment(copies=2, pitch_shift=(-1.0, 1.0))).name,
        FeatureSetting(n_bins=32, audio_augment=AudioAugment(copies=2, pitch_shift=(-1.0, 1.0), seed=1)).name,
    }
    assert len(names) == 6
    no_copies = FeatureSetting(n_bins=32, audio_augment=AudioAugment(copies=0, pitch_shift=(-2.0, 2.0)))
    assert no_copies == PLAIN and no_copies.name == PLAIN.name  # zero copies: the plain store, not a new one
    assert AUGMENTED.original == PLAIN


def test_only_the_train_split_is_augmented(stores: dict[FeatureSetting, FeatureStore]) -> None:
    plain, augmented = stores[PLAIN], stores[AUGMENTED]
    assert plain.load_train_copies() is None
    copies = augmented.load_train_copies()
    train = augmented.load_split("train")
    assert len(copies) == 2 * len(train)
    assert np.bincount(copies.source).tolist() == [2] * len(train)
    assert [cid.split("#")[0] for cid in copies.arrays.clip_ids] == [train.clip_ids[s] for s in copies.source]
    assert (copies.arrays.labels == train.labels[copies.source]).all()
    for split in ("train", "valid", "test"):  # the originals are the same with or without copies
        np.testing.assert_array_equal(plain.load_split(split).features, augmented.load_split(split).features)
    for ours, theirs in zip(plain.load_stats(), augmented.load_stats()):  # statistics: originals only
        np.testing.assert_array_equal(ours, theirs)
    assert augmented.meta["counts"] == {**plain.meta["counts"], "train_copies": 2 * len(train)}


def test_stored_copies_differ_and_are_stretched(stores: dict[FeatureSetting, FeatureStore]) -> None:
    store = stores[AUGMENTED]
    copies, train = store.load_train_copies(), store.load_split("train")
    params = store.copy_params()
    for row, source in enumerate(copies.source):
        expected = train.lengths[source] / params[row]["time_stretch"]
        assert copies.arrays.lengths[row] == pytest.approx(expected, abs=2)
        frames = min(copies.arrays.lengths[row], train.lengths[source])
        assert not np.allclose(copies.arrays.clip(row)[:, :frames], train.clip(source)[:, :frames], atol=0.05)
    first, second = copies.arrays.clip(0), copies.arrays.clip(1)  # both copies of clip 0
    assert copies.source[0] == copies.source[1] and not np.array_equal(first, second)


def test_copies_are_the_same_when_rebuilt(stores: dict[FeatureSetting, FeatureStore], tmp_path: Path) -> None:
    root = Path(stores[AUGMENTED].dataset["root"])
    rebuilt = build_stores(load_dataset(root), [AUGMENTED], tmp_path, workers=1)[AUGMENTED]
    np.testing.assert_array_equal(
        FeatureStore(rebuilt).load_train_copies().arrays.features,
        stores[AUGMENTED].load_train_copies().arrays.features,
    )


# --- training -------------------------------------------------------------------------------------


def test_crops_come_from_originals_and_their_copies() -> None:
    originals = _device_split(lengths=[50, 60, 70], labels=[0, 1, 2])
    copies = _device_split(lengths=[51, 52, 61, 62, 71, 72], labels=[0, 0, 1, 1, 2, 2])
    joined = with_copies(originals, copies, np.array([0, 0, 1, 1, 2, 2]))
    assert len(joined) == 3 and joined.variants.tolist() == [[0, 3, 4], [1, 5, 6], [2, 7, 8]]
    rows, starts = random_crops(joined.lengths, 20, 200, torch.Generator().manual_seed(0), joined.variants)
    assert len(rows) == 3 * 200  # an epoch is as long as without copies
    assert set(rows.tolist()) == set(range(9))  # every original and copy is used
    assert (joined.labels[rows] == torch.as_tensor([0, 1, 2])[_source_of(joined.variants, rows)]).all()
    assert (starts.numpy() + 20 <= joined.lengths[rows.numpy()]).all()


def test_fit_trains_on_the_copies(stores: dict[FeatureSetting, FeatureStore]) -> None:
    data = stores[AUGMENTED].load_fit_data()
    config = TrialConfig.from_dict(
        {
            "features": AUGMENTED.to_dict(),
            "model": {"arch": "cnn1d", "params": {"depth": 2, "channels": 8}},
            "training": {"segment_seconds": 1.0, "segments_per_clip": 2, "batch_size": 4, "max_epochs": 2},
        }
    )
    result = fit(config, data)
    assert len(result.history) == 2 and np.isfinite(result.history[-1].train_loss)
    with pytest.raises(UserError, match="features"):
        fit(config, stores[PLAIN].load_fit_data())  # a store without the copies is not silently used


def _device_split(lengths: list[int], labels: list[int]) -> DeviceSplit:
    offsets = torch.as_tensor(np.cumsum(lengths) - lengths)
    return DeviceSplit(
        torch.zeros(sum(lengths), 4), offsets, np.asarray(lengths, dtype=np.int64), torch.as_tensor(labels)
    )


def _source_of(variants: np.ndarray, rows: torch.Tensor) -> torch.Tensor:
    source = np.empty(variants.size, dtype=np.int64)
    source[variants.ravel()] = np.repeat(np.arange(len(variants)), variants.shape[1])
    return torch.as_tensor(source)[rows]


# --- space files ----------------------------------------------------------------------------------


def test_space_file_asks_for_augmentation_fixed_or_as_a_choice() -> None:
    raw = {
        "features": {
            "kind": "mel",
            "audio_augment": {
                "copies": {"choice": [0, 2]},
                "pitch_shift": {"choice": [[-2, 2], [-4, 4]]},
                "gain_db": [-6, 6],
            },
        }
    }
    settings = parse_space(raw, Path("aug.yaml")).feature_settings()
    assert len(settings) == 3  # no copies (whatever the ranges), and two copies with either range
    assert {s.audio_augment.pitch_shift for s in settings} == {None, (-2.0, 2.0), (-4.0, 4.0)}
    assert all(s.audio_augment.gain_db in (None, (-6.0, 6.0)) for s in settings)


@pytest.mark.parametrize(
    ("augment", "key"),
    [
        ({"copies": 2, "pitchshift": [-2, 2]}, "features.audio_augment.pitchshift"),
        ({"copies": 2}, "features.audio_augment.copies"),
        ({"copies": 1, "time_stretch": {"uniform": [0.8, 1.2]}}, "features.audio_augment.time_stretch"),
        ({"copies": 1, "gain_db": {"choice": [[6, -6]]}}, "features.audio_augment.gain_db"),
        ("lots", "features.audio_augment"),
    ],
)
def test_space_errors_in_augmentation_name_the_key(augment: object, key: str) -> None:
    with pytest.raises(UserError) as err:
        parse_space({"features": {"audio_augment": augment}}, Path("aug.yaml"))
    assert str(err.value).startswith("aug.yaml: ") and key in str(err.value)


# --- batch augmentation on normalised features (training/augment.py) -------------------------------


def _masked_bands(hit: np.ndarray) -> list[tuple[int, int]]:
    """(start, width) of each run of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], hit.astype(int), [0]])))
    return [(int(start), int(end - start)) for start, end in zip(edges[::2], edges[1::2])]


@pytest.mark.parametrize(("axis", "other"), [(2, 1), (1, 2)])
def test_masks_blank_whole_bands_of_0_to_max_width_along_their_axis(axis: int, other: int) -> None:
    x = torch.rand(3000, 12, 40) + 1.0  # never 0 before masking
    masked = random_masks(x, axis, 1, 5, torch.Generator().manual_seed(0))
    zero = (masked == 0).numpy()
    hit = zero.any(axis=other)  # (examples, positions along the masked axis)
    assert (zero == np.expand_dims(hit, other)).all()  # a masked step is blank across the other axis
    assert torch.equal(masked[torch.as_tensor(~zero)], x[torch.as_tensor(~zero)])  # the rest is untouched
    widths = [sum(w for _, w in _masked_bands(row)) for row in hit]
    assert all(len(_masked_bands(row)) <= 1 for row in hit)  # one band per example
    assert set(widths) == {0, 1, 2, 3, 4, 5}  # widths 0..max_width, both ends included


def test_several_masks_per_example_stay_within_their_count_and_width() -> None:
    x = torch.ones(500, 4, 100)
    hit = (random_masks(x, 2, 3, 6, torch.Generator().manual_seed(1)) == 0).numpy().all(axis=1)
    assert max(sum(w for _, w in _masked_bands(row)) for row in hit) <= 3 * 6
    assert max(len(_masked_bands(row)) for row in hit) == 3


def test_mixup_blends_examples_and_targets_with_the_same_beta_weight() -> None:
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    targets = torch.eye(6, dtype=torch.float64)  # every example its own class
    mixed, soft = mixup(x, targets, 0.4, np.random.default_rng(7))
    weights = torch.as_tensor(np.random.default_rng(7).beta(0.4, 0.4, size=6))
    previous = torch.arange(6).roll(1)  # each example is blended with the one before it
    expected = weights[:, None, None] * x + (1 - weights[:, None, None]) * x[previous]
    torch.testing.assert_close(mixed, expected)
    torch.testing.assert_close(soft.diagonal(), weights)
    torch.testing.assert_close(soft[torch.arange(6), previous], 1 - weights)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(6, dtype=torch.float64))


def test_gain_shifts_each_example_by_one_gain_scaled_per_bin() -> None:
    x = torch.randn(200, 4, 7)
    per_db = torch.tensor([0.1, 0.2, 0.05, 0.0])
    shifted = random_gain(x, 6.0, per_db, torch.Generator().manual_seed(0))
    delta = shifted - x
    torch.testing.assert_close(delta, delta[:, :, :1].expand_as(delta))  # constant over frames
    gains = delta[:, 0, 0] / per_db[0]  # dB of each example
    torch.testing.assert_close(delta[:, :, 0], gains[:, None] * per_db[None, :], atol=1e-5, rtol=1e-4)
    assert gains.abs().max() <= 6.0 + 1e-4 and gains.min() < -4.0 and gains.max() > 4.0


def test_masked_regions_stay_at_the_mean_after_gain() -> None:
    config = AugmentConfig(time_masks=2, time_mask_frames=8, gain_db=6.0)
    x, targets = torch.randn(64, 4, 30), torch.eye(4).repeat(16, 1)
    generator, rng = torch.Generator().manual_seed(3), np.random.default_rng(3)
    out, soft = augment_batch(x, targets, config, torch.full((4,), 0.1), generator, rng)
    blank = (out == 0).all(dim=1)  # whole masked frames
    assert blank.any() and torch.equal(soft, targets)  # no mixup asked: targets unchanged
    kept = ~blank[:, None, :].expand_as(out)
    assert not torch.equal(out[kept], x[kept])  # the gain moved the rest
