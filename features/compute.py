"""Per-clip feature computation: one decode, one STFT per (rate, window, hop) family, every
requested setting derived from them, and for training clips the augmented copies' features.
Pure functions, run inside the extractor's workers."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import soundfile
from threadpoolctl import threadpool_limits

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


@functools.cache
def silence_frame(setting: FeatureSetting) -> np.ndarray:
    """(bins,) float32: the features of a silent frame for `setting`, as stored (float16 values):
    the padding of a clip shorter than a network's input, the same in every class, in the
    feature's own domain (0 for the homework's log10(1 + 10 mel), -100 dB for dB, MFCCs of it)."""
    original = setting.original
    silence = {original.sample_rate: np.zeros(4 * original.n_fft, dtype=np.float32)}
    with threadpool_limits(limits=1):
        values = compute_features(silence, plan_stfts([original]))[original.name]
    return values[:, values.shape[1] // 2].astype(np.float32)


def features_of_file(path: Path, setting: FeatureSetting) -> np.ndarray:
    """The `(bins, frames)` float16 features a store of `setting` holds for the audio in `path`
    (an original clip's, never an augmented copy's). Raises `DecodeError` for unreadable audio
    and `OSError` for a file that cannot be opened."""
    original = setting.original
    audio = decode(Path(path), {original.sample_rate})
    with threadpool_limits(limits=1):  # as the extractor computes: the rounding depends on BLAS threads
        return compute_features(audio, plan_stfts([original]))[original.name]


def feature_values(audio_by_rate: dict[int, np.ndarray], plan: list[StftFamily]) -> Iterator[tuple[str, np.ndarray]]:
    """Each planned setting's name and float32 features `(bins, frames)`: one `librosa.stft` per
    family, one mel spectrogram per hop and band count (shared by the kinds and compressions
    that use it)."""
    for family in plan:
        audio = audio_by_rate[family.sample_rate]
        power = np.abs(librosa.stft(audio, n_fft=family.n_fft, hop_length=family.hop)) ** 2
        by_step: dict[int, list[FeatureSetting]] = {}
        for setting in family.settings:
            by_step.setdefault(setting.hop_length // family.hop, []).append(setting)
        for step, settings in by_step.items():
            # Centred frames sit at multiples of the hop: every step-th frame is the coarser hop's STFT.
            spectrum = np.ascontiguousarray(power[:, ::step]) if step > 1 else power
            mel_of = functools.cache(functools.partial(_mel, spectrum, family.sample_rate, family.n_fft))
            for setting in settings:
                yield setting.name, _features(spectrum, setting, mel_of)


def _mel(power: np.ndarray, sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    return librosa.feature.melspectrogram(S=power, sr=sample_rate, n_fft=n_fft, n_mels=n_mels)


def _features(power: np.ndarray, setting: FeatureSetting, mel_of: Callable[[int], np.ndarray]) -> np.ndarray:
    """One setting's float32 features `(bins, frames)` from a power spectrogram with its rate,
    window and hop; `mel_of(n_mels)` is that spectrogram's mel power."""
    if setting.kind == "chroma":
        # tuning=0: no per-clip pitch tracking, so the same note maps to the same bin in every clip.
        return librosa.feature.chroma_stft(
            S=power, sr=setting.sample_rate, n_fft=setting.n_fft, n_chroma=setting.n_bins, tuning=0.0
        )
    if setting.kind == "mfcc":
        return librosa.feature.mfcc(S=librosa.power_to_db(mel_of(MFCC_MEL_BANDS)), n_mfcc=setting.n_bins)
    if setting.compression == "log10_1p":
        return np.log10(1 + 10 * mel_of(setting.n_bins))  # the homework's compression
    return librosa.power_to_db(mel_of(setting.n_bins))


MFCC_MEL_BANDS = 128  # mel bands the MFCCs are taken from


def to_stored(values: np.ndarray) -> np.ndarray:
    """float16: halves store size and memory; log-compressed features need no more than 3 digits."""
    return values.astype(np.float16)


def bin_sums(features: np.ndarray) -> np.ndarray:
    """Per-bin sum and sum of squares `(2, bins)` in float64, for the train-only statistics, of
    the float32 features before they are rounded to float16. Computed in the workers, so the
    single writer only adds them up."""
    squares = np.einsum("ij,ij->i", features, features, dtype=np.float64)
    return np.stack([features.sum(axis=1, dtype=np.float64), squares])
