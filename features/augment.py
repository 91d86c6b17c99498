"""Audio-effect augmentation: copies of each training clip made once, at extraction, from the
decoded audio (pitch shift, time stretch, EQ tilt, gain, added noise), stored beside the originals.

Each copy draws every enabled effect's value uniformly from its range, from a generator seeded by
(seed, clip id, copy number): the same copies whatever the worker order, clip order or machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from common.typed import require

# Effects in the order they are applied: pitch and tempo first (one phase vocoder for both), then
# the spectral balance and level, and the noise last, so its SNR is relative to the finished copy.
EFFECTS = ("time_stretch", "pitch_shift", "tilt_db_per_octave", "gain_db", "noise_snr_db")
# Allowed ranges: beyond these a copy stops sounding like the same piece of music.
EFFECT_LIMITS = {
    "time_stretch": (0.5, 2.0),  # playback-rate factor: > 1 faster and shorter, < 1 slower and longer
    "pitch_shift": (-12.0, 12.0),  # semitones
    "tilt_db_per_octave": (-12.0, 12.0),  # dB per octave around TILT_PIVOT_HZ: > 0 brighter, < 0 darker
    "gain_db": (-40.0, 40.0),  # dB
    "noise_snr_db": (-10.0, 100.0),  # signal-to-noise ratio of added white noise, dB
}
TILT_PIVOT_HZ = 1000.0  # the tilt leaves this frequency unchanged
TILT_FLOOR_HZ = 50.0  # below this the tilt's gain stays constant, so a darkening tilt cannot boost DC


@dataclass(frozen=True)
class AudioAugment:
    """How many augmented copies of each training clip, and each effect's range ([low, high], or
    None for off). `copies: 0` is no augmentation, whatever the ranges say."""

    copies: int = 0
    time_stretch: tuple[float, ...] | None = None
    pitch_shift: tuple[float, ...] | None = None
    tilt_db_per_octave: tuple[float, ...] | None = None
    gain_db: tuple[float, ...] | None = None
    noise_snr_db: tuple[float, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check_augment(self)

    @property
    def enabled(self) -> bool:
        return self.copies > 0

    @property
    def effects(self) -> dict[str, tuple[float, float]]:
        """The enabled effects and their ranges, in the order they are applied."""
        return {name: getattr(self, name) for name in EFFECTS if getattr(self, name) is not None}

    @property
    def key(self) -> str:
        """Part of a store's name: the number of copies and a digest of everything else."""
        described = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return f"aug{self.copies}-{hashlib.sha1(described.encode()).hexdigest()[:8]}"

    def copy_params(self, clip_id: str, copy: int) -> dict[str, float]:
        """Copy number `copy` of `clip_id`: each enabled effect's value, plus its noise seed."""
        rng = np.random.default_rng([self.seed, zlib.crc32(clip_id.encode()), copy])
        params = {name: float(rng.uniform(low, high)) for name, (low, high) in self.effects.items()}
        if "noise_snr_db" in params:
            params["noise_seed"] = int(rng.integers(2**31))
        return params


def _check_augment(augment: AudioAugment) -> None:
    where = "features.audio_augment"
    copies_ok = isinstance(augment.copies, int) and 0 <= augment.copies <= 32
    require(copies_ok, f"{where}.copies", augment.copies, "must be an integer from 0 to 32")
    for name, (lowest, highest) in EFFECT_LIMITS.items():
        bounds = getattr(augment, name)
        if bounds is None:
            continue
        is_range = len(bounds) == 2 and all(math.isfinite(b) for b in bounds) and bounds[0] <= bounds[1]
        require(is_range, f"{where}.{name}", list(bounds), "must be a range [low, high] with low <= high")
        inside = lowest <= bounds[0] and bounds[1] <= highest
        require(inside, f"{where}.{name}", list(bounds), f"must lie within [{lowest}, {highest}]")
    has_effect = not augment.copies or bool(augment.effects)
    why = f"copies need at least one effect range ({', '.join(EFFECTS)})"
    require(has_effect, f"{where}.copies", augment.copies, why)


def apply_effects(audio: np.ndarray, sample_rate: int, params: dict[str, Any]) -> np.ndarray:
    """One augmented copy of `audio` (mono float32) with the values `copy_params` drew."""
    out = _stretch_and_shift(audio, sample_rate, params.get("time_stretch", 1.0), params.get("pitch_shift", 0.0))
    if "tilt_db_per_octave" in params:
        out = _tilt(out, sample_rate, params["tilt_db_per_octave"])
    if "gain_db" in params:
        out = out * np.float32(10 ** (params["gain_db"] / 20))
    if "noise_snr_db" in params:
        out = _add_noise(out, params["noise_snr_db"], params["noise_seed"])
    return out.astype(np.float32, copy=False)


def _stretch_and_shift(audio: np.ndarray, sample_rate: int, rate: float, semitones: float) -> np.ndarray:
    """Tempo times `rate` and pitch up `semitones` with one phase vocoder: librosa's pitch_shift is
    a time stretch by the pitch ratio followed by a resampling, so both effects share the stretch."""
    if rate == 1.0 and semitones == 0.0:
        return audio
    # Imported here: training reads these settings (features.settings) and must run without librosa.
    import librosa

    ratio = 2.0 ** (semitones / 12)
    out = librosa.effects.time_stretch(audio, rate=rate / ratio) if rate != ratio else audio
    if semitones != 0.0:
        out = librosa.resample(out, orig_sr=sample_rate * ratio, target_sr=sample_rate)
    return librosa.util.fix_length(out, size=max(1, round(len(audio) / rate)))


def _tilt(audio: np.ndarray, sample_rate: int, db_per_octave: float) -> np.ndarray:
    """A linear-phase EQ tilt: gain grows by `db_per_octave` per octave above TILT_PIVOT_HZ (and falls
    below it), applied in the frequency domain of the whole clip."""
    size = scipy.fft.next_fast_len(len(audio), real=True)  # a clip's length may be a large prime: pad
    spectrum = scipy.fft.rfft(audio, n=size)
    frequencies = np.maximum(scipy.fft.rfftfreq(size, 1 / sample_rate), TILT_FLOOR_HZ)
    gain = (10 ** (db_per_octave * np.log2(frequencies / TILT_PIVOT_HZ) / 20)).astype(np.float32)
    return scipy.fft.irfft(spectrum * gain, n=size)[: len(audio)].astype(np.float32)


def _add_noise(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """White noise at `snr_db` below the clip's RMS level (a silent clip stays silent)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms == 0.0:
        return audio
    noise = np.random.default_rng(seed).standard_normal(len(audio), dtype=np.float32)
    return audio + noise * np.float32(rms * 10 ** (-snr_db / 20))
