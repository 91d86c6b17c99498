"""The built-in synthetic 8-genre dataset, in GTZAN's layout, so the project runs where GTZAN is absent.

Each genre is a `Recipe`: ranges and choices of musical ingredients (tempo, drum groove and kit, bass
line, chord instrument, harmony, melody, distortion, reverb, noise, dynamics). A clip draws one song
from its genre's recipe, renders the parts with vectorised numpy/scipy, mixes them, and passes the mix
through a random "recording chain" (band limits, hiss, crackle, level) shared by all genres.

The recipes are calibrated so that the task is learnable but not trivial: genres share instruments
and overlap in tempo, some clips borrow an ingredient from another genre, and the recording chain
blurs the average spectrum a linear model leans on. Measured on the default set (seed 0, 40 clips x
30 s, 152/64/104 train/valid/test): logistic regression on per-clip mean+std of log-mel reaches 53%
validation accuracy (61% 5-fold CV), on MFCC 59%, on chroma 28%; a small 2D CNN on 3 s crops
reaches 42-56% after 5 short epochs and 60-70% with more training, never near 100%. Chance is 12.5%.

    python -m features.synth --out DIR [--clips-per-genre N] [--seconds S] [--seed K] [--workers W]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import numbers
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import ndimage, signal
from tqdm import tqdm

from common.errors import UserError, exit_on_user_error
from common.partials import no_space_left, partial_path, remove_stale_partials

GENRES = ("classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae")
DEFAULT_CLIPS_PER_GENRE = 40
DEFAULT_SECONDS = 30.0
SAMPLE_RATE = 22050
SR = SAMPLE_RATE

# The real fault-filtered split holds 353 / 150 / 227 of 730 clips: we keep its proportions.
SPLIT_FRACTIONS = {"train": 353 / 730, "valid": 150 / 730, "test": 227 / 730}
MARKER = "SYNTHETIC.json"
PCM_BYTES = 2  # 16-bit samples
WAV_HEADER_BYTES = 44
FS_BLOCK_BYTES = 4096  # a file takes whole blocks of the filesystem
SMALL_FILES_BYTES = 64 * 1024  # split lists, marker and folders
LIBSNDFILE_SYSTEM_ERROR = 2  # SFE_SYSTEM: a failed read or write call, its errno not passed on
GENERATOR = {"generator": "genre-search synthetic", "version": 1}
# Mixed into the split shuffle's seed so it never coincides with a clip's [seed, genre, index].
_SPLIT_STREAM = 0x5111

Range = tuple[float, float]


# --- ingredients: instruments ------------------------------------------------------------------


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
def _note(name: str, midi: int, centis: int) -> np.ndarray:
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


# --- ingredients: drums --------------------------------------------------------------------------


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


def _u(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _pick(rng: np.random.Generator, options: Sequence):
    """One of `options` (rng.choice would turn tuples of tuples into arrays)."""
    return options[int(rng.integers(len(options)))]


def _filtered_noise(rng: np.random.Generator, n: int, kind: str, hz: float | Sequence[float]) -> np.ndarray:
    sos = signal.butter(2, hz, btype=kind, fs=SR, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def _kick(rng: np.random.Generator, kit: Kit) -> np.ndarray:
    """A pitched sine sweep (the beater's thump falling to the drum's note) plus a click."""
    decay = _u(rng, kit.kick_decay)
    t = np.arange(int(decay * 5 * SR)) / SR
    hz = _u(rng, kit.kick_hz) + _u(rng, (80, 180)) * np.exp(-t / 0.03)
    body = np.sin(2 * np.pi * np.cumsum(hz) / SR) * np.exp(-t / decay)
    click = _filtered_noise(rng, t.size, "lowpass", 3000) * np.exp(-t / 0.004)
    return body + 0.3 * click


def _snare(rng: np.random.Generator, kit: Kit) -> np.ndarray:
    """A noise burst (the wires) over a short tone (the head)."""
    decay = _u(rng, kit.snare_decay)
    t = np.arange(int(decay * 5 * SR)) / SR
    noise = _filtered_noise(rng, t.size, "bandpass", (1500, 8000)) * np.exp(-t / decay)
    tone = np.sin(2 * np.pi * _u(rng, kit.snare_hz) * t) * np.exp(-t / 0.05)
    mix = _u(rng, kit.snare_noise)
    return mix * noise / (np.abs(noise).max() + 1e-9) + (1 - mix) * tone


def _hat(rng: np.random.Generator, kit: Kit, length: float = 1.0, hz_scale: float = 1.0) -> np.ndarray:
    """High-passed noise; `length` stretches it into an open hat, a ride or a crash."""
    decay = _u(rng, kit.hat_decay) * length
    t = np.arange(int(decay * 5 * SR)) / SR
    noise = _filtered_noise(rng, t.size, "highpass", _u(rng, kit.hat_hz) * hz_scale)
    return noise * np.exp(-t / decay) / (np.abs(noise).max() + 1e-9)


def _kit_sounds(rng: np.random.Generator, kit: Kit) -> dict[str, np.ndarray]:
    """One sample per drum voice for this clip (a drummer plays one kit through a song)."""
    t = np.arange(int(0.03 * SR)) / SR
    rim = np.sin(2 * np.pi * _u(rng, (400, 700)) * t) * np.exp(-t / 0.008)
    ride = _hat(rng, kit, 8.0, 0.6)
    t_ride = np.arange(ride.size) / SR
    ride += 0.3 * np.sin(2 * np.pi * _u(rng, (3000, 4500)) * t_ride) * np.exp(-t_ride / 0.4)  # its bell ring
    return {
        "kick": _kick(rng, kit),
        "snare": _snare(rng, kit),
        "rim": rim,
        "hat": _hat(rng, kit),
        "open_hat": _hat(rng, kit, 5.0),
        "ride": 0.6 * ride,
        "crash": _hat(rng, kit, 25.0, 0.5),
    }


# A groove: one bar of 16th-note steps per drum voice. X accent, x normal, o ghost note.
GROOVES = {
    "four_floor": {"kick": "X...X...X...X...", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x.",
                   "open_hat": "..x...x...x...x."},
    "disco16": {"kick": "X...X...X...X...", "snare": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo"},
    "pop_rock": {"kick": "X.....x.X.......", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "pop_dance": {"kick": "X...X...X...X...", "snare": "....X.......X...", "hat": "..x...x...x...x."},
    "boombap": {"kick": "X......x..X.....", "snare": "....X.......X..o", "hat": "x.x.x.x.x.x.x.x."},
    "trap": {"kick": "X......X..X.....", "snare": "........X.......", "hat": "xxxxxxxxxxxoxxxx"},
    "one_drop": {"kick": "........X.......", "rim": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
    "rockers": {"kick": "X.......X.......", "rim": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "steppers": {"kick": "X...X...X...X...", "rim": "........X.......", "hat": "..x...x...x...x."},
    "double_kick": {"kick": "XxXxXxXxXxXxXxXx", "snare": "....X.......X...", "hat": "X...X...X...X..."},
    "gallop": {"kick": "X.xxX.xxX.xxX.xx", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "blast": {"kick": "x.x.x.x.x.x.x.x.", "snare": ".x.x.x.x.x.x.x.x", "ride": "x.x.x.x.x.x.x.x."},
    "jazz_swing": {"ride": "X...X.x.X...X.x.", "hat": "....x.......x...", "kick": "o...o...o...o...",
                   "snare": "......o.......o."},
    "jazz_two": {"ride": "X...X...X...X...", "hat": "....x.......x...", "kick": "o.......o......."},
    "train": {"kick": "X.......X.......", "snare": "ooooXoooooooXooo"},
    "two_step": {"kick": "X.......X.......", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
}  # fmt: skip
VELOCITY = {"X": 1.0, "x": 0.7, "o": 0.35}


# --- ingredients: bass, chords, harmony ---------------------------------------------------------

# A bass line: one bar of steps naming the note (r root, f fifth, o octave, t third, w walking) and
# the share of the gap to the next note that it sounds (staccato disco octaves vs legato 808s).
BASS_LINES = {
    "roots": ("r...r...r...r...", 0.9),
    "eighths": ("r.r.r.r.r.r.r.r.", 0.8),
    "octaves": ("r.o.r.o.r.o.r.o.", 0.5),
    "disco_syncop": ("r..or..or.r.o.r.", 0.5),
    "root_fifth": ("r.......f.......", 0.9),
    "boom_chick": ("r.......f...t...", 0.7),
    "walking": ("w...w...w...w...", 0.95),
    "boombap": ("r......r..r.....", 1.0),
    "sub808": ("r.........r.....", 1.0),
    "reggae": ("..r...r.f.r...t.", 0.7),
    "gallop": ("r.rrr.rrr.rrr.rr", 0.6),
    "chug": ("rrrrrrrrrrrrrrrr", 0.5),
    "sustain": ("r...............", 1.0),
    "pop_syncop": ("r..r..r.r..r..r.", 0.7),
}

# A chord rhythm: x strikes the chord, a plays the next chord tone (arpeggio); gate as above.
# Gates of 0.9 and more mark held chords, which also restrike on every chord change.
CHORD_RHYTHMS = {
    "hold": ("x...............", 1.0),
    "half": ("x.......x.......", 1.0),
    "quarters": ("x...x...x...x...", 0.9),
    "strum8": ("x.x.x.x.x.x.x.x.", 0.85),
    "strum_country": ("x...x.x.x...x.x.", 0.8),
    "backbeat": ("....x.......x...", 0.5),
    "offbeat": ("..x...x...x...x.", 0.3),
    "funk16": ("x..x..x...x..x..", 0.35),
    "comp": ("x.....x.......x.", 0.5),
    "charleston": ("x.....x.........", 0.6),
    "arp8": ("a.a.a.a.a.a.a.a.", 1.0),
    "arp16": ("aaaaaaaaaaaaaaaa", 1.0),
    "power8": ("x.x.x.x.x.x.x.x.", 0.6),
    "chug16": ("xxxxxxxxxxxxxxxx", 0.5),
}

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
# Chord shapes as scale steps stacked on the chord's degree (so qualities follow the key), except
# power chords, which are fixed intervals (root, fifth, octave) whatever the scale.
CHORD_KINDS = {"triad": (0, 2, 4), "seventh": (0, 2, 4, 6), "ninth": (0, 2, 6, 8), "power": None}
# Progressions as 0-based scale degrees: (0, 4, 5, 3) is I-V-vi-IV in a major key.
POP = ((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4), (3, 0, 4, 5))
COUNTRY = ((0, 3, 4, 0), (0, 0, 3, 4), (0, 4, 3, 0), (0, 3, 0, 4))
BLUESY = ((0, 3, 0, 4), (0, 6, 3, 0))
JAZZ = ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4), (1, 4, 0, 5))
CLASSICAL = ((0, 3, 4, 0), (0, 5, 1, 4), (0, 4, 5, 2, 3, 0, 3, 4), (0, 1, 4, 0), (0, 3, 6, 2, 5, 1, 4, 0))
VAMPS = ((0, 3), (0, 5), (0, 4), (0, 6, 5, 6), (1, 4))
METAL = ((0, 5, 6, 0), (0, 1), (0, 3, 4, 0), (0, 5, 3, 6), (0, 0, 1, 0))
REGGAE = ((0, 3), (0, 4), (0, 3, 4, 3), (0, 5, 3, 4))


# --- the genres --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """Everything that makes a genre a genre, as ranges and choices a clip draws from."""

    tempo: Range  # beats per minute
    grooves: tuple[str, ...]  # GROOVES; empty = no drums
    kits: tuple[str, ...]
    swing: Range  # delay of the off-beat, as a share of its beat
    swing_unit: int  # 8: swung eighths (jazz), 16: swung sixteenths (boom-bap)
    scales: tuple[str, ...]
    progressions: tuple[tuple[int, ...], ...]
    beats_per_chord: tuple[int, ...]  # how fast the harmony moves
    chord_kinds: tuple[str, ...]
    chord_timbres: tuple[str, ...]
    chord_rhythms: tuple[str, ...]
    bass_lines: tuple[str, ...]
    bass_timbres: tuple[str, ...]
    melody_timbres: tuple[str, ...]
    melody_density: Range  # chance of a melody note on each eighth
    parts: tuple[float, float, float, float]  # chance that drums, bass, chords, melody play
    levels: tuple[float, float, float, float]  # their usual balance in dB (each varies +-3 dB)
    drive: Range  # tanh gain on the chords: 1 clean, 10+ a metal guitar
    reverb: Range  # seconds for the room to decay by 60 dB
    wet: Range  # reverb share
    echo: float  # chance of a dub-style tempo delay
    dynamics: Range  # dB depth of slow swells and crescendos
    compress: Range  # compressor ratio: 1 natural, 6 radio-loud
    noise_db: Range  # hiss relative to the music
    crackle: float  # chance of vinyl crackle
    borrow: float  # chance that one ingredient comes from another genre's recipe


RECIPES: dict[str, Recipe] = {
    "classical": Recipe(
        tempo=(50, 140), grooves=(), kits=("acoustic",), swing=(0, 0), swing_unit=8,
        scales=("major", "harmonic_minor", "minor"), progressions=CLASSICAL, beats_per_chord=(2, 4, 8),
        chord_kinds=("triad", "triad", "seventh"), chord_timbres=("strings", "strings", "strings", "piano", "organ"),
        chord_rhythms=("hold", "half", "arp16", "arp8", "quarters"), bass_lines=("sustain", "roots"),
        bass_timbres=("cello", "cello", "bass_upright"),
        melody_timbres=("strings", "strings", "flute", "reed", "piano"),
        melody_density=(0.3, 0.8), parts=(0.0, 0.7, 1.0, 0.8), levels=(-6, -4, 0, -1), drive=(1, 1),
        reverb=(1.2, 3.0), wet=(0.25, 0.6), echo=0.0, dynamics=(4, 14), compress=(1, 1.3),
        noise_db=(-60, -30), crackle=0.15, borrow=0.1,
    ),
    "country": Recipe(
        tempo=(90, 150), grooves=("train", "two_step", "two_step"), kits=("acoustic",),
        swing=(0, 0.1), swing_unit=8, scales=("major", "major", "mixolydian"), progressions=COUNTRY,
        beats_per_chord=(4, 8), chord_kinds=("triad",), chord_timbres=("guitar", "guitar", "banjo", "banjo"),
        chord_rhythms=("strum8", "strum_country", "backbeat", "arp8"),
        bass_lines=("root_fifth", "boom_chick", "roots"), bass_timbres=("bass_electric", "bass_upright"),
        melody_timbres=("fiddle", "fiddle", "voice", "banjo"), melody_density=(0.3, 0.7),
        parts=(0.85, 0.9, 1.0, 0.8), levels=(-3, -4, 0, -2), drive=(1, 2.5), reverb=(0.3, 1.2),
        wet=(0.1, 0.3), echo=0.05, dynamics=(1, 5), compress=(1.5, 3), noise_db=(-55, -30), crackle=0.1,
        borrow=0.1,
    ),
    "disco": Recipe(
        tempo=(108, 132), grooves=("four_floor", "disco16"), kits=("disco", "acoustic"),
        swing=(0, 0.03), swing_unit=16, scales=("minor", "dorian", "major"), progressions=VAMPS + POP[:1] + JAZZ[1:2],
        beats_per_chord=(4, 8), chord_kinds=("seventh", "triad", "ninth"),
        chord_timbres=("strings", "strings", "guitar", "brass", "epiano"),
        chord_rhythms=("offbeat", "funk16", "hold", "quarters"), bass_lines=("octaves", "octaves", "disco_syncop"),
        bass_timbres=("bass_electric", "bass_synth"), melody_timbres=("strings", "brass", "voice"),
        melody_density=(0.3, 0.6), parts=(0.95, 0.95, 0.9, 0.7), levels=(-1, -2, -2, -2), drive=(1, 1.5),
        reverb=(0.6, 1.6), wet=(0.1, 0.3), echo=0.05, dynamics=(0, 3), compress=(2, 4), noise_db=(-60, -35),
        crackle=0.1, borrow=0.1,
    ),
    "hiphop": Recipe(
        tempo=(72, 100), grooves=("boombap", "boombap", "trap"), kits=("808", "acoustic"), swing=(0.02, 0.15),
        swing_unit=16, scales=("minor", "dorian"), progressions=VAMPS + JAZZ[:1], beats_per_chord=(4, 8),
        chord_kinds=("seventh", "ninth"), chord_timbres=("epiano", "epiano", "piano", "pad"),
        chord_rhythms=("hold", "half", "comp", "quarters"), bass_lines=("boombap", "sub808", "roots"),
        bass_timbres=("bass_808", "bass_808", "bass_electric"), melody_timbres=("flute", "synth", "voice", "reed"),
        melody_density=(0.15, 0.4), parts=(1.0, 0.9, 0.8, 0.4), levels=(2, 0, -4, -5), drive=(1, 2),
        reverb=(0.3, 1.0), wet=(0.05, 0.2), echo=0.1, dynamics=(0, 2), compress=(3, 6), noise_db=(-50, -28),
        crackle=0.45, borrow=0.1,
    ),
    "jazz": Recipe(
        tempo=(90, 220), grooves=("jazz_swing", "jazz_swing", "jazz_two"), kits=("jazz",), swing=(0.08, 0.17),
        swing_unit=8, scales=("major", "dorian"), progressions=JAZZ, beats_per_chord=(2, 4),
        chord_kinds=("seventh", "ninth"), chord_timbres=("piano", "piano", "epiano", "guitar", "organ"),
        chord_rhythms=("comp", "charleston", "quarters"), bass_lines=("walking",), bass_timbres=("bass_upright",),
        melody_timbres=("reed", "reed", "brass", "piano"), melody_density=(0.5, 0.9),
        parts=(0.9, 0.95, 0.85, 0.8), levels=(-4, -2, -2, 0), drive=(1, 1.2), reverb=(0.8, 2.0), wet=(0.15, 0.4),
        echo=0.0, dynamics=(2, 8), compress=(1, 1.6), noise_db=(-55, -28), crackle=0.3, borrow=0.1,
    ),
    "metal": Recipe(
        tempo=(100, 200), grooves=("double_kick", "gallop", "blast", "pop_rock"), kits=("metal", "acoustic"),
        swing=(0, 0), swing_unit=8, scales=("minor", "phrygian", "harmonic_minor"), progressions=METAL,
        beats_per_chord=(2, 4, 8), chord_kinds=("power", "power", "triad"),
        chord_timbres=("dist_guitar", "dist_guitar", "dist_guitar", "organ"),
        chord_rhythms=("power8", "chug16", "hold", "quarters"), bass_lines=("chug", "gallop", "eighths"),
        bass_timbres=("bass_electric", "bass_synth"), melody_timbres=("dist_guitar", "dist_guitar", "voice"),
        melody_density=(0.3, 0.8), parts=(0.95, 0.85, 1.0, 0.5), levels=(-2, -5, 0, -2), drive=(4, 20),
        reverb=(0.3, 1.2), wet=(0.08, 0.25), echo=0.05, dynamics=(0, 3), compress=(3, 6), noise_db=(-55, -30),
        crackle=0.0, borrow=0.1,
    ),
    "pop": Recipe(
        tempo=(88, 130), grooves=("pop_rock", "pop_dance", "four_floor", "two_step"), kits=("acoustic", "disco", "808"),
        swing=(0, 0.05), swing_unit=16, scales=("major", "major", "minor"), progressions=POP,
        beats_per_chord=(4, 8), chord_kinds=("triad", "triad", "seventh"),
        chord_timbres=("piano", "synth", "pad", "guitar"),
        chord_rhythms=("strum8", "quarters", "hold", "offbeat", "arp8"), bass_lines=("eighths", "pop_syncop", "roots"),
        bass_timbres=("bass_electric", "bass_synth"), melody_timbres=("voice", "voice", "voice", "synth"),
        melody_density=(0.4, 0.8), parts=(0.9, 0.9, 0.95, 0.8), levels=(-2, -3, -2, 0), drive=(1, 3),
        reverb=(0.6, 1.6), wet=(0.1, 0.3), echo=0.1, dynamics=(0, 4), compress=(2.5, 5), noise_db=(-60, -35),
        crackle=0.05, borrow=0.1,
    ),
    "reggae": Recipe(
        tempo=(60, 92), grooves=("one_drop", "one_drop", "rockers", "steppers"), kits=("acoustic", "jazz"),
        swing=(0, 0.08), swing_unit=8, scales=("major", "minor"), progressions=REGGAE + BLUESY[:1],
        beats_per_chord=(4, 8), chord_kinds=("triad", "triad", "seventh"), chord_timbres=("organ", "guitar", "organ"),
        chord_rhythms=("offbeat", "offbeat", "backbeat"), bass_lines=("reggae", "reggae", "roots"),
        bass_timbres=("bass_electric", "bass_808"), melody_timbres=("organ", "reed", "brass", "voice"),
        melody_density=(0.2, 0.6), parts=(0.95, 1.0, 0.95, 0.6), levels=(-3, 0, -3, -3), drive=(1, 1.5),
        reverb=(0.5, 2.0), wet=(0.15, 0.45), echo=0.5, dynamics=(0, 3), compress=(1.5, 3), noise_db=(-55, -30),
        crackle=0.2, borrow=0.1,
    ),
}  # fmt: skip

# Ingredients a clip may take from another genre: a pop song with a disco beat, a metal riff on an organ.
BORROWABLE = ("tempo", "grooves", "bass_lines", "chord_timbres", "chord_rhythms", "melody_timbres", "progressions")


def _clip_recipe(genre: str, rng: np.random.Generator) -> Recipe:
    """The genre's recipe, sometimes with one ingredient taken from another genre, so genres overlap."""
    recipe = RECIPES[genre]
    if rng.random() < recipe.borrow:
        other = RECIPES[_pick(rng, [g for g in GENRES if g != genre])]
        field = _pick(rng, BORROWABLE)
        recipe = replace(recipe, **{field: getattr(other, field)})
    return recipe


# --- one song ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Song:
    """The choices every part of a clip shares: tempo and feel, key, harmony, length."""

    recipe: Recipe
    tempo: float
    swing: float
    key: int  # pitch class of the tonic, 0 = C
    scale: tuple[int, ...]
    progression: tuple[int, ...]  # scale degrees
    steps_per_chord: int  # in sixteenth notes
    chord_kind: str
    n_steps: int  # sixteenth notes rendered

    @property
    def step(self) -> float:
        """Seconds per sixteenth note."""
        return 15.0 / self.tempo

    def times(self, steps: np.ndarray) -> np.ndarray:
        """Onsets in seconds of sixteenth-note steps, off-beats delayed by the swing."""
        steps = np.asarray(steps)
        if self.recipe.swing_unit == 8:
            late = np.where(steps % 4 == 2, self.swing * 4 * self.step, 0.0)
        else:
            late = np.where(steps % 2 == 1, self.swing * 2 * self.step, 0.0)
        return steps * self.step + late

    def degrees(self, steps: np.ndarray) -> np.ndarray:
        """The chord (as a scale degree) sounding at each step."""
        return np.asarray(self.progression)[(np.asarray(steps) // self.steps_per_chord) % len(self.progression)]

    def pitch(self, degree: int, octave: int) -> int:
        """MIDI note of a scale degree; degrees past 6 climb into the next octaves."""
        up, index = divmod(int(degree), 7)
        return 12 * (octave + up + 1) + self.key + self.scale[index]

    def chord(self, degree: int, octave: int) -> list[int]:
        """MIDI notes of the chord on `degree`, root position."""
        shape = CHORD_KINDS[self.chord_kind]
        root = self.pitch(degree, octave)
        if shape is None:
            return [root, root + 7, root + 12]
        return [self.pitch(degree + s, octave) for s in shape]


def _plan_song(recipe: Recipe, seconds: float, rng: np.random.Generator) -> Song:
    tempo = _u(rng, recipe.tempo)
    bars = math.ceil(seconds * tempo / 240) + 1  # a spare bar, so the excerpt can start anywhere in the first
    return Song(
        recipe=recipe,
        tempo=tempo,
        swing=_u(rng, recipe.swing),
        key=int(rng.integers(12)),
        scale=SCALES[_pick(rng, recipe.scales)],
        progression=_pick(rng, recipe.progressions),
        steps_per_chord=4 * int(_pick(rng, recipe.beats_per_chord)),
        chord_kind=_pick(rng, recipe.chord_kinds),
        n_steps=16 * bars,
    )


def _pattern_steps(pattern: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps where a one-bar pattern plays when repeated over the song, and the symbol at each."""
    tiled = np.resize(np.array(list(pattern)), n_steps)
    steps = np.flatnonzero(tiled != ".")
    return steps, tiled[steps]


def _add(buf: np.ndarray, sound: np.ndarray, time: float, gain: float) -> None:
    """Mix `sound` into `buf` at `time` seconds: one slice add per event, never a loop over samples."""
    start = round(max(time, 0.0) * SR)
    if start < buf.size:
        m = min(sound.size, buf.size - start)
        buf[start : start + m] += gain * sound[:m]


def _place(buf: np.ndarray, sound: np.ndarray, times: np.ndarray, gains: np.ndarray) -> None:
    """Mix copies of `sound` into `buf` at each of `times` (seconds)."""
    for time, gain in zip(times, gains):
        _add(buf, sound, time, gain)


# --- the parts -----------------------------------------------------------------------------------

VOICE_LEVELS = {"kick": 1.0, "snare": 0.8, "rim": 0.5, "hat": 0.3, "open_hat": 0.3, "ride": 0.35, "crash": 0.4}


def _render_drums(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    """The groove repeated, humanised, with a fill before and a crash on each eight-bar phrase."""
    sounds = _kit_sounds(rng, KITS[_pick(rng, song.recipe.kits)])
    groove = dict(GROOVES[_pick(rng, song.recipe.grooves)])
    phrase = 16 * 8
    groove["crash"] = "X" + "." * (phrase - 1) if rng.random() < 0.7 else "."
    buf = np.zeros(n)
    jitter = _u(rng, (0.002, 0.012))  # a drum machine is tight, a jazz drummer loose
    for voice, pattern in groove.items():
        steps, symbols = _pattern_steps(pattern, song.n_steps)
        gains = np.array([VELOCITY[s] for s in symbols]) * rng.uniform(0.8, 1.0, steps.size)
        gains *= VOICE_LEVELS[voice] * 10 ** (_u(rng, (-4, 4)) / 20)
        _place(buf, sounds[voice], song.times(steps) + rng.normal(0, jitter, steps.size), gains)
    if rng.random() < 0.7:  # snare fill on the last beat of each phrase
        fill = (np.arange(phrase - 4, song.n_steps, phrase)[:, None] + np.arange(4)).ravel()
        _place(buf, sounds["snare"], song.times(fill), np.tile([0.5, 0.6, 0.75, 0.9], fill.size // 4))
    return buf


def _bass_pitches(song: Song, steps: np.ndarray, symbols: np.ndarray, rng: np.random.Generator) -> list[int]:
    """MIDI notes for a bass line's symbols: chord roots around E1-D#2, fifths, octaves, walking tones."""
    degrees = song.degrees(steps)
    pitches = []
    for step, symbol, degree in zip(steps, symbols, degrees):
        root = 28 + (song.pitch(degree, 0) - 28) % 12
        third = root + (song.pitch(degree + 2, 0) - root) % 12
        seventh = root + (song.pitch(degree + 6, 0) - root) % 12
        if symbol == "w":  # walking: root on the change, approach the next root, chord tones between
            next_root = 28 + (song.pitch(song.degrees([step + 4])[0], 0) - 28) % 12
            if step % song.steps_per_chord == 0:
                symbol = "r"
            elif (step + 4) % song.steps_per_chord == 0:
                pitches.append(next_root + int(_pick(rng, (-1, 1, 2))))
                continue
            else:
                pitches.append(int(_pick(rng, (root + 7, third, seventh, root + 12, third + 12))))
                continue
        pitches.append({"r": root, "f": root + 7, "o": root + 12, "t": third}[symbol])
    return pitches


def _gaps(song: Song, steps: np.ndarray) -> np.ndarray:
    """Seconds from each onset to the next (the last to the end of the song)."""
    nominal = song.times(np.append(steps, song.n_steps))
    return np.diff(nominal)


def _render_bass(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    pattern, gate = BASS_LINES[_pick(rng, song.recipe.bass_lines)]
    timbre = _pick(rng, song.recipe.bass_timbres)
    steps, symbols = _pattern_steps(pattern, song.n_steps)
    pitches = _bass_pitches(song, steps, symbols, rng)
    buf = np.zeros(n)
    times = song.times(steps) + rng.normal(0, 0.004, steps.size)
    gains = np.where(steps % 4 == 0, 1.0, 0.8) * rng.uniform(0.85, 1.0, steps.size)
    for time, gain, gap, pitch in zip(times, gains, _gaps(song, steps), pitches):
        _add(buf, _note(timbre, pitch, max(2, round(gate * gap * 100))), time, gain)
    return buf


def _chord_events(song: Song, pattern: str, gate: float) -> tuple[np.ndarray, np.ndarray]:
    """A chord rhythm's steps and symbols; held chords also restrike on every chord change."""
    steps, symbols = _pattern_steps(pattern, song.n_steps)
    if gate >= 0.9 and "a" not in pattern:
        changes = np.arange(0, song.n_steps, song.steps_per_chord)
        steps = np.union1d(steps, changes)
        symbols = np.full(steps.size, "x")
    return steps, symbols


def _voicing(song: Song, degree: int, low: int) -> list[int]:
    """Close voicing of the chord inside the octave above `low`; power chords keep their shape."""
    notes = song.chord(degree, 1)
    if song.chord_kind == "power":
        shift = 12 * math.ceil((low - notes[0]) / 12)
        return [p + shift for p in notes]
    return sorted(low + (p - low) % 12 for p in notes)


def _render_chords(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    timbre = _pick(rng, song.recipe.chord_timbres)
    pattern, gate = CHORD_RHYTHMS[_pick(rng, song.recipe.chord_rhythms)]
    steps, symbols = _chord_events(song, pattern, gate)
    low = int(rng.integers(40, 47)) if song.chord_kind == "power" else int(rng.integers(50, 60))
    strum = 0.012 if timbre in ("guitar", "banjo", "dist_guitar") else 0.0  # guitars strum, keys strike
    buf = np.zeros(n)
    times = song.times(steps) + rng.normal(0, 0.004, steps.size)
    gains = np.where(steps % 4 == 0, 1.0, 0.75) * rng.uniform(0.8, 1.0, steps.size)
    for count, (step, symbol, time, gain, gap) in enumerate(zip(steps, symbols, times, gains, _gaps(song, steps))):
        notes = _voicing(song, song.degrees([step])[0], low)
        if symbol == "a":
            notes = [notes[count % len(notes)]]
        centis = max(2, round(gate * gap * 100))
        for i, pitch in enumerate(notes):
            _add(buf, _note(timbre, pitch, centis), time + i * strum, gain)
    drive = _u(rng, song.recipe.drive)
    if drive > 1.05:  # tanh clipping, then a speaker cabinet's low-pass
        buf = np.tanh(drive * buf / (np.abs(buf).max() + 1e-9)) / math.tanh(drive)
        buf = signal.sosfilt(signal.butter(2, _u(rng, (3500, 6000)), fs=SR, output="sos"), buf)
    return buf


def _render_melody(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    """A random walk on the scale in eighths, resting in some phrases, chord tones on strong beats."""
    timbre = _pick(rng, song.recipe.melody_timbres)
    eighths = np.arange(0, song.n_steps, 2)
    playing = rng.random(eighths.size) < _u(rng, song.recipe.melody_density)
    resting = np.repeat(rng.random(song.n_steps // 32 + 1) < 0.3, 16)[: eighths.size]  # two-bar phrases
    steps = eighths[playing & ~resting]
    walk = 10 + np.cumsum(rng.choice([-2, -1, -1, 0, 1, 1, 2], steps.size))
    degrees = 7 + np.abs((walk - 7) % 24 - 12)  # fold the walk into two octaves
    strong = steps % 8 == 0
    roots = song.degrees(steps)
    degrees = np.where(strong, roots + 7 + 2 * np.round((degrees - roots - 7) / 2), degrees)
    buf = np.zeros(n)
    times = song.times(steps) + rng.normal(0, 0.006, steps.size)
    gains = np.where(strong, 1.0, 0.8) * rng.uniform(0.75, 1.0, steps.size)
    for degree, time, gain, gap in zip(degrees, times, gains, _gaps(song, steps)):
        centis = max(5, round(0.9 * min(gap, 8 * song.step) * 100))
        _add(buf, _note(timbre, song.pitch(int(degree), 3), centis), time, gain)
    return buf


PARTS = {"drums": _render_drums, "bass": _render_bass, "chords": _render_chords, "melody": _render_melody}


def _render_parts(song: Song, rng: np.random.Generator, n: int) -> np.ndarray:
    """The parts that play in this clip, each at its genre's level give or take 3 dB."""
    playing = rng.random(len(PARTS)) < np.asarray(song.recipe.parts)
    if not song.recipe.grooves:
        playing[0] = False
    if not playing[2:].any():  # every clip has something tonal
        playing[2] = True
    mix = np.zeros(n)
    for on, level, render in zip(playing, song.recipe.levels, PARTS.values()):
        if on:
            stem = render(song, rng, n)
            rms = np.sqrt(np.mean(stem**2)) + 1e-9
            mix += stem / rms * 10 ** ((level + _u(rng, (-3, 3))) / 20)
    return mix


# --- production and recording --------------------------------------------------------------------


def _swells(n: int, depth_db: float, rng: np.random.Generator) -> np.ndarray:
    """Slow level changes: a crescendo or fade across the clip plus swells every few seconds."""
    points = np.linspace(0, n, max(3, n // (3 * SR)))
    db = np.linspace(0, rng.uniform(-1, 1) * depth_db, points.size) + rng.normal(0, depth_db / 3, points.size)
    return 10 ** (np.interp(np.arange(n), points, db) / 20)


def _reverb(x: np.ndarray, recipe: Recipe, tempo: float, rng: np.random.Generator) -> np.ndarray:
    """A room as exponentially decaying, darkened noise; dub clips add a tempo-synced echo."""
    rt60 = _u(rng, recipe.reverb)
    t = np.arange(int(rt60 * SR)) / SR
    ir = _filtered_noise(rng, t.size, "lowpass", _u(rng, (2500, 8000))) * np.exp(-6.9 * t / rt60)
    ir /= np.sqrt(np.sum(ir**2))
    if rng.random() < recipe.echo:  # dotted-eighth echoes, each quieter
        delay = int(0.75 * 60 / tempo * SR)
        ir = np.pad(ir, (0, 5 * delay + 1 - ir.size)) if ir.size < 5 * delay + 1 else ir
        ir[np.arange(1, 5) * delay] += 0.6 ** np.arange(1, 5) * 3
    wet = signal.fftconvolve(x, ir)[: x.size]
    mix = _u(rng, recipe.wet)
    return (1 - mix) * x + mix * wet * np.sqrt(np.mean(x**2) / (np.mean(wet**2) + 1e-12))


def _compress(x: np.ndarray, ratio: float) -> np.ndarray:
    """Turn down what rises above the quieter passages: loud genres sound dense and flat."""
    if ratio <= 1.05:
        return x
    envelope = np.sqrt(ndimage.uniform_filter1d(x**2, int(0.05 * SR)) + 1e-12)
    threshold = np.percentile(envelope, 30)
    return x * np.minimum(1.0, (envelope / threshold) ** (1 / ratio - 1))


def _record(x: np.ndarray, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """A random recording chain, shared by all genres: band limits, hiss, hum, crackle.

    Real collections mix old and new, clean and noisy recordings; this blurs the average spectrum
    so a classifier must also listen to what is played, not only to how it was recorded.
    """
    low, high = _u(rng, (20, 150)), float(np.exp(_u(rng, (np.log(4500), np.log(10500)))))
    x = signal.sosfilt(signal.butter(2 * int(rng.integers(1, 3)), (low, high), "bandpass", fs=SR, output="sos"), x)
    rms = np.sqrt(np.mean(x**2)) + 1e-9
    hiss = _filtered_noise(rng, x.size, "lowpass", _u(rng, (2000, 10000)))
    x = x + hiss / np.sqrt(np.mean(hiss**2)) * rms * 10 ** (_u(rng, recipe.noise_db) / 20)
    if rng.random() < 0.1:  # mains hum
        t = np.arange(x.size) / SR
        hz = _pick(rng, (50.0, 60.0))
        x = x + rms * 0.03 * (np.sin(2 * np.pi * hz * t) + 0.5 * np.sin(4 * np.pi * hz * t))
    if rng.random() < recipe.crackle:
        clicks = (rng.random(x.size) < 8 / SR) * rng.standard_normal(x.size) * rms * _u(rng, (1, 4))
        x = x + signal.sosfilt(signal.butter(2, 1500, "highpass", fs=SR, output="sos"), clicks)
    return x


def _render(genre: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    recipe = _clip_recipe(genre, rng)
    song = _plan_song(recipe, seconds, rng)
    n = round(seconds * SR)
    spare = round(16 * song.step * SR)  # one bar, the most the excerpt's start moves
    total = n + spare
    x = _render_parts(song, rng, total)
    x = x * _swells(total, _u(rng, recipe.dynamics), rng)
    x = _reverb(x, recipe, song.tempo, rng)
    x = _compress(x, _u(rng, recipe.compress))
    start = int(rng.integers(0, spare + 1))  # an excerpt from inside a song, like GTZAN
    x = _record(x[start : start + n], recipe, rng)
    return x / (np.abs(x).max() + 1e-9) * _u(rng, (0.3, 0.95))


def synthesize_clip(genre: str, seconds: float, seed: int | Sequence[int]) -> np.ndarray:
    """One clip of `genre`: mono float32 in [-1, 1] at `SAMPLE_RATE`, a pure function of its arguments.

    `seed` is anything `np.random.default_rng` takes; the dataset passes (seed, genre index, clip
    index), so a clip never depends on which worker made it or in which order.
    """
    if genre not in GENRES:
        raise UserError(f"unknown genre {genre!r} (known: {', '.join(GENRES)})")
    if not seconds > 0:
        raise UserError(f"seconds must be positive, got {seconds!r}")
    audio = _render(genre, seconds, np.random.default_rng(seed))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


# --- the dataset -------------------------------------------------------------------------------


def split_sizes(n: int) -> tuple[int, int, int]:
    """Train/valid/test clip counts for one genre of `n` clips, in the real split's proportions.

    Rounded, and never an empty split when n >= 3 (a genre missing from valid would break training);
    below that, train is filled first.
    """
    train = max(1, round(n * SPLIT_FRACTIONS["train"])) if n else 0
    valid = round(n * SPLIT_FRACTIONS["valid"])
    if n >= 3:
        train = min(train, n - 2)
        valid = min(max(1, valid), n - train - 1)
    valid = min(valid, n - train)
    return train, valid, n - train - valid


def assign_splits(clips_per_genre: int, seed: int) -> dict[str, list[str]]:
    """Each split's clip names (`genre/genre.NNNNN.wav`): per genre, shuffled with the seed, then cut."""
    names: dict[str, list[str]] = {split: [] for split in SPLIT_FRACTIONS}
    sizes = split_sizes(clips_per_genre)
    for g, genre in enumerate(GENRES):
        order = np.random.default_rng([seed, g, 0, _SPLIT_STREAM]).permutation(clips_per_genre)
        cuts = np.split(order, np.cumsum(sizes)[:2])
        for split, indices in zip(names, cuts):
            names[split] += [_clip_name(genre, int(i)) for i in sorted(indices)]
    return names


def _clip_name(genre: str, index: int) -> str:
    return f"{genre}/{genre}.{index:05d}.wav"


def _write_clip(job: tuple[str, int, int, int, float]) -> str:
    """Worker: synthesise one clip and write it as 16-bit PCM (top level, so processes can pickle it)."""
    folder, seed, g, i, seconds = job
    name = _clip_name(GENRES[g], i)
    sf.write(Path(folder) / name, synthesize_clip(GENRES[g], seconds, (seed, g, i)), SR, subtype="PCM_16")
    return name


def _run_jobs(jobs: list[tuple[str, int, int, int, float]], workers: int) -> None:
    """Write every clip, in `workers` processes (inline for one), with a progress bar."""
    progress = tqdm(total=len(jobs), desc="synthesising clips", unit="clip")
    with progress:
        if workers == 1:
            for job in jobs:
                _write_clip(job)
                progress.update()
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            try:
                for future in as_completed([pool.submit(_write_clip, job) for job in jobs]):
                    future.result()  # a worker's error is raised here
                    progress.update()
            except BaseException:  # an error or Ctrl-C: drop the queued clips rather than finish them
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def _check_arguments(clips_per_genre: int, seconds: float, seed: int, workers: int | None) -> None:
    def whole(value: object) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if not whole(clips_per_genre) or clips_per_genre < 1:
        raise UserError(f"clips per genre must be a whole number >= 1, got {clips_per_genre!r}")
    if not isinstance(seconds, numbers.Real) or not 0.1 <= seconds <= 600:
        raise UserError(f"seconds must be between 0.1 and 600, got {seconds!r}")
    if not whole(seed) or seed < 0:
        raise UserError(f"seed must be a whole number >= 0, got {seed!r}")
    if workers is not None and (not whole(workers) or workers < 1):
        raise UserError(f"workers must be a whole number >= 1, got {workers!r}")


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder: choose a new --out or remove it")


def _clip_bytes(seconds: float) -> int:
    """One clip on disk: its 16-bit samples and header, rounded up to whole filesystem blocks."""
    size = round(seconds * SR) * PCM_BYTES + WAV_HEADER_BYTES
    return -(-size // FS_BLOCK_BYTES) * FS_BLOCK_BYTES


def bytes_needed(clips_per_genre: int, seconds: float) -> int:
    """Disk space the set takes: every clip, plus the split lists and marker."""
    return len(GENRES) * clips_per_genre * _clip_bytes(seconds) + SMALL_FILES_BYTES


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def _check_space(out: Path, needed: int) -> int:
    """The free bytes beside `out`; too few for the set is a `UserError` before any clip is made."""
    free = shutil.disk_usage(out.parent).free
    if free < needed:
        raise UserError(
            f"not enough disk space for the synthetic set {out}: it needs {_megabytes(needed)}, {_megabytes(free)} free"
        )
    return free


def _is_disk_full(error: BaseException, folder: Path, clip_bytes: int) -> bool:
    """Whether writing failed because the disk filled up. libsndfile reports a failed write as a
    bare "System error" (its errno is not passed on), so that one counts when the disk has no room
    left for another clip."""
    if isinstance(error, OSError) and no_space_left(error):
        return True
    if isinstance(error, sf.LibsndfileError) and error.code == LIBSNDFILE_SYSTEM_ERROR:
        return shutil.disk_usage(folder).free < clip_bytes
    return False


def _write_set(folder: Path, clips_per_genre: int, seconds: float, seed: int, workers: int | None) -> None:
    """Every clip, the split lists and the marker, into `folder`."""
    for genre in GENRES:
        (folder / genre).mkdir()
    jobs = [(str(folder), seed, g, i, seconds) for g in range(len(GENRES)) for i in range(clips_per_genre)]
    _run_jobs(jobs, min(workers or os.cpu_count() or 1, len(jobs)))
    for split, names in assign_splits(clips_per_genre, seed).items():
        (folder / f"{split}_filtered.txt").write_text("".join(name + "\n" for name in names))
    marker = GENERATOR | {"seed": seed, "clips_per_genre": clips_per_genre, "seconds": seconds}
    marker |= {"sample_rate": SR, "genres": list(GENRES)}
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def generate_dataset(
    out: Path,
    clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Write the synthetic set into `out` in GTZAN's layout, with split lists and `SYNTHETIC.json`.

    Everything is written into a hidden sibling folder that is renamed to `out` only when complete,
    so an interrupted run never leaves a folder that looks finished (and the next run removes what
    it left). Too little disk space is a `UserError`, up front or when the disk fills up meanwhile.
    The output is byte-identical for a given seed, whatever the number of workers.
    """
    out = Path(out).expanduser()
    _check_arguments(clips_per_genre, seconds, seed, workers)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out.parent)
    needed = bytes_needed(clips_per_genre, seconds)
    free = _check_space(out, needed)
    partial = partial_path(out)
    try:
        partial.mkdir()
        _write_set(partial, clips_per_genre, seconds, seed, workers)
        _check_out(out)  # someone may have written there meanwhile
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException as error:
        disk_full = _is_disk_full(error, partial, _clip_bytes(seconds))
        shutil.rmtree(partial, ignore_errors=True)
        if disk_full:
            raise UserError(
                f"the disk filled up while writing the synthetic set {out}: it needs {_megabytes(needed)} "
                f"({_megabytes(free)} were free at the start); the partial set was removed"
            ) from error
        raise
    return out


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m features.synth",
        description="Write the built-in synthetic 8-genre dataset in GTZAN's layout.",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to create (must not exist or be empty)")
    parser.add_argument("--clips-per-genre", type=int, default=DEFAULT_CLIPS_PER_GENRE)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="length of each clip")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all CPUs)")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    out = generate_dataset(args.out, args.clips_per_genre, args.seconds, args.seed, args.workers)
    print(f"wrote {args.clips_per_genre * len(GENRES)} synthetic clips to {out}")


if __name__ == "__main__":
    main()
