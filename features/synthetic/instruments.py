"""The synthetic set's instruments, at `SAMPLE_RATE`: additive timbres and the notes they play, drum
kits and the drum sounds drawn from them; and the random draws every part of a clip makes with them.

A kit or a timbre is named by the genre recipes (`features.synthetic.recipes`) and played by the
song's parts (`features.synthetic.render`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

SAMPLE_RATE = 22050
SR = SAMPLE_RATE

Range = tuple[float, float]


# --- draws from a recipe's ranges and choices ----------------------------------------------------


def uniform(rng: np.random.Generator, bounds: Range) -> float:
    """A value drawn uniformly between `bounds`."""
    return float(rng.uniform(bounds[0], bounds[1]))


def pick(rng: np.random.Generator, options: Sequence):
    """One of `options` (rng.choice would turn tuples of tuples into arrays)."""
    return options[int(rng.integers(len(options)))]


def filtered_noise(rng: np.random.Generator, n: int, kind: str, hz: float | Sequence[float]) -> np.ndarray:
    """`n` samples of white noise through a second-order Butterworth filter (`kind`: lowpass, ...)."""
    sos = signal.butter(2, hz, btype=kind, fs=SR, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


# --- tonal instruments ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Timbre:
    """An additive instrument: the harmonic recipe and envelope that make a piano sound unlike a pad."""

    partials: tuple[float, ...]  # amplitude of harmonic 1, 2, 3, ...
    attack: float = 0.01  # seconds to full level: bowed and blown notes swell, struck ones do not
    decay: float = 1e9  # time constant of the fall after the attack (struck and plucked strings)
    floor: float = 1.0  # level the decay settles to; 0 = the note dies away like a piano's
    release: float = 0.05  # fade after the note is let go
    bright_decay: float = 0.0  # extra decay per partial: struck strings lose their brightness first
    vibrato: float = 0.0  # depth in semitones (strings, voices, horns)
    detune: float = 0.0  # cents of a second, detuned copy: an ensemble's chorus
    inharmonic: float = 0.0  # string stiffness: partial k sits at k * sqrt(1 + B k^2)


def _saw(count: int, tilt: float = 1.0) -> tuple[float, ...]:
    """Harmonics of a sawtooth-like tone, `tilt` steeper for darker instruments."""
    return tuple(1.0 / k**tilt for k in range(1, count + 1))


def _odd(count: int) -> tuple[float, ...]:
    """Odd harmonics only: the hollow sound of clarinets and square-wave synths."""
    return tuple((1.0 / k if k % 2 else 0.0) for k in range(1, count + 1))


# Fields left out keep Timbre's defaults: a sustained note (no decay), no vibrato, no chorus.
TIMBRES = {
    "piano": Timbre(
        partials=(1, 0.5, 0.35, 0.2, 0.12, 0.08, 0.05, 0.03),
        attack=0.004,
        decay=0.7,
        floor=0.0,
        release=0.1,
        bright_decay=1.2,
        inharmonic=3e-4,
    ),
    "epiano": Timbre(
        partials=(1, 0.25, 0.04, 0.0, 0.0, 0.0, 0.08), attack=0.004, decay=1.1, floor=0.0, release=0.1, bright_decay=0.8
    ),
    "organ": Timbre(partials=(1, 0.8, 0.6, 0.5, 0.0, 0.4, 0.0, 0.3), attack=0.01, release=0.05, vibrato=0.04),
    "strings": Timbre(partials=_saw(12), attack=0.25, release=0.3, vibrato=0.12, detune=9),
    "pad": Timbre(partials=_saw(6, 1.6), attack=0.35, release=0.5, detune=14),
    "guitar": Timbre(
        partials=(1, 0.7, 0.45, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05),
        attack=0.003,
        decay=0.5,
        floor=0.0,
        release=0.05,
        bright_decay=2.0,
        inharmonic=1e-4,
    ),
    "banjo": Timbre(
        partials=(1, 0.8, 0.7, 0.5, 0.45, 0.3, 0.25, 0.2, 0.15, 0.1),
        attack=0.002,
        decay=0.18,
        floor=0.0,
        release=0.03,
        bright_decay=3.0,
    ),
    "dist_guitar": Timbre(partials=_saw(14, 0.8), attack=0.005, decay=1.5, floor=0.6, release=0.05, bright_decay=0.3),
    "brass": Timbre(partials=_saw(10, 0.8), attack=0.06, decay=0.3, floor=0.8, release=0.08, vibrato=0.08),
    "reed": Timbre(
        partials=(1, 0.2, 0.6, 0.15, 0.4, 0.1, 0.25, 0.08),
        attack=0.04,
        decay=0.5,
        floor=0.85,
        release=0.06,
        vibrato=0.15,
    ),
    "flute": Timbre(partials=(1, 0.25, 0.08, 0.03), attack=0.07, release=0.08, vibrato=0.1),
    "fiddle": Timbre(partials=_saw(12), attack=0.05, release=0.08, vibrato=0.25),
    "synth": Timbre(partials=_odd(11), attack=0.01, decay=0.2, floor=0.7, release=0.08),
    "voice": Timbre(partials=(1, 0.6, 0.9, 0.4, 0.2, 0.3, 0.1, 0.05), attack=0.05, release=0.1, vibrato=0.2),
    "bass_electric": Timbre(
        partials=(1, 0.5, 0.25, 0.12, 0.06), attack=0.005, decay=0.5, floor=0.3, release=0.04, bright_decay=0.8
    ),
    "bass_upright": Timbre(partials=(1, 0.35, 0.15, 0.05), attack=0.02, decay=0.35, floor=0.1, release=0.05),
    "bass_synth": Timbre(partials=_saw(8), attack=0.005, decay=0.3, floor=0.7, release=0.03),
    "bass_808": Timbre(partials=(1, 0.12), attack=0.005, decay=0.9, floor=0.35, release=0.08),
    "cello": Timbre(partials=_saw(10, 1.2), attack=0.15, release=0.2, vibrato=0.1, detune=6),
}
MAX_NOTE_SECONDS = 10.0


@functools.lru_cache(maxsize=512)
def note(name: str, midi: int, centis: int) -> np.ndarray:
    """One note, held `centis` hundredths of a second plus its release.

    A pure function of its arguments, cached: chords and bass lines repeat the same few notes, so a
    clip renders each once (and durations are rounded to 10 ms so repeats really are repeats).
    """
    timbre = TIMBRES[name]
    hold = min(centis / 100, MAX_NOTE_SECONDS)
    t = np.arange(int((hold + timbre.release) * SR)) / SR
    f0 = 440.0 * 2.0 ** ((midi - 69) / 12)
    k = np.arange(1, len(timbre.partials) + 1)
    ratio = k * np.sqrt(1 + timbre.inharmonic * k**2)
    keep = (f0 * ratio < 0.45 * SR) & (np.asarray(timbre.partials) > 0)
    amps, ratio, k = np.asarray(timbre.partials)[keep], ratio[keep], k[keep]
    phase = 2 * np.pi * f0 * t
    if timbre.vibrato:  # 5.5 Hz frequency wobble, integrated into the phase
        depth = 2 ** (timbre.vibrato / 12) - 1
        phase = phase + (f0 * depth / 5.5) * np.sin(2 * np.pi * 5.5 * t)
    weights = amps[:, None] * np.exp(-np.outer(timbre.bright_decay * (k - 1), t))
    tone = np.einsum("kn,kn->n", weights, np.sin(np.outer(ratio, phase)))
    if timbre.detune:
        tone = tone + np.einsum("kn,kn->n", weights, np.sin(np.outer(ratio, phase * 2 ** (timbre.detune / 1200))))
    env = np.minimum(t / timbre.attack, 1.0) * (timbre.floor + (1 - timbre.floor) * np.exp(-t / timbre.decay))
    env *= np.clip(1 - (t - hold) / timbre.release, 0.0, 1.0)
    out = (tone * env / amps.sum()).astype(np.float32)
    out.flags.writeable = False  # shared by the cache
    return out


# --- drums ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kit:
    """Drum sounds as ranges drawn per clip: a kit is a family of sounds (an 808 booms, jazz thuds)."""

    kick_hz: Range  # pitch the kick's sine sweep settles to
    kick_decay: Range  # seconds
    snare_hz: Range  # the drum-head tone under the snare's noise
    snare_decay: Range
    snare_noise: Range  # share of noise in the snare: brushes are nearly all noise
    hat_hz: Range  # high-pass corner of the hi-hat's noise
    hat_decay: Range


KITS = {
    "acoustic": Kit((50, 65), (0.15, 0.3), (170, 230), (0.12, 0.2), (0.5, 0.7), (6000, 9000), (0.03, 0.06)),
    "disco": Kit((45, 60), (0.2, 0.35), (180, 220), (0.15, 0.25), (0.6, 0.8), (7000, 10000), (0.02, 0.05)),
    "808": Kit((38, 52), (0.4, 0.9), (150, 200), (0.1, 0.2), (0.4, 0.8), (5000, 9000), (0.02, 0.04)),
    "jazz": Kit((55, 75), (0.1, 0.2), (200, 260), (0.08, 0.2), (0.7, 0.95), (4000, 7000), (0.04, 0.1)),
    "metal": Kit((55, 75), (0.08, 0.15), (180, 240), (0.12, 0.2), (0.5, 0.7), (7000, 10000), (0.03, 0.06)),
}


def _kick(rng: np.random.Generator, kit: Kit) -> np.ndarray:
    """A pitched sine sweep (the beater's thump falling to the drum's note) plus a click."""
    decay = uniform(rng, kit.kick_decay)
    t = np.arange(int(decay * 5 * SR)) / SR
    hz = uniform(rng, kit.kick_hz) + uniform(rng, (80, 180)) * np.exp(-t / 0.03)
    body = np.sin(2 * np.pi * np.cumsum(hz) / SR) * np.exp(-t / decay)
    click = filtered_noise(rng, t.size, "lowpass", 3000) * np.exp(-t / 0.004)
    return body + 0.3 * click


def _snare(rng: np.random.Generator, kit: Kit) -> np.ndarray:
    """A noise burst (the wires) over a short tone (the head)."""
    decay = uniform(rng, kit.snare_decay)
    t = np.arange(int(decay * 5 * SR)) / SR
    noise = filtered_noise(rng, t.size, "bandpass", (1500, 8000)) * np.exp(-t / decay)
    tone = np.sin(2 * np.pi * uniform(rng, kit.snare_hz) * t) * np.exp(-t / 0.05)
    mix = uniform(rng, kit.snare_noise)
    return mix * noise / (np.abs(noise).max() + 1e-9) + (1 - mix) * tone


def _hat(rng: np.random.Generator, kit: Kit, length: float = 1.0, hz_scale: float = 1.0) -> np.ndarray:
    """High-passed noise; `length` stretches it into an open hat, a ride or a crash."""
    decay = uniform(rng, kit.hat_decay) * length
    t = np.arange(int(decay * 5 * SR)) / SR
    noise = filtered_noise(rng, t.size, "highpass", uniform(rng, kit.hat_hz) * hz_scale)
    return noise * np.exp(-t / decay) / (np.abs(noise).max() + 1e-9)


def kit_sounds(rng: np.random.Generator, kit: Kit) -> dict[str, np.ndarray]:
    """One sample per drum voice for this clip (a drummer plays one kit through a song)."""
    t = np.arange(int(0.03 * SR)) / SR
    rim = np.sin(2 * np.pi * uniform(rng, (400, 700)) * t) * np.exp(-t / 0.008)
    ride = _hat(rng, kit, 8.0, 0.6)
    t_ride = np.arange(ride.size) / SR
    ride += 0.3 * np.sin(2 * np.pi * uniform(rng, (3000, 4500)) * t_ride) * np.exp(-t_ride / 0.4)  # its bell ring
    return {
        "kick": _kick(rng, kit),
        "snare": _snare(rng, kit),
        "rim": rim,
        "hat": _hat(rng, kit),
        "open_hat": _hat(rng, kit, 5.0),
        "ride": 0.6 * ride,
        "crash": _hat(rng, kit, 25.0, 0.5),
    }
