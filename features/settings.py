"""What one feature store holds: a `FeatureSetting`, whose name is the store's file name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from common.typed import from_dict, require
from features.augment import AudioAugment

KINDS = ("mel", "mfcc", "chroma")
# How mel energies are compressed: the homework's log10(1 + 10 * mel), or decibels (power_to_db).
MEL_COMPRESSIONS = ("log10_1p", "db")
SAMPLE_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000)
KIND_DEFAULTS = {
    "mel": {"n_bins": 128, "compression": "log10_1p"},
    "mfcc": {"n_bins": 40, "compression": "none"},
    "chroma": {"n_bins": 12, "compression": "none"},
}


@dataclass(frozen=True)
class FeatureSetting:
    """One time-frequency representation: everything that decides a store's contents."""

    kind: str = "mel"
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 512
    n_bins: int | None = None  # mel bands, MFCC coefficients or chroma bins; None: the kind's default
    compression: str | None = None  # mel: log10_1p (the homework's) or db; "none" for mfcc and chroma
    audio_augment: AudioAugment = AudioAugment()  # augmented copies of the training clips (none by default)

    def __post_init__(self) -> None:
        for key, value in KIND_DEFAULTS.get(self.kind, {}).items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)  # frozen: resolved once, here
        if not self.audio_augment.enabled:
            # No copies: the effect ranges do not matter, so every such setting is the same store.
            object.__setattr__(self, "audio_augment", AudioAugment())
        _check_setting(self)

    @property
    def name(self) -> str:
        """A file-name-safe key: two settings never share it, one setting always maps to it."""
        parts = [self.kind, f"sr{self.sample_rate}", f"fft{self.n_fft}", f"hop{self.hop_length}"]
        parts += [f"bins{self.n_bins}", self.compression]
        if self.audio_augment.enabled:
            parts.append(self.audio_augment.key)
        return "-".join(parts)

    @property
    def original(self) -> FeatureSetting:
        """The same features without augmented copies: what validation and test clips get."""
        return dataclasses.replace(self, audio_augment=AudioAugment())

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "features") -> FeatureSetting:
        return from_dict(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_setting(s: FeatureSetting) -> None:
    require(s.kind in KINDS, "features.kind", s.kind, f"is not supported (supported: {', '.join(KINDS)})")
    rate_ok = s.sample_rate in SAMPLE_RATES
    require(rate_ok, "features.sample_rate", s.sample_rate, f"is not supported (supported: {SAMPLE_RATES})")
    require(64 <= s.n_fft <= 16384, "features.n_fft", s.n_fft, "must be between 64 and 16384 samples")
    hop_ok = 1 <= s.hop_length <= s.n_fft
    require(hop_ok, "features.hop_length", s.hop_length, f"must be between 1 and n_fft ({s.n_fft})")
    most_bins = s.n_fft // 2 + 1
    require(1 <= s.n_bins <= most_bins, "features.n_bins", s.n_bins, f"must be between 1 and n_fft/2+1 ({most_bins})")
    allowed = MEL_COMPRESSIONS if s.kind == "mel" else ("none",)
    why = f"is not supported for kind {s.kind} (supported: {allowed})"
    require(s.compression in allowed, "features.compression", s.compression, why)
