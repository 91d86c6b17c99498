"""What one feature store holds (`FeatureSetting`), and the `features` section of a space file
that expands into the settings a search can select."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

from common.errors import UserError
from common.typed import from_dict

KINDS = ("mel", "mfcc", "chroma")
# How mel energies are compressed: the homework's log10(1 + 10 * mel), or decibels (power_to_db).
MEL_COMPRESSIONS = ("log10_1p", "db")
SAMPLE_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000)


@dataclass(frozen=True)
class FeatureSetting:
    """One time-frequency representation: everything that decides a store's contents."""

    kind: str = "mel"
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 512
    n_bins: int = 128  # mel bands, MFCC coefficients or chroma bins
    compression: str = "log10_1p"  # mel only; "none" for mfcc and chroma

    def __post_init__(self) -> None:
        _check_setting(self)

    @property
    def name(self) -> str:
        """A file-name-safe key: two settings never share it, one setting always maps to it."""
        parts = [self.kind, f"sr{self.sample_rate}", f"fft{self.n_fft}", f"hop{self.hop_length}"]
        parts += [f"bins{self.n_bins}", self.compression]
        return "-".join(parts)

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "features") -> FeatureSetting:
        return from_dict(cls, values, where)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_setting(s: FeatureSetting) -> None:
    def bad(key: str, why: str) -> UserError:
        return UserError(f"features.{key}: {getattr(s, key)!r} {why}")

    if s.kind not in KINDS:
        raise bad("kind", f"is not supported (supported: {', '.join(KINDS)})")
    if s.sample_rate not in SAMPLE_RATES:
        raise bad("sample_rate", f"is not supported (supported: {SAMPLE_RATES})")
    if not 64 <= s.n_fft <= 16384:
        raise bad("n_fft", "must be between 64 and 16384 samples")
    if not 1 <= s.hop_length <= s.n_fft:
        raise bad("hop_length", f"must be between 1 and n_fft ({s.n_fft})")
    if not 1 <= s.n_bins <= s.n_fft // 2 + 1:
        raise bad("n_bins", f"must be between 1 and n_fft/2+1 ({s.n_fft // 2 + 1})")
    allowed = MEL_COMPRESSIONS if s.kind == "mel" else ("none",)
    if s.compression not in allowed:
        raise bad("compression", f"is not supported for kind {s.kind} (supported: {allowed})")


# --- the `features` section of a space file -------------------------------------------------
#
#   features:
#     sample_rate: 22050                 # fixed value, or {choice: [...]}
#     n_fft: 1024
#     hop_length: {choice: [256, 512]}
#     kind: {choice: [mel, mfcc]}
#     mel: {n_bins: 128, compression: {choice: [log10_1p, db]}}   # applies when kind is mel
#     mfcc: {n_bins: 40}                                         # applies when kind is mfcc
#     chroma: {n_bins: 12}
#
# Each combination of choices is one store, so only fixed values and `choice` are allowed here.

SHARED_KEYS = ("sample_rate", "n_fft", "hop_length")
PER_KIND_KEYS = ("n_bins", "compression")
DEFAULT_PER_KIND = {
    "mel": {"n_bins": 128, "compression": "log10_1p"},
    "mfcc": {"n_bins": 40, "compression": "none"},
    "chroma": {"n_bins": 12, "compression": "none"},
}


def expand_feature_section(section: dict[str, Any] | None, where: str = "features") -> list[FeatureSetting]:
    """Every `FeatureSetting` the section can select, in a stable order, each once."""
    section = dict(section or {})
    unknown = sorted(set(section) - {*SHARED_KEYS, "kind", *KINDS})
    if unknown:
        raise UserError(f"{where}: unknown key {', '.join(unknown)}")
    shared = {key: _options(section, key, where) for key in SHARED_KEYS if key in section}
    settings: list[FeatureSetting] = []
    for kind in _options(section, "kind", where) if "kind" in section else ["mel"]:
        per_kind = dict(DEFAULT_PER_KIND[kind]) if kind in DEFAULT_PER_KIND else {}
        sub = section.get(kind) or {}
        bad = sorted(set(sub) - set(PER_KIND_KEYS))
        if bad:
            raise UserError(f"{where}.{kind}: unknown key {', '.join(bad)}")
        options = {**{k: [v] for k, v in per_kind.items()}, **shared}
        options.update({key: _options(sub, key, f"{where}.{kind}") for key in sub})
        for combo in itertools.product(*options.values()):
            setting = FeatureSetting.from_dict({"kind": kind, **dict(zip(options, combo))}, where)
            if setting not in settings:
                settings.append(setting)
    return settings


def _options(section: dict[str, Any], key: str, where: str) -> list[Any]:
    value = section[key]
    if not isinstance(value, dict):
        return [value]
    if set(value) != {"choice"}:
        raise UserError(
            f"{where}.{key}: feature settings take a fixed value or {{choice: [...]}}, "
            f"not {', '.join(value)} (each combination is one store)"
        )
    options = value["choice"]
    if not isinstance(options, list) or not options:
        raise UserError(f"{where}.{key}: choice needs a non-empty list")
    return options
