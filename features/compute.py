"""Per-clip feature computation: one decode, one STFT per (rate, window, hop) family, every
requested setting derived from them, and for training clips the augmented copies' features.
Pure functions, run inside the extractor's workers."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import scipy.fft
import soundfile
import torch

from features.augment import AudioAugment, apply_effects
from features.settings import FeatureSetting


class DecodeError(Exception):
    """The file is empty, corrupt or not audio: the clip is skipped and reported, not fatal."""


@dataclass(frozen=True)
class StftFamily:
    """Settings that share one power spectrogram: same rate and window, hops multiples of `hop`."""

    sample_rate: int
    n_fft: int
    hop: int
    settings: tuple[FeatureSetting, ...]


def plan_stfts(settings: list[FeatureSetting]) -> list[StftFamily]:
    """Group settings so each STFT is computed once.

    Kind, bins and compression are cheap on top of a power spectrogram; a hop that is a multiple of
    a finer hop with the same window takes every n-th frame of the finer one (centred frames sit at
    multiples of the hop, so this is exact).
    """
    families: dict[tuple[int, int, int], list[FeatureSetting]] = {}
    for setting in sorted(settings, key=lambda s: (s.sample_rate, s.n_fft, s.hop_length)):
        window = (setting.sample_rate, setting.n_fft)
        bases = [hop for (rate, fft, hop) in families if (rate, fft) == window]
        base = next((hop for hop in bases if setting.hop_length % hop == 0), setting.hop_length)
        families.setdefault((*window, base), []).append(setting)
    return [StftFamily(rate, fft, hop, tuple(group)) for (rate, fft, hop), group in families.items()]


@dataclass(frozen=True)
class ExtractionPlan:
    """What a worker computes per clip: every distinct setting without augmentation from the
    decoded audio, and for training clips, per augmentation, the settings that use it from each copy."""

    originals: tuple[StftFamily, ...]
    augmentations: tuple[tuple[AudioAugment, tuple[StftFamily, ...]], ...]

    @property
    def sample_rates(self) -> set[int]:
        return {family.sample_rate for family in self.originals}


def plan_extraction(settings: list[FeatureSetting]) -> ExtractionPlan:
    originals = list(dict.fromkeys(setting.original for setting in settings))
    by_augment: dict[AudioAugment, list[FeatureSetting]] = {}
    for setting in settings:
        if setting.audio_augment.enabled:
            group = by_augment.setdefault(setting.audio_augment, [])
            group += [setting.original] if setting.original not in group else []
    augmentations = tuple((augment, tuple(plan_stfts(group))) for augment, group in by_augment.items())
    return ExtractionPlan(tuple(plan_stfts(originals)), augmentations)


@dataclass(frozen=True)
class AugmentedCopy:
    params: dict[str, float]  # the effect values this copy drew (recorded in the store)
    features: dict[str, np.ndarray]  # by the name of the setting without augmentation


@dataclass(frozen=True)
class ClipFeatures:
    """One clip's result: features and per-bin sums by setting name (without augmentation), and
    for a training clip the copies of each augmentation."""

    features: dict[str, np.ndarray]
    sums: dict[str, np.ndarray]
    copies: dict[AudioAugment, list[AugmentedCopy]]

    def map_features(self, function: Callable[[Any], Any]) -> ClipFeatures:
        """The same result with `function` applied to every feature array, the copies' too (to
        move them between processes; the sums are small and stay as they are)."""
        copies = {
            augment: [AugmentedCopy(c.params, {n: function(v) for n, v in c.features.items()}) for c in listed]
            for augment, listed in self.copies.items()
        }
        return ClipFeatures({n: function(v) for n, v in self.features.items()}, self.sums, copies)

    @property
    def nbytes(self) -> int:
        """Bytes of all feature arrays."""
        arrays = [*self.features.values(), *(v for c in self.copies.values() for a in c for v in a.features.values())]
        return sum(array.nbytes for array in arrays)


def compute_clip(
    audio_by_rate: dict[int, np.ndarray], clip_id: str, augment: bool, plan: ExtractionPlan
) -> ClipFeatures:
    features, sums = {}, {}
    for name, values in feature_values(audio_by_rate, list(plan.originals)):
        features[name], sums[name] = to_stored(values), bin_sums(values)
    copies: dict[AudioAugment, list[AugmentedCopy]] = {}
    for augmentation, families in plan.augmentations if augment else ():
        copies[augmentation] = []
        rates = {family.sample_rate for family in families}
        for number in range(augmentation.copies):
            params = augmentation.copy_params(clip_id, number)
            audio = {rate: apply_effects(audio_by_rate[rate], rate, params) for rate in rates}
            copies[augmentation].append(AugmentedCopy(params, compute_features(audio, list(families))))
    return ClipFeatures(features, sums, copies)


def decode(path: Path, sample_rates: set[int]) -> dict[int, np.ndarray]:
    """Decode once (mono, float32), resample once per requested rate."""
    if path.stat().st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        audio, native_rate = soundfile.read(path, dtype="float32")
        if audio.ndim == 2:
            audio = audio.mean(axis=1)  # stereo to mono, as librosa.load does
    except soundfile.LibsndfileError:
        audio, native_rate = _decode_with_librosa(path)
    if audio.size == 0:
        raise DecodeError("no audio samples")
    if not np.isfinite(audio).all():
        raise DecodeError("audio contains NaN or infinite samples")
    return {rate: _resample(audio, native_rate, rate) for rate in sample_rates}


def _decode_with_librosa(path: Path) -> tuple[np.ndarray, int]:
    # Formats libsndfile cannot read (mp3 in some builds, odd .au variants) go through audioread.
    try:
        with warnings.catch_warnings():  # librosa warns before falling back; the error says it all
            warnings.simplefilter("ignore")
            audio, rate = librosa.load(path, sr=None, mono=True)
    except Exception as err:  # librosa raises many types for non-audio input
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise DecodeError(f"not readable as audio ({detail})") from err
    return audio.astype(np.float32), int(rate)


def _resample(audio: np.ndarray, native_rate: int, rate: int) -> np.ndarray:
    if native_rate == rate:
        return audio
    return librosa.resample(audio, orig_sr=native_rate, target_sr=rate)


def compute_features(audio_by_rate: dict[int, np.ndarray], plan: list[StftFamily]) -> dict[str, np.ndarray]:
    """Every planned setting's stored feature matrix `(bins, frames)`, keyed by setting name."""
    return {name: to_stored(values) for name, values in feature_values(audio_by_rate, plan)}


def feature_values(audio_by_rate: dict[int, np.ndarray], plan: list[StftFamily]) -> Iterator[tuple[str, np.ndarray]]:
    """Each planned setting's name and float32 features `(bins, frames)`, one STFT per family."""
    for family in plan:
        audio = audio_by_rate[family.sample_rate]
        power = power_spectrogram(audio, family.n_fft, family.hop)
        for setting in family.settings:
            step = setting.hop_length // family.hop
            frames = 1 + len(audio) // setting.hop_length
            yield setting.name, feature_from_power(power[:, ::step][:, :frames], setting)


def power_spectrogram(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """`abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop)) ** 2` (Hann window, centred frames,
    zero padding), `(1 + n_fft // 2, 1 + len(audio) // hop)`, as a transposed view of
    frames-major memory (which `mel_spectrogram` reads in place).

    librosa transforms along the strided frame axis; transforming contiguous frames along the last
    axis with scipy.fft (float32 throughout), a cache-sized block of frames at a time, gives the
    same values 2-2.5x faster, and the STFT is most of a clip's cost (tests/test_extract.py pins
    the equality).
    """
    padded = np.pad(audio, n_fft // 2)
    frames = librosa.util.frame(padded, frame_length=n_fft, hop_length=hop, axis=0)
    power = np.empty((len(frames), 1 + n_fft // 2), dtype=np.float32)
    window = _hann(n_fft)
    for start in range(0, len(frames), STFT_BLOCK_FRAMES):
        block = power[start : start + STFT_BLOCK_FRAMES]
        np.abs(scipy.fft.rfft(frames[start : start + STFT_BLOCK_FRAMES] * window, axis=-1), out=block)
        np.square(block, out=block)
    return power.T


STFT_BLOCK_FRAMES = 64  # whole clips at once ran 1.3-1.5x slower: their temporaries miss the cache


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)


def to_stored(values: np.ndarray) -> np.ndarray:
    """float16 (halves store size and memory; log-compressed features need no more than 3
    digits), C-contiguous `(bins, frames)`. torch converts with the CPU's float16 instructions,
    30x faster than numpy's scalar cast (0.6 -> 0.02 ms for a 30 s log-mel clip), and lays
    frames-major values out bins-major in the same pass."""
    return torch.from_numpy(values).to(torch.float16, memory_format=torch.contiguous_format).numpy()


def feature_from_power(power: np.ndarray, setting: FeatureSetting) -> np.ndarray:
    """One setting's float32 features `(bins, frames)` from a power spectrogram with its rate,
    window and hop."""
    if setting.kind == "chroma":
        # tuning=0: no per-clip pitch tracking, so the same note maps to the same bin in every clip.
        return librosa.feature.chroma_stft(
            S=power, sr=setting.sample_rate, n_fft=setting.n_fft, n_chroma=setting.n_bins, tuning=0.0
        )
    n_mels = setting.n_bins if setting.kind == "mel" else MFCC_MEL_BANDS
    mel = mel_spectrogram(power, setting.sample_rate, setting.n_fft, n_mels)
    if setting.kind == "mfcc":
        return librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=setting.n_bins)
    if setting.compression == "log10_1p":
        return np.log10(1 + 10 * mel)  # the homework's compression
    return librosa.power_to_db(mel)


MFCC_MEL_BANDS = 128  # mel bands the MFCCs are taken from


def mel_spectrogram(power: np.ndarray, sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """`librosa.filters.mel(...) @ power`, `(n_mels, frames)`, from a power spectrogram laid out
    frames-major as `power_spectrogram` returns it; the result is frames-major too.

    A dense product over the whole filter matrix multiplies mostly zeros (each FFT bin feeds at
    most two triangles) and a sparse one needs the power transposed first; one dense product per
    group of neighbouring triangles, over the FFT bins they cover, reads the power once in place
    (128 mels of a 30 s clip: 0.35 ms, against 1.3 ms dense and 0.6 ms sparse with its copy).
    """
    frames_major = power.T
    mel = np.empty((frames_major.shape[0], n_mels), dtype=np.float32)
    for mels, bins, weights in _mel_filter_groups(sample_rate, n_fft, n_mels):
        np.matmul(frames_major[:, bins], weights, out=mel[:, mels])
    return mel.T


MEL_GROUP_SIZE = 8  # triangles per product: larger groups multiply more zeros, smaller ones cost more calls


@functools.lru_cache(maxsize=32)
def _mel_filter_groups(sample_rate: int, n_fft: int, n_mels: int) -> tuple[tuple[slice, slice, np.ndarray], ...]:
    """librosa's mel filters, built once (librosa.feature.melspectrogram rebuilds them on every
    call), cut into groups: the group's mels, the FFT bins they cover, and their weights
    `(bins, mels)` for a frames-major product."""
    filters = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    groups = []
    for first in range(0, n_mels, MEL_GROUP_SIZE):
        rows = filters[first : first + MEL_GROUP_SIZE]
        covered = np.flatnonzero(rows.any(axis=0))  # empty for triangles too narrow to hit a bin
        bins = slice(covered[0], covered[-1] + 1) if covered.size else slice(0, 0)
        groups.append((slice(first, first + len(rows)), bins, np.ascontiguousarray(rows[:, bins].T)))
    return tuple(groups)


def bin_sums(features: np.ndarray) -> np.ndarray:
    """Per-bin sum and sum of squares `(2, bins)` in float64, for the train-only statistics, of
    the float32 features before they are rounded to float16. Computed in the workers, so the
    single writer only adds them up."""
    squares = np.einsum("ij,ij->i", features, features, dtype=np.float64)
    return np.stack([features.sum(axis=1, dtype=np.float64), squares])
